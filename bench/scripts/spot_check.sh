#!/usr/bin/env bash
# Many-core spot check on a second machine that has no Rust toolchain.
#
#   bash bench/scripts/spot_check.sh prepare   # here: build, then copy stripped
#                                              # binaries and the Debian allocator
#                                              # libraries into target-dev/
#   bash bench/scripts/spot_check.sh run       # there (repository root, with
#                                              # target-dev/ copied along)
#
# `run` runs the bench workers round-robin over the four allocators (xmalloc,
# larson, cache-scratch, small quick and full), the LD_PRELOAD workloads
# (c_small with `nproc` threads, python alloc_stress.py) and the zk-nalloc
# test binaries with `nproc` test threads. Results go to $OUT (default
# /tmp/spot-check): workers.txt (one JSON result per line), preload.txt
# (`P workload library T seconds maxrss_kib`) and log.txt.
set -euo pipefail
D=target-dev

prepare() {
  cargo build --release -p nalloc-bench -p nalloc-capi
  cargo run --release -p nalloc-bench --bin nalloc-preload-bench -- --workload c-small --allocator nalloc --runs 1 >/dev/null
  rm -rf "$D" && mkdir -p "$D/bin" "$D/lib" "$D/tests"
  for a in nalloc glibc mimalloc jemalloc; do
    strip -o "$D/bin/w-$a" "target/release/nalloc-bench-worker-$a"
  done
  strip -o "$D/lib/libnalloc.so" target/release/libnalloc.so
  cp target/nalloc-preload/c_small "$D/bin/"
  cp /usr/bin/time "$D/bin/gtime"
  for l in libmimalloc.so.2 libjemalloc.so.2 libtcmalloc_minimal.so.4; do
    cp -L "/usr/lib/x86_64-linux-gnu/$l" "$D/lib/"
  done
  cargo test -p zk-nalloc --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] != ["custom-build"]:
        print(m["target"]["name"], m["executable"])' |
    while read -r name exe; do strip -o "$D/tests/$name" "$exe"; done
  du -sh "$D"
}

run() {
  local B=$D/bin L=$D/lib O=${OUT:-/tmp/spot-check} n
  n=$(nproc)
  mkdir -p "$O"
  exec > >(tee "$O/log.txt") 2>&1
  echo "nproc $n"; grep -m1 "model name" /proc/cpuinfo; ldd --version | head -1
  cat /sys/kernel/mm/transparent_hugepage/enabled
  local start=$SECONDS
  workers() { # WORKLOAD RUNS [FLAGS]
    local w=$1 runs=$2; shift 2
    for _ in $(seq "$runs"); do for a in nalloc glibc mimalloc jemalloc; do
      "$B/w-$a" --workload "$w" "$@" 2>&1 | grep -o 'NALLOC_BENCH_RESULT.*' | sed "s/^NALLOC_BENCH_RESULT /W $w $a /" >>"$O/workers.txt" || echo "W $w $a FAILED" >>"$O/workers.txt"
    done; done
  }
  workers xmalloc 7; workers larson 5; workers cache-scratch 7; workers small 5; workers small 5 --full
  echo "workers done at $((SECONDS - start)) s"
  preload() { # WORKLOAD RUNS COMMAND...
    local w=$1 runs=$2 l e t; shift 2
    for _ in $(seq "$runs"); do for l in glibc $L/libmimalloc.so.2 $L/libjemalloc.so.2 $L/libtcmalloc_minimal.so.4 $L/libnalloc.so; do
      if [ "$l" = glibc ]; then e=""; else e=$l; fi
      t=$(LD_PRELOAD=$e PYTHONMALLOC=malloc "$B/gtime" -f "T %e %M" "$@" 2>&1 >/dev/null | grep '^T ' || echo FAILED)
      echo "P $w $(basename "$l") $t" >>"$O/preload.txt"
    done; done
  }
  preload c-small 5 "$B/c_small" "$n" 1000000
  if command -v python3 >/dev/null; then preload python 3 python3 bench/python/alloc_stress.py 40 4; fi
  echo "preload done at $((SECONDS - start)) s"
  for t in "$D"/tests/*; do
    echo "== $(basename "$t")"
    timeout 120 "$t" --test-threads="$n" 2>&1 | grep -E "test result|FAILED|panicked" | head -5
  done
  echo "tests done at $((SECONDS - start)) s"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac

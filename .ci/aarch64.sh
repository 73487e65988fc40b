#!/usr/bin/env bash
# aarch64 Linux, run: the core crate's tests and C programs against the C
# library, cross-built for aarch64-unknown-linux-gnu and run under
# qemu-aarch64 (user-mode emulation, the host kernel's 4 KiB pages; other
# page sizes are covered by .ci/page-sizes.sh).
#
# A subset, with the reason: user-mode qemu emulates the CPU, not the kernel's
# evidence. It has no per-page VmFlags in /proc/self/smaps (dd, wf, lo), no
# transparent huge pages in AnonHugePages, forwards fork/cgroup/mlock cases
# through its own process, and runs everything 5-20x slower. So the tests of
# the allocator's logic run here (unit tests, global_alloc, phases, raw,
# layers). Run natively on x86-64 instead (some also under simulated 16/64 KiB
# pages, .ci/page-sizes.sh): the kernel-evidence tests (arenas, witness,
# witness_fences, routes, memory, config, budget, fork, misuse), polynomial_vec
# (arkworks arithmetic; the host's page sizes here, as natively) and the
# feature-gated field_secrets, hardened, fault_injection and wipe_evidence.
# README "Platforms" names the same list.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu
missing=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(crossbuild-essential-arm64)
command -v qemu-aarch64 >/dev/null 2>&1 || missing+=(qemu-user)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
rustup target add "$TARGET" >/dev/null

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $SYSROOT"
# Tests that re-run their own binary go through the emulator too.
export NALLOC_TEST_RUNNER="qemu-aarch64 -L $SYSROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/aarch64"

echo "skipped under emulation (run natively): arenas, witness, witness_fences, routes, memory, config, budget, fork, misuse (kernel evidence); polynomial_vec (arkworks arithmetic, host page sizes); field_secrets, hardened, fault_injection, wipe_evidence (feature-gated)"
timeout 1500 cargo test -p zk-nalloc --target "$TARGET" --lib --test global_alloc --test phases --test raw --test layers \
  2>&1 | tee /tmp/nalloc-aarch64.log
n=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' /tmp/nalloc-aarch64.log | awk '{s += $1} END {print s + 0}')
bad=$(grep -c '^test result: FAILED' /tmp/nalloc-aarch64.log || true)
echo "aarch64 (qemu) tests passed: $n"
[ "$bad" -eq 0 ] && [ "$n" -ge 55 ] || { echo "aarch64: expected at least 55 passing tests and no failure" >&2; exit 1; }

# The C library, cross-built, with C test programs linked against it.
cargo build -q -p nalloc-capi --target "$TARGET"
lib="$CARGO_TARGET_DIR/$TARGET/debug"
out="$CARGO_TARGET_DIR/c"
mkdir -p "$out"
for prog in edge threads misuse; do
  aarch64-linux-gnu-gcc -std=gnu11 -O1 -fno-builtin -pthread -Icapi/include -Icapi/tests/c \
    "capi/tests/c/$prog.c" -o "$out/$prog" -L"$lib" -lnalloc -Wl,-rpath,"$lib" -ldl
done
qemu-aarch64 -L "$SYSROOT" "$out/edge" expect-nalloc | tee /tmp/nalloc-aarch64-c.log
grep -q "edge (nalloc): ok" /tmp/nalloc-aarch64-c.log
qemu-aarch64 -L "$SYSROOT" "$out/threads" | tee -a /tmp/nalloc-aarch64-c.log
# Misuse stops the process with its one line (extras.c, which reads
# /proc/self/smaps and forks, runs natively).
for case in double-free witness-overflow witness-double-free; do
  if qemu-aarch64 -L "$SYSROOT" "$out/misuse" "$case" 2>/tmp/nalloc-aarch64-misuse.err; then
    echo "aarch64: misuse case $case was not stopped" >&2; exit 1
  fi
  grep -q '^nalloc: ' /tmp/nalloc-aarch64-misuse.err || { cat /tmp/nalloc-aarch64-misuse.err >&2; exit 1; }
  echo "misuse $case: $(grep '^nalloc: ' /tmp/nalloc-aarch64-misuse.err)"
done
echo "aarch64 (qemu) C programs: edge, threads, misuse ok"

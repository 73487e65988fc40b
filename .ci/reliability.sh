#!/usr/bin/env bash
# Reliability checks beyond the normal suite (.ci/run), see README "Testing":
#   1. Miri: the engine's data structures under the interpreter
#   2. loom: model checks of the remote-free marks and init flag
#   3. fuzzing: each cargo-fuzz target for FUZZ_SECONDS (default 60)
#   4. soak: the bench's `soak` workload under nalloc for SOAK_SECONDS
#      (default 15); fails on corruption or if RSS does not plateau
#   5. nightly rustdoc: the doc tests (only nightly checks the error code a
#      `compile_fail,E0xxx` test names) and the docs.rs build
# The fork-safety test (tests/fork.rs) is part of the normal suite.
#
# Runs on a bare machine from a clean clone; installs what it needs (nightly
# with Miri, cargo-fuzz). Exits non-zero on the first failure. Budget: about
# 12 minutes on 2 cores with cold caches (see the timings it prints).
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
SOAK_SECONDS="${SOAK_SECONDS:-15}"
START=$SECONDS
step() { printf '\n=== %s (at %d s) ===\n' "$*" "$((SECONDS - START))"; }

# A runner that ran no test passes green: check each run's count against the
# number of tests it must run (a rename or a cfg typo would give "0 passed").
expect_passed() {
  local min=$1 log=$2 n
  n=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$log" | awk '{s += $1} END {print s + 0}')
  if [ "$n" -lt "$min" ]; then
    echo "expected at least $min tests to pass, counted $n ($log)" >&2
    exit 1
  fi
  echo "counted $n passed tests (at least $min required)"
}

step "toolchains: nightly with Miri, cargo-fuzz"
if ! command -v cc >/dev/null 2>&1; then
  apt-get update && apt-get install -y --no-install-recommends gcc g++ libc6-dev
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal --component miri,rust-src
fi
rustup component add --toolchain nightly miri rust-src
cargo +nightly miri setup
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

step "Miri: cargo +nightly miri test --lib miri_tests"
# Strict provenance: every pointer the engine hands out is derived from a
# reservation's pointer, never from a bare address. Leaks ignored: the
# segment and witness regions are reserved once for the life of the
# process, by design.
MIRIFLAGS="-Zmiri-strict-provenance -Zmiri-ignore-leaks ${MIRIFLAGS:-}" \
  timeout 1200 cargo +nightly miri test --lib miri_tests 2>&1 | tee /tmp/nalloc-miri.log
expect_passed 25 /tmp/nalloc-miri.log

step "doc tests on nightly: each compile_fail test fails with the error code it names"
# Stable rustdoc passes a `compile_fail,E0xxx` test that fails to compile
# for any reason (a typo, a missing import); nightly also checks the code.
# 14 doc tests today (4 of them compile_fail).
# A target directory of its own: .ci/run removes target/debug before this
# script runs.
timeout 1200 cargo +nightly test -p zk-nalloc --doc --target-dir target/nightly 2>&1 |
  tee /tmp/nalloc-doc-nightly.log
expect_passed 13 /tmp/nalloc-doc-nightly.log

step "docs.rs build: nightly, --cfg docsrs, the features docs.rs documents"
# As Cargo.toml's [package.metadata.docs.rs] asks; warnings are errors.
RUSTDOCFLAGS="--cfg docsrs -D warnings" timeout 1200 cargo +nightly doc -p zk-nalloc --no-deps \
  --features ark-ff,pasta,plonky3,bytemuck --target-dir target/nightly

step "loom: model checks of src/small/remote.rs and src/base/once.rs"
# `--cfg nalloc_loom` (all crates) pulls in the loom dev-dependency;
# `--cfg loom` goes to the test crate only, so the library is built as usual
# while tests/loom.rs compiles the two modules against loom's atomics.
# Optimised (loom explores many interleavings) but with debug assertions, so
# the structures' invariant checks run in the models too.
LOOM_BIN=$(RUSTFLAGS="--cfg nalloc_loom" CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true \
  cargo rustc --release --test loom \
  --message-format=json-render-diagnostics -- --cfg loom |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$LOOM_BIN" ] || { echo "loom test binary not found" >&2; exit 1; }
timeout 900 "$LOOM_BIN" 2>&1 | tee /tmp/nalloc-loom.log
expect_passed 4 /tmp/nalloc-loom.log

step "fuzz: build"
# With debug assertions, so that every structure's invariant check
# (src/base/check.rs) runs under the fuzzer.
timeout 1200 cargo +nightly fuzz build --debug-assertions
for target in global_ops arenas raw; do
  step "fuzz: $target for $FUZZ_SECONDS s"
  # New inputs go to a scratch corpus; the committed seeds are read only.
  corpus=$(mktemp -d)
  timeout $((FUZZ_SECONDS + 300)) cargo +nightly fuzz run --debug-assertions "$target" "$corpus" "fuzz/corpus/$target" -- \
    -max_total_time="$FUZZ_SECONDS" -print_final_stats=1
  rm -rf "$corpus"
done

step "soak: $SOAK_SECONDS s under nalloc"
# Optimised, with debug assertions on, in a target directory of its own: a
# debug build ran ~30x fewer operations in the same time, so the random
# high-water of live memory was still being found in the run's last third
# and the plateau check failed without any leak (+11 % in 15 s; optimised
# runs: -4 % to +7 %).
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
soak_target=target/soak
timeout $((SOAK_SECONDS + 1500)) cargo build --release --target-dir "$soak_target" -p nalloc-bench \
  --bin nalloc-bench --bin nalloc-bench-worker-nalloc
timeout $((SOAK_SECONDS + 600)) "$soak_target/release/nalloc-bench" --workload soak --allocator nalloc --runs 1 \
  --seconds "$SOAK_SECONDS" --no-build --no-svg

step "reliability: all checks passed in $((SECONDS - START)) s"

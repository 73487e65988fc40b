#!/usr/bin/env bash
# Mutation testing of the code that keeps secrets and memory safe: the
# witness arena, the secret containers, the one route, the C front's pointer
# checks and the Linux wipe/lock/guard calls. Every mutant of these files must
# be caught by a test, or be listed with the reason it is equivalent (or not
# worth a test) in docs/mutants-accepted.txt. Design and counts:
# docs/design/tests-that-fail.md.
#
#   bash .ci/mutants.sh            every mutant of those files (opt-in: hours on 2 cores)
#   bash .ci/mutants.sh --changed  only mutants on lines the last commit changed (CI;
#                                  MUTANTS_BASE=REV compares with REV instead of HEAD~1)
#   MUTANTS_RE=REGEX bash .ci/mutants.sh   only mutants whose name matches (a rerun
#                                  of earlier survivors, say)
#
# Fails on a surviving (missed) mutant that is not listed. A mutant that
# makes the tests hang until the timeout (an endless loop) is detected, and
# counted as such.
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=(src/arenas/witness.rs src/arenas/secret.rs src/front/route.rs src/front/raw.rs src/os/linux.rs)
# The tests that speak for those files (the rest of the suite adds time, not kills).
TESTS=(--lib --test=witness --test=witness_fences --test=routes --test=misuse --test=wipe_evidence --test=raw --test=global_alloc --test=budget)
OUT=target/mutants
ACCEPTED=docs/mutants-accepted.txt

mkdir -p "$OUT"
args=(-p zk-nalloc --features fault-injection --baseline skip --no-shuffle -j 1
  --timeout 120 --build-timeout 600 --output "$OUT")
for f in "${FILES[@]}"; do args+=(--file "$f"); done
[ -z "${MUTANTS_RE:-}" ] || args+=(--re "$MUTANTS_RE")
if [ "${1:-}" = "--changed" ]; then
  git diff "${MUTANTS_BASE:-HEAD~1}" -- "${FILES[@]}" > "$OUT/changed.diff" 2>/dev/null || true
  if [ ! -s "$OUT/changed.diff" ]; then
    echo "mutants: the last commit changed none of ${FILES[*]}: nothing to mutate"
    exit 0
  fi
  args+=(--in-diff "$OUT/changed.diff")
fi
if ! cargo mutants --version >/dev/null 2>&1; then
  cargo install cargo-mutants --locked
fi

# A diff of comments only gives no mutants: nothing to judge, and no outcomes.
if [ -z "$(cargo mutants --list "${args[@]}" 2>/dev/null)" ]; then
  echo "mutants: the changed lines hold no code to mutate (comments or layout only)"
  exit 0
fi

for t in "${TESTS[@]}"; do args+=("--cargo-test-arg=$t"); done

# cargo-mutants exits non-zero when mutants survive; the verdict is ours.
cargo mutants "${args[@]}" || true

results="$OUT/mutants.out"
[ -f "$results/outcomes.json" ] || { echo "mutants: no outcomes written" >&2; exit 1; }
# A mutant is named by its file and replacement, without line and column (so
# that the list survives edits above it).
name() { sed -E 's/^([^:]+):[0-9]+:[0-9]+: /\1: /'; }
# Each line of the list explains one survivor: a name listed once does not
# cover a second survivor of the same name (another place in the function).
unexplained=0
declare -A used=()
for kind in missed; do
  [ -f "$results/$kind.txt" ] || continue
  while IFS= read -r m; do
    [ -n "$m" ] || continue
    key=$(printf '%s\n' "$m" | name)
    listed=$(grep -cF -- "$key —" "$ACCEPTED" 2>/dev/null || true)
    used[$key]=$(( ${used[$key]:-0} + 1 ))
    if [ "${used[$key]}" -gt "${listed:-0}" ]; then
      echo "mutants: $kind, not explained in $ACCEPTED: $m"
      unexplained=$((unexplained + 1))
    fi
  done < "$results/$kind.txt"
done
caught=$(grep -c . "$results/caught.txt" 2>/dev/null || true)
missed=$(grep -c . "$results/missed.txt" 2>/dev/null || true)
hung=$(grep -c . "$results/timeout.txt" 2>/dev/null || true)
echo "mutants: caught ${caught:-0}, hung until the timeout ${hung:-0}, missed ${missed:-0} (explained in $ACCEPTED: $(( ${missed:-0} - unexplained < 0 ? 0 : ${missed:-0} - unexplained )))"
[ "$unexplained" -eq 0 ]

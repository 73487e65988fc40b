#!/usr/bin/env python3
"""Planted bugs: one per security claim of the README.

Each plant removes or weakens the code that makes one claim true (the wipe
on free, the lock, the guard page, the canary, a misuse check, ...), runs
the tests that speak for that claim, and requires them to FAIL. A plant
whose tests still pass means the claim has no test that can catch its loss;
a plant that no longer applies (the code moved) or does not build is an
error of this script, to be fixed with the code. The tree is restored after
each plant, whatever happens.

    python3 .ci/plants.py            every plant (opt-in: ~15-25 min on 2 cores)
    python3 .ci/plants.py canary     the plants whose name contains "canary"

Complements `.ci/mutants.sh` (every small change of the security files):
these are the whole-claim removals a reviewer would try first, named after
the README's words (docs/design/tests-that-fail.md).
"""
import os
import re
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "target", "plants")
TIMEOUT = 900  # seconds a plant's build and tests may take

WITNESS = "src/arenas/witness.rs"
LINUX = "src/os/linux.rs"
RAW = "src/front/raw.rs"

# (name, README claim, file, code as it is, code with the bug, cargo test arguments)
PLANTS = [
    ("wipe-on-free",
     "witness memory is wiped on every free, so a recycled block is zero when handed out",
     WITNESS, "os::secure_zero(p, size + CANARY);", "let _ = CANARY;",
     ["-p", "zk-nalloc", "--test", "witness"]),
    ("wipe-on-growth",
     "owned secrets are wiped on growth (the old buffer, through its free)",
     WITNESS, "os::secure_zero(p, size + CANARY);", "let _ = CANARY;",
     ["-p", "zk-nalloc", "--test", "witness", "secret_types_init_in_place_and_wipe_on_growth_and_drop"]),
    ("wipe-large",
     "large secrets are wiped before their chunk is released",
     WITNESS, "        if wipe {\n            for_each_committed(", "        if wipe && false {\n            for_each_committed(",
     ["-p", "zk-nalloc", "--features", "fault-injection", "--test", "wipe_evidence"]),
    ("wipe-shrink",
     "a shrinking realloc wipes the cut-off tail",
     WITNESS, "os::secure_zero(p.add(new), old - new + CANARY);", "os::secure_zero(p.add(old), CANARY);",
     ["-p", "zk-nalloc", "--test", "routes"]),
    ("secure-wipe",
     "secure_wipe() / nalloc_witness_wipe_all() zero all witness memory handed out",
     WITNESS, "(*h).block_len, |p, n| {\n                    os::secure_zero(base.with_addr(p), n)",
     "(*h).block_len, |p, n| {\n                    let _ = (p, n, base);",
     ["-p", "zk-nalloc", "--test", "witness", "secure_wipe"]),
    ("mlock",
     "witness memory is mlock'ed (VmFlags lo)",
     WITNESS, "*locked = match unsafe { os::lock(p, len) } {",
     "*locked = match Err::<(), _>(os::OsError(12)) {",
     ["-p", "zk-nalloc", "--test", "witness", "witness_memory_is_zeroed"]),
    ("lock-require",
     "with NALLOC_WITNESS_LOCK=require an allocation that cannot be locked returns null",
     WITNESS, "            if require {\n", "            if require && false {\n",
     ["-p", "zk-nalloc", "--test", "witness_fences", "an_mlock_failure"]),
    ("dontdump",
     "witness memory is excluded from core dumps (MADV_DONTDUMP, VmFlags dd)",
     LINUX, "Advice::LinuxDontDump) } {", "Advice::Normal) } {",
     ["-p", "zk-nalloc", "--test", "witness", "witness_memory_is_zeroed"]),
    ("wipeonfork",
     "witness memory is zero in forked children (MADV_WIPEONFORK, VmFlags wf)",
     LINUX, "Advice::LinuxWipeOnFork) } {", "Advice::Normal) } {",
     ["-p", "zk-nalloc", "--test", "witness", "witness_memory_is_zeroed"]),
    ("guard-pages",
     "a guard page directly before and after every run of blocks (no other writable memory)",
     WITNESS, "commit_range(h, base.with_addr(start), len, &mut locked)",
     "commit_range(h, base.with_addr(start - page()), len + page(), &mut locked)",
     ["-p", "zk-nalloc", "--test", "witness_fences", "fence"]),
    ("canary",
     "an overflow canary on every block, checked at free through every front",
     WITNESS, "            if seen != canary(p) {\n                overflowed(p, size);",
     "            if false && seen != canary(p) {\n                overflowed(p, size);",
     ["-p", "zk-nalloc", "--test", "witness_fences", "canary"]),
    ("encoded-links",
     "free-list links are encoded with a per-process key",
     WITNESS, "    LINK_KEY.peek() ^ at.addr().rotate_left(29)", "    let _ = (LINK_KEY.peek(), at);\n    0",
     ["-p", "zk-nalloc", "--test", "witness_fences", "keyed_per_process"]),
    ("witness-scope",
     "witness_scope routes a third-party prover's own Vecs to witness memory",
     "src/front/global.rs", "Restore(heap::set_scope(true))", "Restore(heap::set_scope(false))",
     ["-p", "zk-nalloc", "--test", "witness", "witness_scope"]),
    ("c-witness-free-wipes",
     "free() of a C witness block wipes it (C front, through the route)",
     WITNESS, "os::secure_zero(p, size + CANARY);", "let _ = CANARY;",
     ["-p", "nalloc-capi", "--test", "c_programs", "extras_api_linked"]),
    ("double-free-small",
     "a small block freed twice in a row stops the process (double free)",
     "src/small/page.rs", "            if b == head {\n", "            if false && b == head {\n",
     ["-p", "zk-nalloc", "--test", "misuse", "double_free"]),
    ("double-free-large",
     "a large block freed twice stops the process (free(): double free)",
     "src/mem/span.rs", ".iter().any(|c| c.ptr == r.ptr)", ".iter().any(|c| false && c.ptr == r.ptr)",
     ["-p", "zk-nalloc", "--test", "misuse", "a_span_freed_twice"]),
    ("seal",
     "a pointer the C front did not hand out stops the process (sealed headers: invalid pointer)",
     RAW, "|| h.seal != seal(p, h.size, align)", "|| (false && h.seal != seal(p, h.size, align))",
     ["-p", "nalloc-capi", "--test", "c_programs", "misuse_is_reported"]),
    ("witness-free-plain",
     "nalloc_witness_free of a non-witness block stops the process",
     RAW, "    if !witness::contains(p) {\n        fail(\"nalloc_witness_free(): not a witness block\"",
     "    if false && !witness::contains(p) {\n        fail(\"nalloc_witness_free(): not a witness block\"",
     ["-p", "nalloc-capi", "--test", "c_programs", "misuse_is_reported"]),
    ("stale-witness-free",
     "a stale witness free after reuse (blocks over 64 KiB) is reported, not a crash",
     "src/policy.rs", "if usize::BITS >= 64 { 1024 } else { 16 }", "if usize::BITS >= 64 { 1 } else { 1 }",
     ["-p", "zk-nalloc", "--test", "misuse", "stale_witness"]),
    ("hardened-double-free",
     "the hardened build catches every double free (not only the latest of a page)",
     "src/small/hardened.rs", "if bs >= 16 && *words.add(1) == marker(p) {",
     "if false && bs >= 16 && *words.add(1) == marker(p) {",
     ["-p", "zk-nalloc", "--features", "hardened", "--test", "hardened", "double_free_of_an_earlier"]),
]


def run(name, claim, path, old, new, args):
    full = os.path.join(ROOT, path)
    with open(full, encoding="utf-8") as f:
        text = f.read()
    if text.count(old) != 1:
        return "stale", f"{path}: the code to plant in is found {text.count(old)} times, not once"
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    try:
        with open(full, "w", encoding="utf-8") as f:
            f.write(text.replace(old, new))
        child = subprocess.Popen(["cargo", "test", *args], cwd=ROOT, env=env, start_new_session=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            out, _ = child.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            # A test that waits forever once its property breaks: the loss
            # is noticed (CI times out), but the test should fail instead.
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return "hung", f"the tests did not finish in {TIMEOUT} s"
    finally:
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)
    if re.search(r"^error(\[E\d+\])?: ", out, re.M) and "could not compile" in out:
        return "broken", "the planted code does not build:\n" + "\n".join(
            l for l in out.splitlines() if l.startswith("error"))[:2000]
    if child.returncode == 0:
        ran = sum(int(n) for n in re.findall(r"test result: ok\. (\d+) passed", out))
        return "missed", f"the tests still pass ({ran} ran)"
    failed = re.findall(r"^test (\S+) \.\.\. FAILED", out, re.M)
    # The first line of the first failure's message (after "panicked at ...:").
    msg = re.search(r"panicked at [^\n]*\n([^\n]*)", out)
    return "caught", f"FAILED {', '.join(failed) or '(see log)'}: {msg.group(1).strip() if msg else ''}"[:400]


def main():
    want = sys.argv[1:]
    chosen = [pl for pl in PLANTS if not want or any(w in pl[0] for w in want)]
    if not chosen:
        sys.exit(f"plants: none named like {want}; names: {', '.join(p[0] for p in PLANTS)}")
    bad = 0
    for pl in chosen:
        verdict, detail = run(*pl)
        print(f"plant {pl[0]} ({pl[1]}): {verdict}: {detail}", flush=True)
        bad += verdict != "caught"
    print(f"plants: {len(chosen) - bad} of {len(chosen)} caught by the tests")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

"""Allocation-heavy Python workload for nalloc-preload-bench (workload `python`).

Run it with PYTHONMALLOC=malloc so that CPython's small objects go through
malloc/free (and so through the LD_PRELOADed allocator) instead of pymalloc's
arenas; without it the allocator under test only sees large objects.

Four threads each build and tear down dicts of strings, nested lists and
tuples, string splits and joins, and sort records; every round a thread hands
its finished structures to the next thread through a queue, which checks and
drops them (cross-thread frees). Results are checked against values computed
independently; any mismatch exits with status 1.

usage: python3 alloc_stress.py [ROUNDS [THREADS]]   (default 40, 4)
stdout on success: "python ok rounds=R threads=T checksum=C malloc=<library of malloc>"
"""

import queue
import sys
import threading

N_KEYS = 4000


def build(seed, r):
    """One round: returns (table, records, text) built from fresh objects."""
    table = {}
    for i in range(N_KEYS):
        k = "k%d-%d-%d" % (seed, r, i)
        table[k] = [i, str(i * 7), (k, i & 15), {"v": i}]
    records = [(str((i * 2654435761) % 100003), i, "x" * (i % 40)) for i in range(N_KEYS)]
    records.sort()
    words = [("w%d" % (i % 97)) * (1 + i % 5) for i in range(N_KEYS)]
    text = " ".join(words)
    return table, records, text


def check(seed, r, table, records, text):
    """Verifies a round's structures; returns a checksum contribution."""
    if len(table) != N_KEYS:
        raise AssertionError("table size %d" % len(table))
    s = 0
    for i in range(0, N_KEYS, 97):
        v = table["k%d-%d-%d" % (seed, r, i)]
        if v[0] != i or v[1] != str(i * 7) or v[3]["v"] != i:
            raise AssertionError("table entry %d corrupted" % i)
        s += v[0]
    if any(records[i] > records[i + 1] for i in range(len(records) - 1)):
        raise AssertionError("records not sorted")
    parts = text.split(" ")
    if len(parts) != N_KEYS or parts[5] != ("w5" * 1):
        raise AssertionError("text corrupted")
    return s + len(text) + sum(rec[1] for rec in records[:100])


def worker(seed, rounds, inbox, outbox, results, errors):
    total = 0
    try:
        for r in range(rounds):
            built = build(seed, r)
            outbox.put((seed, r, built))
            del built
            # Check (and free) what the previous thread built.
            other_seed, other_r, (table, records, text) = inbox.get()
            total += check(other_seed, other_r, table, records, text)
            del table, records, text
            # Short-lived garbage: list and dict comprehensions, slicing.
            tmp = [str(j) * 3 for j in range(2000)]
            d = {s: len(s) for s in tmp}
            total += sum(d.values()) + len(tmp[::3])
        results[seed] = total
    except BaseException as e:  # noqa: BLE001 - reported and turned into exit 1
        errors.append("thread %d: %r" % (seed, e))
        # Unblock the consumer of our outbox.
        for _ in range(rounds):
            outbox.put((seed, -1, ({}, [], "")))


def malloc_library():
    """Path of the shared object whose malloc the program uses, or "unknown".

    Walks the dynamic linker's link map in symbol-lookup order (main program,
    LD_PRELOAD objects, then the needed libraries) and returns the first
    object that itself defines malloc: the one that serves the program.
    (dladdr on &malloc alone is not enough: a non-PIE python3 resolves it to
    its own PLT stub.)
    """
    try:
        import ctypes
        import os

        class LinkMap(ctypes.Structure):
            pass

        LinkMap._fields_ = [
            ("l_addr", ctypes.c_void_p),
            ("l_name", ctypes.c_char_p),
            ("l_ld", ctypes.c_void_p),
            ("l_next", ctypes.POINTER(LinkMap)),
            ("l_prev", ctypes.POINTER(LinkMap)),
        ]

        class DlInfo(ctypes.Structure):
            _fields_ = [
                ("dli_fname", ctypes.c_char_p),
                ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p),
                ("dli_saddr", ctypes.c_void_p),
            ]

        libc = ctypes.CDLL(None)
        dlopen = libc.dlopen
        dlopen.restype = ctypes.c_void_p
        dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
        dlsym = libc.dlsym
        dlsym.restype = ctypes.c_void_p
        dlsym.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        dladdr = libc.dladdr
        dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
        rtld_lazy, rtld_noload = 1, 4
        node = ctypes.cast(ctypes.c_void_p(libc._handle), ctypes.POINTER(LinkMap)).contents.l_next
        while node:
            name = node.contents.l_name
            if name:
                handle = dlopen(name, rtld_lazy | rtld_noload)
                addr = dlsym(handle, b"malloc") if handle else None
                info = DlInfo()
                if addr and dladdr(addr, ctypes.byref(info)) and info.dli_fname:
                    if os.path.realpath(info.dli_fname) == os.path.realpath(name):
                        return name.decode()
            node = node.contents.l_next
    except Exception:  # noqa: BLE001 - best effort
        pass
    return "unknown"


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    nthreads = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    if rounds < 1 or nthreads < 1:
        print("usage: alloc_stress.py [ROUNDS [THREADS]]", file=sys.stderr)
        return 2
    queues = [queue.Queue(maxsize=2) for _ in range(nthreads)]
    results = [None] * nthreads
    errors = []
    threads = [
        threading.Thread(
            target=worker, args=(t, rounds, queues[t], queues[(t + 1) % nthreads], results, errors)
        )
        for t in range(nthreads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors or any(r is None for r in results):
        print("python: FAILED: %s" % ("; ".join(errors) or "missing results"), file=sys.stderr)
        return 1
    print(
        "python ok rounds=%d threads=%d checksum=%d malloc=%s"
        % (rounds, nthreads, sum(results), malloc_library())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

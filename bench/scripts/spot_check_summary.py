"""Summarises the output of `spot_check.sh run`: medians per workload and allocator.

usage: python3 bench/scripts/spot_check_summary.py DIR   (the run's $OUT)
"""

import collections
import json
import statistics
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    runs = collections.defaultdict(list)
    for line in open(f"{out}/workers.txt"):
        _, workload, alloc, rest = line.split(" ", 3)
        if rest.strip() == "FAILED":
            print(f"FAILED run: {workload} {alloc}")
            continue
        r = json.loads(rest)
        name = workload + (" full" if r["full"] else "")
        runs[(name, alloc)].append((r["wall_ms"], r["maxrss_kib"] / 1024))
    print("workload       allocator  runs  median ms    min    max  x glibc  x mimalloc  peak RSS MiB (median)")
    by_workload = collections.defaultdict(dict)
    for (w, a), v in runs.items():
        by_workload[w][a] = v
    for w, allocs in by_workload.items():
        med = {a: statistics.median(x[0] for x in v) for a, v in allocs.items()}
        for a, v in allocs.items():
            times = [x[0] for x in v]
            print(f"{w:14s} {a:9s} {len(v):5d} {med[a]:10.0f} {min(times):6.0f} {max(times):6.0f}"
                  f"  {med[a] / med['glibc']:7.2f}  {med[a] / med['mimalloc']:10.2f}"
                  f"  {statistics.median(x[1] for x in v):8.1f}")
    pre = collections.defaultdict(list)
    for line in open(f"{out}/preload.txt"):
        f = line.split()
        if len(f) < 6:
            print(f"FAILED run: {' '.join(f[1:3])}")
            continue
        pre[(f[1], f[2])].append((float(f[4]), int(f[5]) / 1024))
    print("\nLD_PRELOAD: workload library runs median s [min-max] / peak RSS MiB (median)")
    for (w, lib), v in pre.items():
        t = [x[0] for x in v]
        print(f"{w:8s} {lib:26s} {len(v)}  {statistics.median(t):.2f} [{min(t):.2f}-{max(t):.2f}]"
              f" / {statistics.median(x[1] for x in v):.1f}")


if __name__ == "__main__":
    main()

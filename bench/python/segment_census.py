"""Where a program's small-object memory goes at its RSS peak under libnalloc.so.

Runs COMMAND with LD_PRELOAD=LIB, samples its RSS every few milliseconds and,
at each new high (1 MiB above the last), stops it (SIGSTOP), reads nalloc's
segment headers from /proc/PID/mem and the residency of every page slot from
/proc/PID/pagemap, and resumes it. Printed for the highest sample:

* resident bytes in segment memory, split into free page slots (released,
  not purged), blocks freed by other threads but not yet collected by the
  page's owner (published minus collected, the two counts in each page's
  third cache line), and the rest
  (live blocks, freed blocks on owners' free lists, rounding);
* per block size: pages, full pages, live and remotely freed bytes, resident.

It reads nalloc's metadata at fixed offsets, which `src/page.rs` and
`src/segment.rs` assert at compile time (search for "segment_census").
Linux only; needs permission to read the child's memory (same user).

usage: python3 segment_census.py LIB COMMAND [ARGS...]
(block sizes with at least CENSUS_MIN_KIB resident are listed, default 256;
for a Rust program with NAlloc built in, LIB may be any path: the loader
ignores a missing preload)
example:
  PYTHONMALLOC=malloc python3 bench/python/segment_census.py \\
      target/release/libnalloc.so python3 bench/python/alloc_stress.py 40 4
"""

import os
import signal
import struct
import subprocess
import sys
import time

SEGMENT = 4 << 20
PAGE = 256 << 10
PAGES = SEGMENT // PAGE
PAGE_META = 192  # size_of::<Page>()
# Offsets inside `Page` and `Segment` (asserted in the Rust sources).
USED, CLASS, IN_FULL, BLOCK_SIZE, REMOTE_PUBLISHED, REMOTE_TAKEN = 8, 40, 41, 72, 128, 132
SEG_HEAP, SEG_FREE_MASK = PAGES * PAGE_META, PAGES * PAGE_META + 24


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except OSError:
        return 0


def segment_ranges(pid):
    """Committed parts of nalloc's segment region: readable anonymous
    mappings contiguous with a reserved (inaccessible) anonymous range of
    1 GiB or more, the region's uncommitted rest."""
    maps = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6:
                continue  # file-backed or named
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            maps.append((lo, hi, fields[1]))
    maps.sort()
    out = set()
    for i, (lo, hi, perms) in enumerate(maps):
        if perms.startswith("---") and hi - lo >= 1 << 30:
            for step in (-1, 1):
                j = i
                while 0 <= j + step < len(maps):
                    a, b = maps[j], maps[j + step]
                    if (a[1] != b[0]) if step == 1 else (b[1] != a[0]):
                        break
                    j += step
                    if maps[j][2].startswith("rw"):
                        out.add(maps[j][:2])
    return sorted(out)


def census(pid):
    """One record per page slot: (heap, free, block size, used, remote, resident KiB, full)."""
    slots = []
    mem = open(f"/proc/{pid}/mem", "rb")
    pagemap = open(f"/proc/{pid}/pagemap", "rb")
    for lo, hi in segment_ranges(pid):
        seg = (lo + SEGMENT - 1) & ~(SEGMENT - 1)
        while seg + SEGMENT <= hi:
            pagemap.seek(seg // 4096 * 8)
            pm = pagemap.read(SEGMENT // 4096 * 8)
            present = [(struct.unpack_from("<Q", pm, i * 8)[0] >> 63) & 1 for i in range(SEGMENT // 4096)]
            if not any(present):
                seg += SEGMENT
                continue
            mem.seek(seg)
            hdr = mem.read(SEG_FREE_MASK + 8)
            heap = struct.unpack_from("<Q", hdr, SEG_HEAP)[0]
            free_mask = struct.unpack_from("<I", hdr, SEG_FREE_MASK)[0]
            if heap == 0 or free_mask >> PAGES:
                seg += SEGMENT  # not a segment header (another region)
                continue
            for i in range(PAGES):
                base = i * PAGE_META
                used = struct.unpack_from("<I", hdr, base + USED)[0]
                size = struct.unpack_from("<I", hdr, base + BLOCK_SIZE)[0]
                full = hdr[base + IN_FULL]
                # Remote frees published and collected, both wrapping u32
                # counts (src/remote.rs); a negative difference is transient.
                published, taken = struct.unpack_from("<II", hdr, base + REMOTE_PUBLISHED)
                remote = max(0, ((published - taken + (1 << 31)) % (1 << 32)) - (1 << 31))
                resident = sum(present[i * PAGE // 4096:(i + 1) * PAGE // 4096]) * 4
                slots.append((heap, (free_mask >> i) & 1, size, used, remote, resident, full))
            seg += SEGMENT
    return slots


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    lib = os.path.abspath(sys.argv[1])
    child = subprocess.Popen(sys.argv[2:], env=dict(os.environ, LD_PRELOAD=lib), stdout=subprocess.DEVNULL)
    best_kib, best = 0, None
    while child.poll() is None:
        kib = rss_kib(child.pid)
        if kib > best_kib + 1024:
            try:
                os.kill(child.pid, signal.SIGSTOP)
                slots = census(child.pid)
                best_kib, best = rss_kib(child.pid), slots
            except OSError:
                pass
            finally:
                try:
                    os.kill(child.pid, signal.SIGCONT)
                except OSError:
                    pass
        time.sleep(0.003)
    if child.returncode != 0:
        sys.exit(f"the command failed with status {child.returncode}")
    if best is None:
        sys.exit("no sample was taken (did the program use nalloc's segments?)")
    mib = lambda kib: kib / 1024
    in_use = [s for s in best if not s[1]]
    resident = sum(s[5] for s in best)
    free_slots = sum(s[5] for s in best if s[1])
    remote = sum(s[2] * s[4] for s in in_use) / 1024
    live = sum(s[2] * (s[3] - s[4]) for s in in_use) / 1024
    print(f"peak RSS sampled: {mib(best_kib):.1f} MiB")
    print(f"segment memory resident: {mib(resident):.1f} MiB in {len(best) // PAGES} segments")
    print(f"  free page slots (released, not purged): {mib(free_slots):.1f} MiB")
    remote_full = sum(s[2] * s[4] for s in in_use if s[6]) / 1024
    print(f"  blocks freed by other threads, not yet collected: {mib(remote):.1f} MiB"
          f" ({mib(remote_full):.1f} MiB of it in full pages)")
    print(f"  blocks in use: {mib(live):.1f} MiB")
    print(f"  other (owners' free lists, untouched tails, rounding): {mib(resident - free_slots - remote - live):.1f} MiB")
    print("per block size: pages (full) / in use KiB / remotely freed KiB / resident KiB")
    by_size = {}
    for s in in_use:
        row = by_size.setdefault(s[2], [0, 0, 0, 0, 0])
        row[0] += 1
        row[1] += s[6]
        row[2] += s[2] * (s[3] - s[4]) // 1024
        row[3] += s[2] * s[4] // 1024
        row[4] += s[5]
    for size, r in sorted(by_size.items()):
        if r[4] >= int(os.environ.get("CENSUS_MIN_KIB", "256")):
            print(f"  {size:6d} B  {r[0]:4d} ({r[1]:3d})  {r[2]:8d}  {r[3]:8d}  {r[4]:8d}")
    heaps = {}
    for s in best:
        row = heaps.setdefault(s[0], [0, 0])
        row[0] += s[5]
        row[1] += s[5] if s[1] else 0
    print("resident per owning heap, of it in free page slots (MiB): "
          + ", ".join(f"{mib(v[0]):.1f} ({mib(v[1]):.1f})" for v in heaps.values()))


if __name__ == "__main__":
    main()

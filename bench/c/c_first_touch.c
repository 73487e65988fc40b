/*
 * first-touch: fresh large blocks in a fresh process, for the LD_PRELOAD
 * benchmark (nalloc-preload-bench). Sizes grow from 256 KiB by doubling up
 * to MAX_MIB, as a prover's vectors grow with its domain; each size is
 * allocated once with malloc and once with calloc, every 4 KiB page is
 * written once (calloc'd pages are checked to be zero first), and the block
 * is freed before the next. Nothing is reused across runs: the run is the
 * first proof of a process. An allocator that builds the next, larger block
 * out of the pages of the freed smaller ones faults in only the growth; one
 * that maps every block afresh faults in every page of every block.
 *
 * usage: c_first_touch [MAX_MIB]   (default 1024)
 * stdout on success:
 *   "first-touch ok blocks=N bytes=B sum=S malloc=<library of malloc>"
 * build: cc -O2 c_first_touch.c -o c_first_touch
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_common.h"

#define KIB 1024UL
#define MIB (1024UL * 1024UL)
#define PAGE 4096UL

/* Writes every page of p (size bytes), reads the bytes back; returns their
 * sum, aborts on a mismatch. zeroed: every written byte must be 0 first. */
static unsigned long long touch(volatile unsigned char *p, size_t size, unsigned char base, int zeroed) {
    unsigned long long sum = 0;
    for (size_t off = 0; off < size; off += PAGE) {
        if (zeroed && p[off] != 0) {
            fprintf(stderr, "first-touch: calloc(%zu) byte at %zu is %u, not 0\n", size, off, p[off]);
            abort();
        }
        p[off] = (unsigned char)(base + (off >> 12));
    }
    if (zeroed && p[size - 1] != 0) {
        fprintf(stderr, "first-touch: calloc(%zu) last byte is not 0\n", size);
        abort();
    }
    p[size - 1] = base;
    for (size_t off = 0; off + 1 < size; off += PAGE) {
        unsigned char want = (unsigned char)(base + (off >> 12));
        if (p[off] != want) {
            fprintf(stderr, "first-touch: block of %zu: byte at %zu is %u, wrote %u\n", size, off, p[off], want);
            abort();
        }
        sum += want;
    }
    return sum;
}

int main(int argc, char **argv) {
    long max_mib = argc > 1 ? atol(argv[1]) : 1024;
    if (max_mib < 1) {
        fprintf(stderr, "usage: c_first_touch [MAX_MIB]\n");
        return 2;
    }
    unsigned long long total = 0, sum = 0;
    long blocks = 0;
    for (size_t size = 256 * KIB; size <= (size_t)max_mib * MIB; size *= 2) {
        for (int zeroed = 0; zeroed < 2; zeroed++) {
            volatile unsigned char *p = zeroed ? calloc(1, size) : malloc(size);
            if (!p) {
                fprintf(stderr, "first-touch: %s(%zu) failed\n", zeroed ? "calloc" : "malloc", size);
                return 1;
            }
            sum += touch(p, size, (unsigned char)(blocks * 7 + 1), zeroed);
            total += size;
            blocks++;
            free((void *)p);
        }
    }
    printf("first-touch ok blocks=%ld bytes=%llu sum=%llu malloc=%s\n", blocks, total, sum, malloc_library());
    return 0;
}

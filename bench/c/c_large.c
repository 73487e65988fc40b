/*
 * c-large: large-block churn for the LD_PRELOAD benchmark
 * (nalloc-preload-bench). Each iteration mallocs a random 5..25 MiB block,
 * writes one byte per 4 KiB page, reads the bytes back (a mismatch aborts)
 * and frees it. This is where an allocator that returns every large block to
 * the OS pays a page fault per page on every iteration.
 *
 * usage: c_large [ITERATIONS]   (default 500)
 * stdout on success: "c-large ok iterations=N bytes=B sum=S malloc=<library of malloc>"
 * build: cc -O2 c_large.c -o c_large
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_common.h"

#define MIB (1024UL * 1024UL)
#define PAGE 4096UL

int main(int argc, char **argv) {
    long iterations = argc > 1 ? atol(argv[1]) : 500;
    if (iterations < 1) {
        fprintf(stderr, "usage: c_large [ITERATIONS]\n");
        return 2;
    }
    uint64_t rng = 0x243F6A8885A308D3ULL;
    unsigned long long total = 0, sum = 0;
    for (long it = 0; it < iterations; it++) {
        size_t size = 5 * MIB + (size_t)(next_rand(&rng) % (20 * MIB + 1));
        volatile unsigned char *p = malloc(size);
        if (!p) {
            fprintf(stderr, "c-large: malloc(%zu) failed\n", size);
            return 1;
        }
        unsigned char base = (unsigned char)(it * 7 + 1);
        for (size_t off = 0; off < size; off += PAGE) p[off] = (unsigned char)(base + (off >> 12));
        p[size - 1] = base;
        for (size_t off = 0; off + 1 < size; off += PAGE) {
            unsigned char want = (unsigned char)(base + (off >> 12));
            if (p[off] != want) {
                fprintf(stderr, "c-large: iteration %ld: byte at %zu is %u, wrote %u\n", it, off, p[off], want);
                abort();
            }
            sum += want;
        }
        if (p[size - 1] != base) {
            fprintf(stderr, "c-large: iteration %ld: last byte corrupted\n", it);
            abort();
        }
        total += size;
        free((void *)p);
    }
    printf("c-large ok iterations=%ld bytes=%llu sum=%llu malloc=%s\n", iterations, total, sum, malloc_library());
    return 0;
}

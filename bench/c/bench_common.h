/*
 * What the LD_PRELOAD benchmark programs share: their random numbers and
 * the success line's `malloc=<library>` (which allocator really served
 * malloc). The runner (bench/src/preload/setup.rs) writes this header next to
 * each program before compiling it; by hand: cc -O2 c_large.c -o c_large -ldl
 * from this directory.
 */
#ifndef NALLOC_BENCH_COMMON_H
#define NALLOC_BENCH_COMMON_H

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

/* xorshift64*: fast, and the same sequence under every allocator. */
static inline uint64_t next_rand(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* The shared object that defines the malloc this program calls. */
static inline const char *malloc_library(void) {
    Dl_info info;
    if (dladdr((void *)&malloc, &info) && info.dli_fname) return info.dli_fname;
    return "unknown";
}

#endif

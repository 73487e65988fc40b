/*
 * Heap misuse that nalloc must report in one line on stderr and stop, as
 * glibc does (each case runs in its own process), and misuse-adjacent uses
 * that must simply work.
 *
 * Usage: misuse CASE   (nalloc preloaded or linked; see the cases below)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "nalloc.h"

/* Keeps the compiler from seeing through the misuse. */
static void *volatile sink;

static void *launder(void *p) {
    sink = p;
    return sink;
}

/* Changes the first byte past a block (its first canary byte) to a value it
 * cannot already hold: a fixed value equals the random canary's byte once in
 * 256 runs, and the overflow then goes unseen. */
static void overflow_by_one(char *at) {
    volatile char *v = at;
    *v = (char)~*v;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *c = argv[1];
    _Alignas(16) char stack[256];
    memset(stack, 0x5A, sizeof stack);

    if (strcmp(c, "double-free") == 0) {
        char *p = malloc(40);
        char *keep = malloc(40); /* keeps the page in use */
        free(p);
        free(launder(p));
        free(keep);
    } else if (strcmp(c, "double-free-large") == 0) {
        char *p = malloc(100000);
        free(p);
        free(launder(p));
    } else if (strcmp(c, "free-stack") == 0) {
        free(launder(stack + 64));
    } else if (strcmp(c, "free-stack-misaligned") == 0) {
        free(launder(stack + 9));
    } else if (strcmp(c, "free-mmap") == 0) {
        char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return 3;
        memset(m, 0x33, 1 << 20);
        free(launder(m + 4096 + 64));
    } else if (strcmp(c, "realloc-foreign") == 0) {
        sink = realloc(launder(stack + 64), 100);
    } else if (strcmp(c, "usable-foreign") == 0) {
        printf("%zu\n", malloc_usable_size(launder(stack + 64)));
    } else if (strcmp(c, "witness-double-free") == 0) {
        char *w = nalloc_witness_alloc(100000);
        nalloc_witness_free(w);
        nalloc_witness_free(launder(w));
    } else if (strcmp(c, "witness-double-free-small") == 0) {
        char *w = nalloc_witness_alloc(100);
        char *keep = nalloc_witness_alloc(100);
        nalloc_witness_free(w);
        nalloc_witness_free(launder(w));
        nalloc_witness_free(keep);
    } else if (strcmp(c, "witness-stale-free") == 0 || strcmp(c, "witness-stale-free-3m") == 0) {
        /* A stale free after the same size was allocated again: the new
         * block lies elsewhere (the witness region rotates), so the stale
         * pointer finds its released chunk and is reported, and the new
         * owner's block is never freed. */
        size_t n = strcmp(c, "witness-stale-free") == 0 ? 100000 : 3u << 20;
        char *w = nalloc_witness_alloc(n);
        if (!w) return 3;
        memset(w, 1, n);
        nalloc_witness_free(w);
        char *again = nalloc_witness_alloc(n);
        if (!again) return 3;
        memset(again, 2, n);
        nalloc_witness_free(launder(w));
        /* Not reached if the stale free was caught. `again` is not freed:
         * its free would be reported if the stale free had freed it, and
         * hide that it did. */
        if (again[n - 1] != 2) return 4;
    } else if (strcmp(c, "witness-stale-free-plain") == 0) {
        /* The same through free(). */
        char *w = nalloc_witness_alloc(3u << 20);
        if (!w) return 3;
        free(w);
        char *again = nalloc_witness_alloc(3u << 20);
        if (!again) return 3;
        again[0] = 2;
        free(launder(w));
        if (again[0] != 2) return 4;
    } else if (strcmp(c, "witness-header-overwrite") == 0) {
        /* The byte before a witness block belongs to the C front's sealed
         * 16-byte header: a write there breaks the seal, and free reports
         * the block as not one of nalloc's. */
        char *w = nalloc_witness_alloc(100);
        if (!w) return 3;
        overflow_by_one((char *)launder(w) - 1);
        free(w);
    } else if (strcmp(c, "witness-overflow") == 0) {
        /* One byte past a small secret: its canary reports it at free. */
        char *w = nalloc_witness_alloc(100);
        memset(launder(w), 7, 100);
        overflow_by_one((char *)launder(w) + 100);
        nalloc_witness_free(w);
    } else if (strcmp(c, "witness-overflow-realloc") == 0) {
        char *w = nalloc_witness_alloc(100);
        memset(launder(w), 7, 100);
        overflow_by_one((char *)launder(w) + 100);
        w = realloc(w, 104);
        nalloc_witness_free(w);
    } else if (strcmp(c, "witness-overflow-free") == 0) {
        /* A large secret whose end is not 16-byte aligned: the bytes up to
         * the guard page are canary bytes. */
        char *w = nalloc_witness_alloc(200001);
        memset(launder(w), 7, 200001);
        overflow_by_one((char *)launder(w) + 200001);
        free(w);
    } else if (strcmp(c, "witness-free-plain") == 0) {
        nalloc_witness_free(launder(malloc(10)));
    } else if (strcmp(c, "free-witness-then-malloc") == 0) {
        /* free() of a witness block wipes and frees it as witness memory; the
         * engine stays sound for the large blocks that follow. */
        unsigned char *w = nalloc_witness_alloc(3u << 20);
        if (!w) return 3;
        memset(w, 0xA5, 3u << 20);
        if (malloc_usable_size(w) < (3u << 20)) return 4;
        free(w);
        for (int i = 0; i < 8; i++) {
            char *p = malloc((size_t)(i + 1) << 20);
            if (!p) return 5;
            memset(p, i, (size_t)(i + 1) << 20);
            free(p);
        }
    } else if (strcmp(c, "malloc0") == 0) {
        void *p = malloc(0);
        if (!p) return 3;
        size_t u = malloc_usable_size(p);
        free(p);
        if (u > 32) {
            printf("malloc(0): usable %zu\n", u);
            return 4;
        }
    } else if (strcmp(c, "libc-block") == 0) {
        /* A block of the C library's own malloc (as a library opened with
         * RTLD_DEEPBIND gets), freed with the process's free. */
        void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
        if (!libc) return 3;
        void *(*libc_malloc)(size_t) = (void *(*)(size_t))dlsym(libc, "malloc");
        if (!libc_malloc) return 3;
        char *p = libc_malloc(100);
        if (!p) return 3;
        memset(p, 1, 100);
        p = realloc(p, 200);
        if (!p || malloc_usable_size(p) < 200) return 4;
        free(p);
    } else {
        return 2;
    }
    printf("misuse: not detected\n");
    return 0;
}

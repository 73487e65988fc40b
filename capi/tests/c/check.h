/* Shared helpers of the C test programs (run by the Rust tests in capi/tests). */
#ifndef NALLOC_TEST_CHECK_H
#define NALLOC_TEST_CHECK_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nalloc.h"

static atomic_int check_failures;

/* Records a failure (and goes on, so one run reports every broken case). */
#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            atomic_fetch_add(&check_failures, 1);                                    \
        }                                                                            \
    } while (0)

/* A value no allocation function ever stores in errno. */
#define ERRNO_SENTINEL 4242

/* Evaluates `expr` with errno set to the sentinel first. */
#define WITH_SENTINEL(expr) (errno = ERRNO_SENTINEL, (expr))

/* True if nalloc is the process's allocator (preloaded or linked). */
static inline int nalloc_active(void) {
    return dlsym(RTLD_DEFAULT, "nalloc_stats") != NULL;
}

/* nalloc_stats through dlsym (for programs not linked with -lnalloc). */
static inline int stats_via_dlsym(struct nalloc_stats *out) {
    int (*f)(struct nalloc_stats *) = (int (*)(struct nalloc_stats *))dlsym(RTLD_DEFAULT, "nalloc_stats");
    if (f == NULL) return -1;
    return f(out);
}

static inline int finish(const char *name) {
    int n = atomic_load(&check_failures);
    if (n != 0) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, n);
        return 1;
    }
    printf("%s: ok\n", name);
    return 0;
}

#endif

/*
 * Edge cases of every C entry point, with errno checked after each call.
 * Runs under glibc's malloc as well as nalloc (the expectations are glibc's),
 * except where glibc 2.36 and later glibc differ (aligned_alloc with a bad
 * alignment: nalloc follows glibc >= 2.38).
 *
 * Usage: edge [expect-nalloc]
 */
#include "check.h"

#include <gnu/libc-version.h>
#include <malloc.h>
#include <stddef.h>
#include <unistd.h>

/* The failed-realloc cases read the old block on purpose (it stays valid). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

/* Defeat constant folding of sizes. */
static volatile size_t v_size_max = SIZE_MAX;
static volatile size_t v_half = SIZE_MAX / 2 + 1;
static volatile size_t v_ptrdiff_max = PTRDIFF_MAX;

static int aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + seed);
}

static int same(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 31 + seed)) return 0;
    return 1;
}

static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0) return 0;
    return 1;
}

static void test_malloc(void) {
    void *a = WITH_SENTINEL(malloc(0));
    CHECK(a != NULL);
    CHECK(errno == ERRNO_SENTINEL);
    void *b = malloc(0);
    CHECK(b != NULL && b != a);
    WITH_SENTINEL(free(a));
    CHECK(errno == ERRNO_SENTINEL);
    free(b);

    CHECK(WITH_SENTINEL(malloc(v_size_max)) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(WITH_SENTINEL(malloc(v_ptrdiff_max)) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(WITH_SENTINEL(malloc(v_half)) == NULL);
    CHECK(errno == ENOMEM);

    /* Every size class and the span boundary: alignment, usable size, writable. */
    for (size_t n = 1; n < (1u << 22); n = n < 256 ? n + 1 : n + n / 3) {
        unsigned char *p = WITH_SENTINEL(malloc(n));
        CHECK(p != NULL && errno == ERRNO_SENTINEL);
        if (!p) continue;
        CHECK(aligned(p, 16));
        size_t u = malloc_usable_size(p);
        CHECK(u >= n);
        fill(p, u, (unsigned)n);
        CHECK(same(p, u, (unsigned)n));
        WITH_SENTINEL(free(p));
        CHECK(errno == ERRNO_SENTINEL);
    }
    CHECK(malloc_usable_size(NULL) == 0);
    WITH_SENTINEL(free(NULL));
    CHECK(errno == ERRNO_SENTINEL);
}

static void test_calloc(void) {
    CHECK(WITH_SENTINEL(calloc(v_size_max, 2)) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(WITH_SENTINEL(calloc(2, v_half)) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(WITH_SENTINEL(calloc(v_half, v_half)) == NULL);
    CHECK(errno == ENOMEM);

    void *z = WITH_SENTINEL(calloc(0, 0));
    CHECK(z != NULL && errno == ERRNO_SENTINEL);
    free(z);
    z = WITH_SENTINEL(calloc(0, v_size_max));
    CHECK(z != NULL && errno == ERRNO_SENTINEL);
    free(z);

    /* Recycled memory comes back zeroed: small, large, and a pooled span. */
    size_t sizes[] = {24, 1000, 40000, 100000, 3u << 20, 9u << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = sizes[k];
        for (int round = 0; round < 3; round++) {
            unsigned char *d = malloc(n);
            CHECK(d != NULL);
            if (d) memset(d, 0xAB, n);
            free(d);
            unsigned char *c = WITH_SENTINEL(calloc(1, n));
            CHECK(c != NULL && errno == ERRNO_SENTINEL);
            if (c) CHECK(all_zero(c, n));
            free(c);
        }
    }
}

static void test_realloc(void) {
    unsigned char *p = WITH_SENTINEL(realloc(NULL, 100));
    CHECK(p != NULL && errno == ERRNO_SENTINEL);
    fill(p, 100, 1);

    /* Grow through small, large, huge-page-sized; shrink back. */
    size_t steps[] = {100, 200, 5000, 70000, 300000, 3u << 20, 9u << 20, 40000, 16, 100};
    size_t have = 100;
    for (size_t k = 1; k < sizeof steps / sizeof *steps; k++) {
        size_t n = steps[k];
        unsigned char *q = WITH_SENTINEL(realloc(p, n));
        CHECK(q != NULL && errno == ERRNO_SENTINEL);
        if (!q) break;
        size_t keep = have < n ? have : n;
        CHECK(same(q, keep, 1));
        CHECK(aligned(q, 16));
        CHECK(malloc_usable_size(q) >= n);
        fill(q, n, 1);
        p = q;
        have = n;
    }

    /* Failure leaves the block intact. */
    CHECK(WITH_SENTINEL(realloc(p, v_size_max)) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(WITH_SENTINEL(realloc(p, v_ptrdiff_max)) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(same(p, have, 1));

    /* realloc(p, 0) frees and returns NULL; errno untouched. */
    CHECK(WITH_SENTINEL(realloc(p, 0)) == NULL);
    CHECK(errno == ERRNO_SENTINEL);

    /* A large block shrunk to 0 too. */
    p = malloc(1u << 20);
    CHECK(WITH_SENTINEL(realloc(p, 0)) == NULL);
    CHECK(errno == ERRNO_SENTINEL);

    /* Over-aligned blocks may be realloc'ed (alignment then is malloc's). */
    size_t aligns[] = {64, 4096, 1u << 17, 1u << 21};
    for (size_t k = 0; k < sizeof aligns / sizeof *aligns; k++) {
        void *m = NULL;
        CHECK(posix_memalign(&m, aligns[k], 1000) == 0);
        if (!m) continue;
        fill(m, 1000, 7);
        unsigned char *g = realloc(m, 200000);
        CHECK(g != NULL);
        if (!g) continue;
        CHECK(same(g, 1000, 7));
        unsigned char *s = realloc(g, 10);
        CHECK(s != NULL);
        if (s) CHECK(same(s, 10, 7));
        free(s);
    }

    /* reallocarray. */
    unsigned char *r = WITH_SENTINEL(reallocarray(NULL, 10, 10));
    CHECK(r != NULL && errno == ERRNO_SENTINEL);
    fill(r, 100, 3);
    CHECK(WITH_SENTINEL(reallocarray(r, v_size_max, 2)) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(same(r, 100, 3));
    unsigned char *r2 = WITH_SENTINEL(reallocarray(r, 1000, 100));
    CHECK(r2 != NULL && errno == ERRNO_SENTINEL);
    if (r2) CHECK(same(r2, 100, 3));
    free(r2 ? r2 : r);
}

static void test_posix_memalign(int keep_errno) {
    void *const untouched = (void *)(uintptr_t)0x1234;
    size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 48, 1000, v_size_max};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        void *p = untouched;
        errno = ERRNO_SENTINEL;
        int rc = posix_memalign(&p, bad[k], 64);
        if (bad[k] == 0 || bad[k] % sizeof(void *) != 0 || (bad[k] & (bad[k] - 1)) != 0) {
            CHECK(rc == EINVAL);
            CHECK(p == untouched);
        }
        CHECK(errno == ERRNO_SENTINEL);
    }

    size_t good[] = {sizeof(void *), 16, 32, 64, 128, 4096, 65536, 1u << 17, 1u << 21, 1u << 30};
    size_t sizes[] = {0, 1, 100, 5000, 70000, 3u << 20};
    for (size_t k = 0; k < sizeof good / sizeof *good; k++) {
        for (size_t j = 0; j < sizeof sizes / sizeof *sizes; j++) {
            void *p = untouched;
            errno = ERRNO_SENTINEL;
            int rc = posix_memalign(&p, good[k], sizes[j]);
            CHECK(rc == 0);
            CHECK(errno == ERRNO_SENTINEL);
            if (rc != 0) continue;
            CHECK(p != untouched && p != NULL);
            CHECK(aligned(p, good[k]));
            CHECK(malloc_usable_size(p) >= sizes[j]);
            if (sizes[j]) {
                fill(p, sizes[j], 9);
                CHECK(same(p, sizes[j], 9));
            }
            WITH_SENTINEL(free(p));
            CHECK(errno == ERRNO_SENTINEL);
        }
    }

    /* Exhaustion: ENOMEM returned, *memptr untouched. glibc also leaves
     * ENOMEM in errno here; nalloc leaves errno alone. */
    void *p = untouched;
    errno = ERRNO_SENTINEL;
    CHECK(posix_memalign(&p, 64, v_size_max) == ENOMEM);
    CHECK(p == untouched);
    if (keep_errno) CHECK(errno == ERRNO_SENTINEL);
    errno = ERRNO_SENTINEL;
    CHECK(posix_memalign(&p, v_half, 1) == ENOMEM);
    CHECK(p == untouched);
    if (keep_errno) CHECK(errno == ERRNO_SENTINEL);
}

static void test_aligned_alloc(int strict) {
    size_t good[] = {1, 2, 8, 16, 64, 4096, 1u << 16, 1u << 20, 1u << 30};
    for (size_t k = 0; k < sizeof good / sizeof *good; k++) {
        void *p = WITH_SENTINEL(aligned_alloc(good[k], 200));
        CHECK(p != NULL && errno == ERRNO_SENTINEL);
        CHECK(aligned(p, good[k]));
        free(p);
    }
    CHECK(WITH_SENTINEL(aligned_alloc(64, v_size_max)) == NULL);
    CHECK(errno == ENOMEM);
    if (strict) {
        /* glibc >= 2.38 (and nalloc): a bad alignment is EINVAL. */
        size_t bad[] = {0, 3, 24, 1000};
        for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
            CHECK(WITH_SENTINEL(aligned_alloc(bad[k], 64)) == NULL);
            CHECK(errno == EINVAL);
        }
    }
}

static void test_memalign(void) {
    /* 0 and tiny alignments behave as malloc; others round up to a power of two. */
    struct { size_t align, expect; } cases[] = {{0, 16}, {1, 16}, {3, 16}, {24, 32}, {100, 128}, {4096, 4096}, {1u << 30, 1u << 30}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        void *p = WITH_SENTINEL(memalign(cases[k].align, 100));
        CHECK(p != NULL && errno == ERRNO_SENTINEL);
        CHECK(aligned(p, cases[k].expect));
        free(p);
    }
    CHECK(WITH_SENTINEL(memalign(v_size_max, 1)) == NULL);
    CHECK(errno == EINVAL);
    CHECK(WITH_SENTINEL(memalign(v_half, 1)) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(WITH_SENTINEL(memalign(64, v_size_max)) == NULL);
    CHECK(errno == ENOMEM);
}

static void test_valloc(void) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *p = WITH_SENTINEL(valloc(1));
    CHECK(p != NULL && errno == ERRNO_SENTINEL);
    CHECK(aligned(p, page));
    free(p);
    p = WITH_SENTINEL(valloc(0));
    CHECK(p != NULL && errno == ERRNO_SENTINEL);
    free(p);
    p = WITH_SENTINEL(pvalloc(1));
    CHECK(p != NULL && errno == ERRNO_SENTINEL);
    CHECK(aligned(p, page));
    CHECK(malloc_usable_size(p) >= page);
    if (p) memset(p, 1, page);
    free(p);
    p = WITH_SENTINEL(pvalloc(page + 1));
    CHECK(p != NULL && malloc_usable_size(p) >= 2 * page);
    free(p);
    CHECK(WITH_SENTINEL(valloc(v_size_max)) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(WITH_SENTINEL(pvalloc(v_size_max)) == NULL);
    CHECK(errno == ENOMEM);
}

static void test_cfree(void) {
    /* cfree is a compat-only symbol in glibc >= 2.26: reach it by name. */
    void (*f)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
    if (f == NULL) return;
    void *p = malloc(10);
    WITH_SENTINEL(f(p));
    CHECK(errno == ERRNO_SENTINEL);
    WITH_SENTINEL(f(NULL));
    CHECK(errno == ERRNO_SENTINEL);
}

static void test_free_sized(int active) {
    /* C23; glibc 2.36 lacks them: reach them by name. nalloc exports both. */
    void (*fs)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    void (*fas)(void *, size_t, size_t) = (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
    if (active) CHECK(fs != NULL && fas != NULL);
    if (fs != NULL) {
        size_t sizes[] = {1, 24, 1000, 70000, (size_t)3 << 20};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = malloc(sizes[i]);
            CHECK(p != NULL);
            memset(p, 0x5A, sizes[i]);
            WITH_SENTINEL(fs(p, sizes[i]));
            CHECK(errno == ERRNO_SENTINEL);
        }
        WITH_SENTINEL(fs(NULL, 0));
        CHECK(errno == ERRNO_SENTINEL);
    }
    if (fas != NULL) {
        void *p = aligned_alloc(4096, 8192);
        CHECK(p != NULL && ((uintptr_t)p & 4095) == 0);
        WITH_SENTINEL(fas(p, 4096, 8192));
        CHECK(errno == ERRNO_SENTINEL);
        WITH_SENTINEL(fas(NULL, 64, 0));
        CHECK(errno == ERRNO_SENTINEL);
    }
}

int main(int argc, char **argv) {
    int expect_nalloc = argc > 1 && strcmp(argv[1], "expect-nalloc") == 0;
    int active = nalloc_active();
    if (expect_nalloc != active) {
        fprintf(stderr, "edge: nalloc active = %d, expected %d\n", active, expect_nalloc);
        return 2;
    }
    int minor = 0;
    sscanf(gnu_get_libc_version(), "2.%d", &minor);
    struct nalloc_stats before = {0}, after = {0};
    if (active) CHECK(stats_via_dlsym(&before) == 0);

    test_malloc();
    test_calloc();
    test_realloc();
    test_posix_memalign(active);
    test_aligned_alloc(active || minor >= 38);
    test_memalign();
    test_valloc();
    test_cfree();
    test_free_sized(active);

    if (active) {
        CHECK(stats_via_dlsym(&after) == 0);
        CHECK(after.small_allocs > before.small_allocs);
        CHECK(after.large_allocs > before.large_allocs);
    }
    return finish(active ? "edge (nalloc)" : "edge (glibc)");
}

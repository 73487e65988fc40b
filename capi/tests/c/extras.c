/*
 * nalloc's own C API (nalloc.h): witness memory, stats, trim. Linked with
 * -lnalloc (no LD_PRELOAD), which must also make nalloc the malloc.
 *
 * Usage: extras
 */
#include "check.h"

#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

/* Reading a freed witness block checks the wipe; the memory stays mapped. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

/* The layout libnalloc fills in (checked on the Rust side too). */
#if UINTPTR_MAX == 0xFFFFFFFFFFFFFFFFu
_Static_assert(sizeof(struct nalloc_stats) == 144, "struct nalloc_stats layout");
_Static_assert(offsetof(struct nalloc_stats, heaps) == 40, "struct nalloc_stats layout");
_Static_assert(offsetof(struct nalloc_stats, witness_locked) == 128, "struct nalloc_stats layout");
_Static_assert(sizeof(struct nalloc_counters) == 120, "struct nalloc_counters layout");
#endif

static int all_zero(const volatile unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0) return 0;
    return 1;
}

static struct nalloc_stats stats(void) {
    struct nalloc_stats s;
    memset(&s, 0xFF, sizeof s);
    CHECK(nalloc_stats(&s) == 0);
    return s;
}

static void test_linked_malloc(void) {
    struct nalloc_stats a = stats();
    void *p = malloc(100);
    void *q = malloc(1u << 20);
    struct nalloc_stats b = stats();
    CHECK(b.small_allocs > a.small_allocs);
    CHECK(b.large_allocs > a.large_allocs);
    CHECK(b.large_used >= a.large_used + (1u << 20));
    CHECK(b.mapped >= b.large_used);
    free(p);
    free(q);
}

static void test_stats_struct(void) {
    /* Nothing is written past the struct. */
    unsigned char buf[sizeof(struct nalloc_stats) + 64];
    memset(buf, 0xAB, sizeof buf);
    errno = ERRNO_SENTINEL;
    CHECK(nalloc_stats((struct nalloc_stats *)(void *)buf) == 0);
    CHECK(errno == ERRNO_SENTINEL);
    for (size_t i = sizeof(struct nalloc_stats); i < sizeof buf; i++) CHECK(buf[i] == 0xAB);

    struct nalloc_stats s = stats();
    CHECK(s.reserved == 0);
    CHECK(s.heaps >= 1);
    CHECK(s.peak_mapped >= s.mapped && s.mapped > 0);
    CHECK(s.small_frees <= s.small_allocs);
    CHECK(s.large_frees <= s.large_allocs);
    CHECK(s.large_peak >= s.large_used);
    CHECK(s.large_capacity >= s.large_used);
    CHECK(s.witness_peak >= s.witness_used);
    CHECK(s.witness_locked == 0 || s.witness_locked == 1);
    CHECK(s.witness_dump_excluded == 0 || s.witness_dump_excluded == 1);
    CHECK(s.witness_fork_wiped == 0 || s.witness_fork_wiped == 1);

    errno = ERRNO_SENTINEL;
    CHECK(nalloc_stats(NULL) == EINVAL);
    CHECK(errno == ERRNO_SENTINEL);
}

static void test_witness_basic(void) {
    size_t sizes[] = {0, 1, 32, 100, 4000, 65536, 70000, 1u << 20, 5u << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = sizes[k];
        struct nalloc_stats before = stats();
        errno = ERRNO_SENTINEL;
        unsigned char *w = nalloc_witness_alloc(n);
        CHECK(w != NULL);
        CHECK(errno == ERRNO_SENTINEL);
        if (!w) continue;
        CHECK(((uintptr_t)w & 15) == 0);
        CHECK(all_zero(w, n));
        memset(w, 0x5A, n);
        struct nalloc_stats during = stats();
        CHECK(during.witness_used >= before.witness_used + n);
        CHECK(during.witness_capacity >= during.witness_used);
        CHECK(during.witness_dump_excluded == 1);
        errno = ERRNO_SENTINEL;
        nalloc_witness_free(w);
        CHECK(errno == ERRNO_SENTINEL);
        struct nalloc_stats after = stats();
        CHECK(after.witness_used == before.witness_used);
        if (n > 0 && n + 16 <= 65536) {
            /* Small blocks stay mapped in their chunk: the secret is gone.
             * (The block's first word, the header, holds a free-list link.) */
            CHECK(all_zero(w, n));
        }
        /* free() of a witness block wipes it as nalloc_witness_free does. */
        if (n > 0 && n + 16 <= 65536) {
            unsigned char *v = nalloc_witness_alloc(n);
            CHECK(v != NULL);
            if (!v) continue;
            memset(v, 0xC3, n);
            free(v);
            CHECK(all_zero(v, n));
            CHECK(stats().witness_used == before.witness_used);
        }
    }
    nalloc_witness_free(NULL);

    errno = ERRNO_SENTINEL;
    CHECK(nalloc_witness_alloc(SIZE_MAX) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(nalloc_witness_alloc(SIZE_MAX - 8) == NULL);
}

/* 1 if the mapping holding p is excluded from core dumps (VmFlags "dd"), as
 * witness memory is and ordinary heap memory is not; -1 if unknown. */
static int dump_excluded(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0, r = -1;
    uintptr_t a = (uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char dash;
        if (sscanf(line, "%lx%c%lx ", &lo, &dash, &hi) == 3 && dash == '-') {
            in = a >= lo && a < hi;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            r = strstr(line, " dd") != NULL;
            break;
        }
    }
    fclose(f);
    return r;
}

/* Reads n bytes at p through /proc/self/mem: 1 if none is `secret`, 1 too if
 * the kernel refuses (a released chunk holds nothing), 0 otherwise. */
static int left_clean(const void *p, size_t n, unsigned char secret) {
    int fd = open("/proc/self/mem", O_RDONLY);
    if (fd < 0) return 1;
    unsigned char buf[4096];
    int clean = 1;
    for (size_t off = 0; off < n && clean; off += sizeof buf) {
        size_t k = n - off < sizeof buf ? n - off : sizeof buf;
        if (pread(fd, buf, k, (off_t)((uintptr_t)p + off)) != (ssize_t)k) break;
        for (size_t i = 0; i < k; i++)
            if (buf[i] == secret) clean = 0;
    }
    close(fd);
    return clean;
}

static void test_witness_realloc(void) {
    /* A C library handed a secret buffer may realloc it: it must stay witness
     * memory, keep its bytes, and every place it leaves must be wiped. */
    size_t steps[] = {200, 3000, 40, 100000, 150000, 64};
    size_t len = 100;
    unsigned char *w = nalloc_witness_alloc(len);
    CHECK(w != NULL);
    if (!w) return;
    memset(w, 0xA5, len);
    for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
        size_t n = steps[k];
        unsigned char *q = realloc(w, n);
        CHECK(q != NULL);
        if (!q) return;
        CHECK(dump_excluded(q) == 1);
        CHECK(malloc_usable_size(q) >= n);
        for (size_t i = 0; i < (len < n ? len : n); i++) CHECK(q[i] == 0xA5);
        if (q != w) CHECK(left_clean(w, len, 0xA5));
        else if (n < len) CHECK(left_clean(w + n, len - n, 0xA5));
        memset(q, 0xA5, n);
        w = q;
        len = n;
    }
    nalloc_witness_free(w);
    CHECK(left_clean(w, len, 0xA5));
    /* Ordinary memory is not dump-excluded: the check above can fail. */
    void *plain = malloc(100);
    CHECK(dump_excluded(plain) == 0);
    free(plain);
}

static void test_witness_wipe_all(void) {
    unsigned char *a = nalloc_witness_alloc(64);
    unsigned char *b = nalloc_witness_alloc(3000);
    unsigned char *c = nalloc_witness_alloc(200000);
    CHECK(a && b && c);
    if (!(a && b && c)) return;
    memset(a, 1, 64);
    memset(b, 2, 3000);
    memset(c, 3, 200000);
    errno = ERRNO_SENTINEL;
    nalloc_witness_wipe_all();
    CHECK(errno == ERRNO_SENTINEL);
    CHECK(all_zero(a, 64));
    CHECK(all_zero(b, 3000));
    struct nalloc_stats s = stats();
    CHECK(s.witness_used == 0);
    /* The arena is usable again. */
    unsigned char *d = nalloc_witness_alloc(64);
    CHECK(d != NULL);
    if (d) CHECK(all_zero(d, 64));
    nalloc_witness_free(d);
}

#define WTHREADS 4
#define WROUNDS 2000

static void *witness_worker(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    unsigned char *held[16] = {0};
    for (unsigned i = 0; i < WROUNDS; i++) {
        unsigned slot = (i * 7 + id) % 16;
        if (held[slot]) {
            size_t n = 16 + (slot * 37) % 3000;
            for (size_t j = 0; j < n; j++) CHECK(held[slot][j] == (unsigned char)(slot + id));
            nalloc_witness_free(held[slot]);
        }
        size_t n = 16 + (slot * 37) % 3000;
        held[slot] = nalloc_witness_alloc(n);
        CHECK(held[slot] != NULL);
        if (held[slot]) {
            CHECK(all_zero(held[slot], n));
            memset(held[slot], (int)(slot + id), n);
        }
    }
    for (int s = 0; s < 16; s++) nalloc_witness_free(held[s]);
    return NULL;
}

static void test_witness_threads(void) {
    struct nalloc_stats before = stats();
    pthread_t t[WTHREADS];
    for (uintptr_t i = 0; i < WTHREADS; i++) CHECK(pthread_create(&t[i], NULL, witness_worker, (void *)i) == 0);
    for (int i = 0; i < WTHREADS; i++) pthread_join(t[i], NULL);
    struct nalloc_stats after = stats();
    CHECK(after.witness_used == before.witness_used);
}

static void test_witness_fork(void) {
    unsigned char *small = nalloc_witness_alloc(100);
    unsigned char *large = nalloc_witness_alloc(300000);
    CHECK(small && large);
    if (!(small && large)) return;
    memset(small, 0x77, 100);
    memset(large, 0x66, 300000);
    int wiped = stats().witness_fork_wiped;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        int bad = 0;
        /* MADV_WIPEONFORK: the child sees zeros, not the parent's secrets. */
        if (wiped && !(all_zero(small, 100) && all_zero(large, 300000))) bad |= 1;
        /* The child can still use witness memory. */
        unsigned char *w = nalloc_witness_alloc(50);
        if (!w || !all_zero(w, 50)) bad |= 2;
        if (w) memset(w, 1, 50);
        nalloc_witness_free(w);
        unsigned char *l = nalloc_witness_alloc(400000);
        if (!l) bad |= 4;
        nalloc_witness_free(l);
        _exit(bad);
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        fprintf(stderr, "extras: fork child failed with %d\n", WEXITSTATUS(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
    /* The parent's secrets are intact. */
    for (int i = 0; i < 100; i++) CHECK(small[i] == 0x77);
    CHECK(large[0] == 0x66 && large[299999] == 0x66);
    nalloc_witness_free(small);
    nalloc_witness_free(large);
}

static void test_trim(void) {
    enum { N = 4 };
    void *big[N];
    for (int i = 0; i < N; i++) {
        big[i] = malloc(8u << 20);
        CHECK(big[i] != NULL);
        if (big[i]) memset(big[i], i, 8u << 20);
    }
    for (int i = 0; i < N; i++) free(big[i]);
    struct nalloc_stats before = stats();
    CHECK(before.pool_retained > 0);
    errno = ERRNO_SENTINEL;
    size_t released = nalloc_trim();
    CHECK(errno == ERRNO_SENTINEL);
    CHECK(released >= before.pool_retained);
    struct nalloc_stats after = stats();
    CHECK(after.pool_retained == 0);
    CHECK(after.returned_to_os >= before.returned_to_os + released);
    CHECK(after.mapped < before.mapped);
    /* Everything still works after a trim. */
    void *p = malloc(8u << 20);
    CHECK(p != NULL);
    free(p);
}

/* A fork child frees the parent's witness blocks (their headers read as
 * zero there), then wipes everything and goes on using witness memory. */
static void test_witness_fork_child_wipe(void) {
    unsigned char *small = nalloc_witness_alloc(100);
    unsigned char *large = nalloc_witness_alloc(300000);
    CHECK(small && large);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        nalloc_witness_free(small);
        nalloc_witness_free(large);
        void *a = nalloc_witness_alloc(5000);
        nalloc_witness_free(a);
        nalloc_witness_wipe_all();
        struct nalloc_stats s;
        int bad = nalloc_stats(&s) != 0 || s.witness_used != 0;
        /* A committed size near SIZE_MAX means a counter wrapped. */
        bad |= (s.witness_capacity > ((size_t)1 << 48)) << 1;
        unsigned char *c = nalloc_witness_alloc(100);
        bad |= (c == NULL || !all_zero(c, 100)) << 2;
        nalloc_witness_free(c);
        _exit(bad);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fprintf(stderr, "extras: fork child ended with status 0x%x\n", status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    nalloc_witness_free(small);
    nalloc_witness_free(large);
}

/* The slow-path event counters move when what they count happens. */
struct handover {
    void **blocks;
    size_t n;
};

static void *free_all(void *arg) {
    struct handover *h = arg;
    void *own = malloc(100); /* a heap of its own: frees are then batched */
    CHECK(own != NULL);
    for (size_t i = 0; i < h->n; i++) free(h->blocks[i]);
    free(own);
    return NULL;
}

static void test_counters(void) {
    struct nalloc_counters a, b;
    unsigned char buf[sizeof(struct nalloc_counters) + 64];
    memset(buf, 0xAB, sizeof buf);
    errno = ERRNO_SENTINEL;
    CHECK(nalloc_counters((struct nalloc_counters *)(void *)buf) == 0);
    CHECK(errno == ERRNO_SENTINEL);
    for (size_t i = sizeof(struct nalloc_counters); i < sizeof buf; i++) CHECK(buf[i] == 0xAB);
    CHECK(nalloc_counters(NULL) == EINVAL);
    CHECK(errno == ERRNO_SENTINEL);

    CHECK(nalloc_counters(&a) == 0);
    /* 48-byte blocks freed by another thread come back in batches. */
    enum { N = 4096 };
    static void *blocks[N];
    for (size_t i = 0; i < N; i++) {
        blocks[i] = malloc(48);
        CHECK(blocks[i] != NULL);
        memset(blocks[i], (int)i, 48);
    }
    struct handover h = {blocks, N};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_all, &h) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    for (size_t i = 0; i < N; i++) {
        blocks[i] = malloc(48);
        CHECK(blocks[i] != NULL);
    }
    for (size_t i = 0; i < N; i++) free(blocks[i]);
    /* A large block of an odd size after a trim is a fresh mapping. */
    nalloc_trim();
    size_t big = (size_t)37 << 20;
    unsigned char *p = malloc(big);
    CHECK(p != NULL);
    memset(p, 1, big);
    free(p);
    nalloc_trim();
    CHECK(nalloc_counters(&b) == 0);
    CHECK(b.remote_batches > a.remote_batches);
    CHECK(b.remote_blocks >= a.remote_blocks + N);
    CHECK(b.remote_atomics > a.remote_atomics);
    CHECK(b.remote_collects > a.remote_collects);
    CHECK(b.remote_collected > a.remote_collected);
    CHECK(b.os_map > a.os_map);
    CHECK(b.os_unmap + b.os_purge > a.os_unmap + a.os_purge);
    CHECK(b.lock_acquisitions > a.lock_acquisitions);
    CHECK(b.lock_contended <= b.lock_acquisitions);
}

int main(int argc, char **argv) {
    if (!nalloc_active()) {
        fprintf(stderr, "extras: nalloc_stats not found\n");
        return 2;
    }
    if (argc > 1 && strcmp(argv[1], "fork-child-wipe") == 0) {
        test_witness_fork_child_wipe();
        return finish("extras fork-child-wipe");
    }
    test_linked_malloc();
    test_stats_struct();
    test_witness_basic();
    test_witness_threads();
    test_witness_fork();
    test_witness_realloc();
    test_witness_wipe_all();
    test_trim();
    test_counters();
    struct nalloc_stats s = stats();
    /* Witness chunks exist by now. As root (CAP_IPC_LOCK) mlock cannot be
     * refused; MADV_WIPEONFORK and MADV_DONTDUMP exist on every kernel CI
     * runs (Linux >= 4.14): none of these may read 0 there. */
    if (geteuid() == 0) CHECK(s.witness_locked == 1);
    CHECK(s.witness_fork_wiped == 1);
    CHECK(s.witness_dump_excluded == 1);
    printf("extras: witness_locked=%d dump_excluded=%d fork_wiped=%d witness_peak=%zu\n", s.witness_locked,
           s.witness_dump_excluded, s.witness_fork_wiped, s.witness_peak);
    return finish("extras");
}

/*
 * Cross-thread frees with content checks. Each of NTHREADS threads makes
 * blocks (mostly small, some large), stamps them with a pattern, and hands
 * them to the next thread through a bounded queue; the receiver checks the
 * pattern, sometimes grows the block with realloc (checking again), and
 * frees it. Threads run in several waves, so heaps of exited threads are
 * adopted by new ones. Each thread also checks that its first allocation
 * leaves errno alone.
 *
 * Usage: threads   (run with nalloc preloaded; not linked with -lnalloc)
 */
#include "check.h"

#include <malloc.h>
#include <pthread.h>

#define NTHREADS 6
#define WAVES 3
#define PER_THREAD 40000
#define QCAP 256

struct block {
    size_t size;
    unsigned seed;
    unsigned char *p;
};

struct queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    struct block items[QCAP];
    size_t head, len;
    int producers_done;
};

static struct queue queues[NTHREADS];

static void q_init(struct queue *q) {
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    q->head = q->len = 0;
    q->producers_done = 0;
}

static void q_push(struct queue *q, struct block b) {
    pthread_mutex_lock(&q->mu);
    while (q->len == QCAP) pthread_cond_wait(&q->not_full, &q->mu);
    q->items[(q->head + q->len) % QCAP] = b;
    q->len++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

/* Returns 0 when the queue is empty and its producer is done. */
static int q_pop(struct queue *q, struct block *out) {
    pthread_mutex_lock(&q->mu);
    while (q->len == 0 && !q->producers_done) pthread_cond_wait(&q->not_empty, &q->mu);
    if (q->len == 0) {
        pthread_mutex_unlock(&q->mu);
        return 0;
    }
    *out = q->items[q->head];
    q->head = (q->head + 1) % QCAP;
    q->len--;
    pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->mu);
    return 1;
}

static void q_done(struct queue *q) {
    pthread_mutex_lock(&q->mu);
    q->producers_done = 1;
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

static unsigned next_rand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void stamp(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 7);
}

static int stamped(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7)) return 0;
    return 1;
}

static size_t pick_size(unsigned *rng) {
    unsigned r = next_rand(rng) % 1000;
    if (r < 900) return 1 + next_rand(rng) % 256;        /* tiny */
    if (r < 990) return 257 + next_rand(rng) % 20000;    /* small */
    return 65537 + next_rand(rng) % (3u << 20);          /* large */
}

/* For large blocks only the ends are stamped and checked (speed). */
static void stamp_block(struct block *b) {
    if (b->size <= 4096) {
        stamp(b->p, b->size, b->seed);
    } else {
        stamp(b->p, 2048, b->seed);
        stamp(b->p + b->size - 2048, 2048, b->seed + 1);
    }
}

static int check_block(const struct block *b, size_t n) {
    if (n <= 4096) return stamped(b->p, n, b->seed);
    return stamped(b->p, 2048, b->seed) && stamped(b->p + b->size - 2048, 2048, b->seed + 1);
}

struct arg {
    int id;
    int wave;
};

static void *consume(void *argp) {
    struct arg *a = argp;
    struct queue *q = &queues[a->id];
    struct block b;
    unsigned rng = 777u + (unsigned)a->id;
    while (q_pop(q, &b)) {
        CHECK(check_block(&b, b.size));
        if (next_rand(&rng) % 8 == 0 && b.size <= 4096) {
            /* Grow a block made by another thread; the prefix must survive. */
            size_t n = b.size * 3 + 100;
            unsigned char *g = realloc(b.p, n);
            CHECK(g != NULL);
            if (g) {
                CHECK(stamped(g, b.size, b.seed));
                b.p = g;
            }
        }
        free(b.p);
    }
    return NULL;
}

static void *produce(void *argp) {
    struct arg *a = argp;
    /* The thread's first allocation creates its heap: errno must survive. */
    errno = ERRNO_SENTINEL;
    void *first = malloc(24);
    CHECK(first != NULL && errno == ERRNO_SENTINEL);
    free(first);
    CHECK(errno == ERRNO_SENTINEL);

    struct queue *out = &queues[(a->id + 1) % NTHREADS];
    unsigned rng = 12345u * (unsigned)(a->id + 1) + (unsigned)a->wave;
    for (int i = 0; i < PER_THREAD; i++) {
        struct block b;
        b.size = pick_size(&rng);
        b.seed = next_rand(&rng);
        b.p = malloc(b.size);
        CHECK(b.p != NULL);
        if (!b.p) continue;
        CHECK(malloc_usable_size(b.p) >= b.size);
        stamp_block(&b);
        q_push(out, b);
    }
    return NULL;
}

int main(void) {
    if (!nalloc_active()) {
        fprintf(stderr, "threads: nalloc is not the allocator (run with LD_PRELOAD)\n");
        return 2;
    }
    struct nalloc_stats before, after;
    CHECK(stats_via_dlsym(&before) == 0);

    for (int wave = 0; wave < WAVES; wave++) {
        pthread_t prod[NTHREADS], cons[NTHREADS];
        struct arg args[NTHREADS];
        for (int i = 0; i < NTHREADS; i++) q_init(&queues[i]);
        for (int i = 0; i < NTHREADS; i++) {
            args[i].id = i;
            args[i].wave = wave;
            CHECK(pthread_create(&cons[i], NULL, consume, &args[i]) == 0);
            CHECK(pthread_create(&prod[i], NULL, produce, &args[i]) == 0);
        }
        for (int i = 0; i < NTHREADS; i++) pthread_join(prod[i], NULL);
        for (int i = 0; i < NTHREADS; i++) q_done(&queues[i]);
        for (int i = 0; i < NTHREADS; i++) pthread_join(cons[i], NULL);
    }

    CHECK(stats_via_dlsym(&after) == 0);
    uint64_t made = (uint64_t)NTHREADS * WAVES * PER_THREAD;
    CHECK(after.small_allocs + after.large_allocs - before.small_allocs - before.large_allocs >= made);
    CHECK(after.small_frees + after.large_frees - before.small_frees - before.large_frees >= made);
    /* Heaps are recycled: far fewer than the threads started. */
    CHECK(after.heaps <= 2 * NTHREADS + 2);
    printf("threads: allocs=%llu frees=%llu heaps=%zu\n",
           (unsigned long long)(after.small_allocs + after.large_allocs),
           (unsigned long long)(after.small_frees + after.large_frees), after.heaps);
    return finish("threads");
}

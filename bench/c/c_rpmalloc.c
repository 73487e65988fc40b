/*
 * c-rpmalloc: random sizes and lifetimes across threads, with cross-thread
 * frees, for the LD_PRELOAD benchmark (nalloc-preload-bench): the shape of
 * rpmalloc's benchmark.
 *
 * Each thread allocates one block per step and keeps it for a random time:
 * half the blocks go to a short-lived set (SHORT slots, replaced at random:
 * a geometric lifetime of SHORT steps on average), the others to a
 * long-lived set (LONG slots: LONG steps on average). A block leaving the
 * long-lived set is handed to another thread 1 time in 2 (a quarter of all
 * blocks; in batches of BATCH, each batch to the next thread in turn,
 * through that thread's lock-free inbox) and freed there; every other block is freed by its own
 * thread. Threads drain their inbox every DRAIN steps, and keep draining
 * after their own steps until every thread is done. Sizes: 60% 16-128 B,
 * 30% 128 B-1 KiB, 9% 1-8 KiB, 1% 8-32 KiB, uniform within each band.
 * Each block carries its size and a tag in its first 8 bytes, a tag byte
 * over bytes 8..48 and one at its end; a mismatch aborts.
 *
 * usage: c_rpmalloc [THREADS [STEPS_PER_THREAD]]   (default 2, 2000000)
 * stdout on success:
 *   "c-rpmalloc ok threads=T steps=S allocs=N cross_thread_frees=F malloc=<library of malloc>"
 * build: cc -O2 -pthread c_rpmalloc.c -o c_rpmalloc -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define MAX_THREADS 256
#define SHORT 64
#define LONG 8192
#define BATCH 64
#define DRAIN 256

struct batch {
    struct batch *next;
    uint32_t n;
    unsigned char *p[BATCH];
    uint32_t tag[BATCH];
};

struct inbox {
    _Atomic(struct batch *) head;
    char pad[64 - sizeof(struct batch *)];
};

struct worker {
    int id;
    int nthreads;
    long steps;
    unsigned long long allocs;
    unsigned long long received;
};

static struct inbox inboxes[MAX_THREADS] __attribute__((aligned(64)));
static _Atomic int finished;

static uint32_t pick_size(uint64_t r) {
    uint32_t band = (uint32_t)(r % 100), u = (uint32_t)(r >> 16);
    if (band < 60) return 16 + u % 113;
    if (band < 90) return 128 + u % 897;
    if (band < 99) return 1024 + u % 7169;
    return 8192 + u % 24577;
}

static void fill(unsigned char *p, uint32_t size, uint32_t tag) {
    memcpy(p, &size, 4);
    memcpy(p + 4, &tag, 4);
    uint32_t end = size - 1 < 48 ? size - 1 : 48;
    if (end > 8) memset(p + 8, (int)(tag & 0xFF), end - 8);
    p[size - 1] = (unsigned char)(tag ^ 0x5A);
}

static void check(const unsigned char *p, uint32_t tag) {
    uint32_t size, got;
    memcpy(&size, p, 4);
    memcpy(&got, p + 4, 4);
    if (got != tag || size < 16 || size > 32768) {
        fprintf(stderr, "c-rpmalloc: block %p: header size=%u tag=%u, wrote tag %u\n", (void *)p, size, got, tag);
        abort();
    }
    uint32_t end = size - 1 < 48 ? size - 1 : 48;
    for (uint32_t i = 8; i < end; i++)
        if (p[i] != (unsigned char)(tag & 0xFF)) {
            fprintf(stderr, "c-rpmalloc: block %p: byte %u corrupted\n", (void *)p, i);
            abort();
        }
    if (p[size - 1] != (unsigned char)(tag ^ 0x5A)) {
        fprintf(stderr, "c-rpmalloc: block %p: last byte corrupted\n", (void *)p);
        abort();
    }
}

static void check_free(unsigned char *p, uint32_t tag) {
    check(p, tag);
    free(p);
}

static unsigned long long drain(int id) {
    struct batch *b = atomic_exchange_explicit(&inboxes[id].head, NULL, memory_order_acquire);
    unsigned long long n = 0;
    while (b) {
        struct batch *next = b->next;
        for (uint32_t i = 0; i < b->n; i++) check_free(b->p[i], b->tag[i]);
        n += b->n;
        free(b);
        b = next;
    }
    return n;
}

static void send(int to, struct batch *b) {
    struct batch *head = atomic_load_explicit(&inboxes[to].head, memory_order_relaxed);
    do {
        b->next = head;
    } while (!atomic_compare_exchange_weak_explicit(&inboxes[to].head, &head, b, memory_order_release,
                                                    memory_order_relaxed));
}

static struct batch *new_batch(void) {
    struct batch *b = malloc(sizeof *b);
    if (!b) {
        fprintf(stderr, "c-rpmalloc: batch malloc failed\n");
        abort();
    }
    b->n = 0;
    return b;
}

static void *run(void *arg) {
    struct worker *w = arg;
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(w->id + 1);
    static __thread unsigned char *shortp[SHORT], *longp[LONG];
    static __thread uint32_t shortt[SHORT], longt[LONG];
    memset(shortp, 0, sizeof shortp);
    memset(longp, 0, sizeof longp);
    struct batch *out = w->nthreads > 1 ? new_batch() : NULL;
    int to = (w->id + 1) % w->nthreads;
    uint32_t tag = (uint32_t)w->id << 24;
    for (long s = 0; s < w->steps; s++) {
        uint64_t r = next_rand(&rng);
        uint32_t size = pick_size(r);
        unsigned char *p = malloc(size);
        if (!p) {
            fprintf(stderr, "c-rpmalloc: malloc(%u) failed\n", size);
            abort();
        }
        fill(p, size, ++tag);
        w->allocs++;
        uint64_t r2 = next_rand(&rng);
        if ((r2 & 1) != 0) {
            uint32_t i = (uint32_t)(r2 >> 8) % SHORT;
            if (shortp[i]) check_free(shortp[i], shortt[i]);
            shortp[i] = p;
            shortt[i] = tag;
        } else {
            uint32_t i = (uint32_t)(r2 >> 8) % LONG;
            unsigned char *old = longp[i];
            uint32_t oldt = longt[i];
            longp[i] = p;
            longt[i] = tag;
            if (old) {
                if (out && ((r2 >> 40) & 1) == 0) {
                    out->p[out->n] = old;
                    out->tag[out->n] = oldt;
                    if (++out->n == BATCH) {
                        send(to, out);
                        to = (to + 1) % w->nthreads;
                        if (to == w->id) to = (to + 1) % w->nthreads;
                        out = new_batch();
                    }
                } else {
                    check_free(old, oldt);
                }
            }
        }
        if (s % DRAIN == 0) w->received += drain(w->id);
    }
    for (int i = 0; i < SHORT; i++)
        if (shortp[i]) check_free(shortp[i], shortt[i]);
    for (int i = 0; i < LONG; i++)
        if (longp[i]) check_free(longp[i], longt[i]);
    if (out) {
        if (out->n) send(to, out);
        else free(out);
    }
    atomic_fetch_add(&finished, 1);
    while (atomic_load(&finished) < w->nthreads) {
        w->received += drain(w->id);
        sched_yield();
    }
    w->received += drain(w->id);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    long steps = argc > 2 ? atol(argv[2]) : 2000000;
    if (threads < 1 || threads > MAX_THREADS || steps < 1) {
        fprintf(stderr, "usage: c_rpmalloc [THREADS (1..%d) [STEPS_PER_THREAD]]\n", MAX_THREADS);
        return 2;
    }
    pthread_t tid[MAX_THREADS];
    static struct worker w[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){.id = i, .nthreads = threads, .steps = steps};
        if (pthread_create(&tid[i], NULL, run, &w[i]) != 0) {
            fprintf(stderr, "c-rpmalloc: pthread_create failed\n");
            return 1;
        }
    }
    unsigned long long allocs = 0, cross = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        allocs += w[i].allocs;
        cross += w[i].received;
    }
    printf("c-rpmalloc ok threads=%d steps=%ld allocs=%llu cross_thread_frees=%llu malloc=%s\n", threads, steps, allocs,
           cross, malloc_library());
    return 0;
}

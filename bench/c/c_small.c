/*
 * c-small: multi-threaded small-object stress for the LD_PRELOAD benchmark
 * (nalloc-preload-bench). Plain C against the system malloc API, so any
 * preloaded allocator serves it.
 *
 * Each thread keeps SLOTS live blocks of 8..1024 bytes (skewed towards small
 * sizes) and replaces a random one per step: the old block is checked and
 * either freed locally or (1 in 4) handed to the next thread through a
 * lock-free inbox (Treiber stack, producers push with CAS, the owner takes the
 * whole list with one exchange, so there is no ABA problem) and freed there.
 * 1 in 16 steps reallocs a live block instead (prefix checked). Every 4096
 * steps a burst allocates 256 same-size blocks and frees them in LIFO order.
 * Every block is filled with a tag byte and checked (sparsely) before it is
 * freed; a mismatch aborts with a message. A thread that finishes its steps
 * keeps draining its inbox until all threads are done.
 *
 * The inboxes pile up while their owner waits for a core (4 threads on 2
 * cores), by as much as its producer pushes meanwhile, which depends on the
 * scheduler and on how fast the producer runs. The peak RSS includes that
 * pile, so the program reports it: pile_peak_kib is the most bytes (blocks
 * and messages) seen in all inboxes at once, sampled at every drain from
 * per-thread counters that only their owner writes.
 *
 * Two diagnostic options separate the allocator from the scheduler (the
 * benchmark uses neither): INBOX_CAP_KIB > 0 bounds each inbox — a producer
 * whose neighbour's inbox holds that many bytes waits, draining its own
 * inbox and yielding, so every handed-over block is still freed by another
 * thread but the piles no longer depend on scheduling; BURSTS = 0 leaves
 * the bursts out.
 *
 * usage: c_small [THREADS [STEPS_PER_THREAD [INBOX_CAP_KIB [BURSTS]]]]
 *        (default 4, 3000000, 0 = unbounded, 1)
 * stdout on success:
 *   "c-small ok threads=T steps=S allocs=N cross_thread_frees=F pile_peak_kib=K malloc=<library of malloc>"
 * build: cc -O2 -pthread c_small.c -o c_small
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"

#define MAX_THREADS 64
#define SLOTS 8192
#define DRAIN_EVERY 256
#define BURST_EVERY 4096
#define BURST 256

struct msg {
    struct msg *next;
    unsigned char *p;
    uint32_t size;
    uint32_t tag;
};

struct inbox {
    _Atomic(struct msg *) head;
    char pad[64 - sizeof(struct msg *)];
};

struct slot {
    unsigned char *p;
    uint32_t size;
    uint32_t tag;
};

struct thread_arg {
    int id;
    int nthreads;
    long steps;
    unsigned long long allocs;
    unsigned long long received;
};

static struct inbox inboxes[MAX_THREADS] __attribute__((aligned(64)));

/* Bytes a thread pushed to its neighbour and bytes it drained from its own
 * inbox; each written only by its thread, read by all (see pile_sample). */
struct traffic {
    _Atomic unsigned long long pushed;
    _Atomic unsigned long long drained;
    char pad[64 - 2 * sizeof(unsigned long long)];
};
static struct traffic traffic[MAX_THREADS] __attribute__((aligned(64)));
static int thread_count;
/* Bytes an inbox may hold before its producer waits (0: no bound). */
static unsigned long long inbox_cap;
static int bursts = 1;
static _Atomic unsigned long long pile_peak;
/* Threads still in their main loop (the only ones that push). */
static atomic_int running;

/* 60% 8..64 B, 25% 65..256 B, 15% 257..1024 B. */
static uint32_t pick_size(uint64_t r) {
    uint32_t u = (uint32_t)(r & 0xff);
    uint32_t v = (uint32_t)(r >> 8);
    if (u < 154) return 8 + v % 57;
    if (u < 218) return 65 + v % 192;
    return 257 + v % 768;
}

static void die(const char *what, const void *p, uint32_t size, uint32_t at) {
    fprintf(stderr, "c-small: %s: block %p size %u bad byte at offset %u\n", what, p, size, at);
    abort();
}

/* Checks every 64th byte and the last one. */
static void check(const unsigned char *p, uint32_t size, uint32_t tag, const char *what) {
    unsigned char t = (unsigned char)tag;
    for (uint32_t i = 0; i < size; i += 64)
        if (p[i] != t) die(what, p, size, i);
    if (p[size - 1] != t) die(what, p, size, size - 1);
}

static unsigned char *alloc_filled(uint32_t size, uint32_t tag) {
    unsigned char *p = malloc(size);
    if (!p) {
        fprintf(stderr, "c-small: malloc(%u) failed\n", size);
        exit(1);
    }
    memset(p, (unsigned char)tag, size);
    return p;
}

static void push(int to, struct msg *m) {
    struct msg *h = atomic_load_explicit(&inboxes[to].head, memory_order_relaxed);
    do {
        m->next = h;
    } while (!atomic_compare_exchange_weak_explicit(&inboxes[to].head, &h, m, memory_order_release,
                                                    memory_order_relaxed));
}

/* Adds n to a counter that only the calling thread writes. */
static void count(_Atomic unsigned long long *c, unsigned long long n) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

/* Bytes in all inboxes now (pushed minus drained; a push counted after its
 * drain can make the difference briefly low, never high), kept if highest. */
static void pile_sample(void) {
    unsigned long long pushed = 0, drained = 0;
    for (int i = 0; i < thread_count; i++) {
        pushed += atomic_load_explicit(&traffic[i].pushed, memory_order_relaxed);
        drained += atomic_load_explicit(&traffic[i].drained, memory_order_relaxed);
    }
    if (pushed <= drained) return;
    unsigned long long pile = pushed - drained;
    unsigned long long peak = atomic_load_explicit(&pile_peak, memory_order_relaxed);
    while (pile > peak &&
           !atomic_compare_exchange_weak_explicit(&pile_peak, &peak, pile, memory_order_relaxed, memory_order_relaxed)) {
    }
}

static unsigned long long drain(int me) {
    unsigned long long n = 0, bytes = 0;
    pile_sample();
    struct msg *m = atomic_exchange_explicit(&inboxes[me].head, NULL, memory_order_acquire);
    while (m) {
        struct msg *next = m->next;
        check(m->p, m->size, m->tag, "cross-thread free");
        bytes += m->size + sizeof *m;
        free(m->p);
        free(m);
        m = next;
        n++;
    }
    count(&traffic[me].drained, bytes);
    return n;
}

static void *worker(void *argp) {
    struct thread_arg *a = argp;
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(a->id + 1) | 1;
    struct slot *slots = calloc(SLOTS, sizeof *slots);
    unsigned char *burst[BURST];
    if (!slots) {
        fprintf(stderr, "c-small: calloc failed\n");
        exit(1);
    }
    int to = (a->id + 1) % a->nthreads;
    for (long step = 0; step < a->steps; step++) {
        uint64_t r = next_rand(&rng);
        struct slot *s = &slots[r % SLOTS];
        uint64_t r2 = next_rand(&rng);
        uint32_t size = pick_size(r2);
        uint32_t tag = (uint32_t)(r2 >> 40);
        if (s->p && ((r >> 32) & 15) == 0) {
            /* realloc: the common prefix must survive. */
            unsigned char *q = realloc(s->p, size);
            if (!q) {
                fprintf(stderr, "c-small: realloc(%u) failed\n", size);
                exit(1);
            }
            check(q, size < s->size ? size : s->size, s->tag, "realloc");
            memset(q, (unsigned char)tag, size);
            s->p = q;
        } else {
            if (s->p) {
                check(s->p, s->size, s->tag, "local free");
                if (a->nthreads > 1 && ((r >> 36) & 3) == 0) {
                    struct msg *m = malloc(sizeof *m);
                    if (!m) {
                        fprintf(stderr, "c-small: malloc(msg) failed\n");
                        exit(1);
                    }
                    m->p = s->p;
                    m->size = s->size;
                    m->tag = s->tag;
                    /* Back-pressure (INBOX_CAP_KIB): wait, draining our own
                     * inbox, while the neighbour's holds the cap. */
                    while (inbox_cap &&
                           atomic_load_explicit(&traffic[a->id].pushed, memory_order_relaxed) -
                                   atomic_load_explicit(&traffic[to].drained, memory_order_relaxed) >=
                               inbox_cap) {
                        a->received += drain(a->id);
                        sched_yield();
                    }
                    /* Counted before the push, so that no drain sees it first. */
                    count(&traffic[a->id].pushed, s->size + sizeof *m);
                    push(to, m);
                } else {
                    free(s->p);
                }
            }
            s->p = alloc_filled(size, tag);
        }
        s->size = size;
        s->tag = tag;
        a->allocs++;
        if (step % DRAIN_EVERY == DRAIN_EVERY - 1) a->received += drain(a->id);
        if (bursts && step % BURST_EVERY == BURST_EVERY - 1) {
            uint32_t bsize = pick_size(next_rand(&rng));
            for (int i = 0; i < BURST; i++) burst[i] = alloc_filled(bsize, (uint32_t)i);
            for (int i = BURST - 1; i >= 0; i--) {
                check(burst[i], bsize, (uint32_t)i, "burst");
                free(burst[i]);
            }
            a->allocs += BURST;
        }
    }
    /* Keep draining while others still push (so that a thread finishing
     * early does not let its inbox pile up: peak RSS would then depend on
     * scheduling); once nobody runs, one more drain empties the inbox. */
    atomic_fetch_sub(&running, 1);
    while (atomic_load(&running) > 0) {
        a->received += drain(a->id);
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    a->received += drain(a->id);
    for (int i = 0; i < SLOTS; i++)
        if (slots[i].p) {
            check(slots[i].p, slots[i].size, slots[i].tag, "final free");
            free(slots[i].p);
        }
    free(slots);
    return NULL;
}

int main(int argc, char **argv) {
    int nthreads = argc > 1 ? atoi(argv[1]) : 4;
    long steps = argc > 2 ? atol(argv[2]) : 3000000;
    long cap_kib = argc > 3 ? atol(argv[3]) : 0;
    bursts = argc > 4 ? atoi(argv[4]) : 1;
    if (nthreads < 1 || nthreads > MAX_THREADS || steps < 1 || cap_kib < 0 || bursts < 0 || bursts > 1) {
        fprintf(stderr, "usage: c_small [THREADS(1..%d) [STEPS_PER_THREAD [INBOX_CAP_KIB [BURSTS(0|1)]]]]\n",
                MAX_THREADS);
        return 2;
    }
    inbox_cap = (unsigned long long)cap_kib << 10;
    pthread_t tids[MAX_THREADS];
    struct thread_arg args[MAX_THREADS];
    atomic_store(&running, nthreads);
    thread_count = nthreads;
    for (int i = 0; i < nthreads; i++) {
        args[i] = (struct thread_arg){.id = i, .nthreads = nthreads, .steps = steps};
        if (pthread_create(&tids[i], NULL, worker, &args[i]) != 0) {
            fprintf(stderr, "c-small: pthread_create failed\n");
            return 1;
        }
    }
    unsigned long long allocs = 0, received = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(tids[i], NULL);
        allocs += args[i].allocs;
        received += args[i].received;
    }
    printf("c-small ok threads=%d steps=%ld allocs=%llu cross_thread_frees=%llu pile_peak_kib=%llu malloc=%s\n",
           nthreads, steps, allocs, received, atomic_load(&pile_peak) / 1024, malloc_library());
    return 0;
}

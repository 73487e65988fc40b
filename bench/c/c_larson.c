/*
 * c-larson / c-larson-sized: server churn for the LD_PRELOAD benchmark
 * (nalloc-preload-bench), the shape of Larson and Krishnan's benchmark.
 *
 * THREADS threads replace random blocks of one shared array of
 * SLOTS_PER_THREAD * THREADS slots: each step allocates a block of 8..1000
 * bytes (uniform), swaps it into a random slot with an atomic exchange and
 * frees the block it took out, which any thread may have allocated, so most
 * frees cross threads. As in Larson's server, each thread's steps are cut
 * into ROUNDS: at the end of a round the thread starts its successor (which
 * goes on with its random state) and exits, so heaps of exited threads are
 * freed into and taken over. Each block carries its size and a tag in its
 * first 8 bytes, a tag byte over bytes 8..32 and one at its end; every
 * block taken out is checked (a mismatch aborts).
 *
 * SIZED = 1 frees with the size (the block's size, read from its header):
 * C23's free_sized where the process has it (glibc 2.36 does not;
 * libnalloc.so exports it), else the preloaded allocator's own sized free
 * (jemalloc's sdallocx, tcmalloc's tc_free_sized, mimalloc's mi_free_size),
 * else plain free (glibc); the success line names the one used (free=...).
 *
 * usage: c_larson [THREADS [STEPS_PER_THREAD [ROUNDS [SIZED]]]]
 *        (default 2, 3000000, 10, 0)
 * stdout on success:
 *   "c-larson ok threads=T steps=S rounds=R free=F malloc=<library of malloc>"
 *   (c-larson-sized with SIZED = 1)
 * build: cc -O2 -pthread c_larson.c -o c_larson -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define MAX_THREADS 256
#define SLOTS_PER_THREAD 4096
#define MAX_ROUNDS 1000

struct chain {
    uint64_t rng;
    long steps_per_round;
    int round;
    int rounds;
    uint32_t tag;
    /* tid[k + 1] is written by round k's thread before it exits, so the
     * main thread reads it after joining tid[k]. */
    pthread_t tid[MAX_ROUNDS];
};

static _Atomic(unsigned char *) *slots;
static size_t nslots;

static void (*free_sized_fn)(void *, size_t);
static int (*sdallocx_fn)(void *, size_t, int);
static void (*tc_free_sized_fn)(void *, size_t);
static void (*mi_free_size_fn)(void *, size_t);
static const char *free_name = "free";
static int sized;

/* The sized free the process offers, best first (see the top comment). */
static void pick_sized_free(void) {
    if ((free_sized_fn = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized"))) {
        free_name = "free_sized";
    } else if ((sdallocx_fn = (int (*)(void *, size_t, int))dlsym(RTLD_DEFAULT, "sdallocx"))) {
        free_name = "sdallocx";
    } else if ((tc_free_sized_fn = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "tc_free_sized"))) {
        free_name = "tc_free_sized";
    } else if ((mi_free_size_fn = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "mi_free_size"))) {
        free_name = "mi_free_size";
    }
}

static void release(unsigned char *p, uint32_t size) {
    if (!sized)
        free(p);
    else if (free_sized_fn)
        free_sized_fn(p, size);
    else if (sdallocx_fn)
        sdallocx_fn(p, size, 0);
    else if (tc_free_sized_fn)
        tc_free_sized_fn(p, size);
    else if (mi_free_size_fn)
        mi_free_size_fn(p, size);
    else
        free(p);
}

/* Checks a block taken out of the array and frees it. */
static void check_release(unsigned char *p) {
    uint32_t size, tag;
    memcpy(&size, p, 4);
    memcpy(&tag, p + 4, 4);
    if (size < 8 || size > 1000) {
        fprintf(stderr, "c-larson: block %p: header size %u\n", (void *)p, size);
        abort();
    }
    uint32_t end = size - 1 < 32 ? size - 1 : 32;
    for (uint32_t i = 8; i < end; i++)
        if (p[i] != (unsigned char)(tag & 0xFF)) {
            fprintf(stderr, "c-larson: block %p: byte %u corrupted\n", (void *)p, i);
            abort();
        }
    if (size > 8 && p[size - 1] != (unsigned char)(tag ^ 0x5A)) {
        fprintf(stderr, "c-larson: block %p: last byte corrupted\n", (void *)p);
        abort();
    }
    release(p, size);
}

static void *round_main(void *arg) {
    struct chain *c = arg;
    for (long s = 0; s < c->steps_per_round; s++) {
        uint64_t r = next_rand(&c->rng);
        uint32_t size = 8 + (uint32_t)(r % 993);
        unsigned char *p = malloc(size);
        if (!p) {
            fprintf(stderr, "c-larson: malloc(%u) failed\n", size);
            abort();
        }
        uint32_t tag = ++c->tag;
        memcpy(p, &size, 4);
        memcpy(p + 4, &tag, 4);
        uint32_t end = size - 1 < 32 ? size - 1 : 32;
        if (end > 8) memset(p + 8, (int)(tag & 0xFF), end - 8);
        if (size > 8) p[size - 1] = (unsigned char)(tag ^ 0x5A);
        unsigned char *old = atomic_exchange_explicit(&slots[(r >> 16) % nslots], p, memory_order_acq_rel);
        if (old) check_release(old);
    }
    if (++c->round < c->rounds) {
        /* Hand the chain to a successor thread and exit. */
        if (pthread_create(&c->tid[c->round], NULL, round_main, c) != 0) {
            fprintf(stderr, "c-larson: pthread_create failed\n");
            abort();
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    long steps = argc > 2 ? atol(argv[2]) : 3000000;
    int rounds = argc > 3 ? atoi(argv[3]) : 10;
    sized = argc > 4 ? atoi(argv[4]) : 0;
    if (threads < 1 || threads > MAX_THREADS || steps < 1 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: c_larson [THREADS (1..%d) [STEPS_PER_THREAD [ROUNDS [SIZED]]]]\n", MAX_THREADS);
        return 2;
    }
    if (sized) pick_sized_free();
    nslots = (size_t)SLOTS_PER_THREAD * (size_t)threads;
    slots = calloc(nslots, sizeof *slots);
    if (!slots) return 1;
    static struct chain chains[MAX_THREADS]; /* 8 KiB each */
    for (int i = 0; i < threads; i++) {
        chains[i] = (struct chain){.rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1),
                                   .steps_per_round = steps / rounds,
                                   .rounds = rounds,
                                   .tag = (uint32_t)i << 24};
        if (pthread_create(&chains[i].tid[0], NULL, round_main, &chains[i]) != 0) {
            fprintf(stderr, "c-larson: pthread_create failed\n");
            return 1;
        }
    }
    for (int i = 0; i < threads; i++)
        for (int k = 0; k < rounds; k++) pthread_join(chains[i].tid[k], NULL);
    for (size_t i = 0; i < nslots; i++) {
        unsigned char *p = atomic_load(&slots[i]);
        if (p) check_release(p);
    }
    free((void *)slots);
    printf("%s ok threads=%d steps=%ld rounds=%d free=%s malloc=%s\n", sized ? "c-larson-sized" : "c-larson", threads,
           steps / rounds * rounds, rounds, sized ? free_name : "free", malloc_library());
    return 0;
}

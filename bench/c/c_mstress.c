/*
 * c-mstress: rounds of short-lived threads for the LD_PRELOAD benchmark
 * (nalloc-preload-bench), the shape of the stress test in mimalloc-bench
 * (mstress): objects of random sizes with a few very large ones, some freed
 * soon, some kept to the thread's end, some handed to other threads.
 *
 * Each of ROUNDS rounds starts THREADS fresh threads and joins them. Thread
 * k (counted over all rounds) takes 100 * SCALE * (k % 8 + 1) allocations,
 * so the threads of a round end at different times. Each step allocates an
 * item with calloc: 1 << (0..4) words onto the thread's list (half of the
 * steps, while allocations are left) or 1 << (0..6) words kept to the end
 * (the other half); one item in 50 is big: 100 times the words, of those one
 * in 10 is 1,000 times and one in 50 10,000 times (up to 5 MiB). Then with
 * probability 2/3 a random item of the list is freed, and with 1/4 a random
 * item of the list is swapped with a random slot of a shared array of
 * TRANSFERS items (an atomic exchange), so other threads free it. Every
 * word of an item is written on allocation and checked when freed (a
 * mismatch aborts); the calloc'd memory is taken as zero, not read first.
 * A thread frees everything it holds before it exits; the main thread frees
 * what is left in the shared array at the end.
 *
 * What it exercises: heaps of exited threads taken over by the next round,
 * memory freed by other threads, and large blocks coming and going while
 * small ones churn.
 *
 * usage: c_mstress [THREADS [SCALE [ROUNDS]]]   (default 4, 50, 10)
 * stdout on success:
 *   "c-mstress ok threads=T scale=S rounds=R items=N malloc=<library of malloc>"
 * build: cc -O2 -pthread c_mstress.c -o c_mstress -ldl
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define MAX_THREADS 256
#define TRANSFERS 1000
#define COOKIE 0x5bd1e9955bd1e995ULL

static _Atomic(uint64_t *) transfer[TRANSFERS];
static _Atomic long items_made;
static long scale;

/* True with probability 1/n. */
static int one_in(uint64_t *rng, uint64_t n) { return next_rand(rng) % n == 0; }

/* An item of about `words` words (made big now and then), every word
 * written: word i holds (n - i) ^ COOKIE, so word 0 gives the length. */
static uint64_t *make_item(uint64_t *rng, size_t words) {
    if (one_in(rng, 50)) {
        if (one_in(rng, 50))
            words *= 10000;
        else if (one_in(rng, 10))
            words *= 1000;
        else
            words *= 100;
    }
    uint64_t *p = calloc(words, sizeof *p);
    if (!p) {
        fprintf(stderr, "c-mstress: calloc(%zu, 8) failed\n", words);
        abort();
    }
    for (size_t i = 0; i < words; i++) p[i] = (uint64_t)(words - i) ^ COOKIE;
    return p;
}

/* Checks every word of an item, then frees it. */
static void free_item(uint64_t *p) {
    if (!p) return;
    uint64_t n = p[0] ^ COOKIE;
    if (n == 0 || n > 64 * 10000) {
        fprintf(stderr, "c-mstress: item %p: length word %llu\n", (void *)p, (unsigned long long)n);
        abort();
    }
    for (uint64_t i = 0; i < n; i++)
        if ((p[i] ^ COOKIE) != n - i) {
            fprintf(stderr, "c-mstress: item %p: word %llu corrupted\n", (void *)p, (unsigned long long)i);
            abort();
        }
    free(p);
}

static void *thread_main(void *arg) {
    long k = (long)(intptr_t)arg;
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(k + 1);
    long allocs = 100 * scale * (k % 8 + 1);
    long keeps = allocs / 2;
    uint64_t **kept = calloc((size_t)keeps, sizeof *kept);
    size_t list_cap = 1024, list_len = 0, kept_len = 0;
    uint64_t **list = malloc(list_cap * sizeof *list);
    if (!kept || !list) abort();
    long made = 0;
    while (allocs > 0 || keeps > 0) {
        if (keeps == 0 || (allocs > 0 && one_in(&rng, 2))) {
            allocs--;
            if (list_len == list_cap) {
                list_cap *= 2;
                list = realloc(list, list_cap * sizeof *list);
                if (!list) abort();
            }
            list[list_len++] = make_item(&rng, (size_t)1 << (next_rand(&rng) % 5));
        } else {
            keeps--;
            kept[kept_len++] = make_item(&rng, (size_t)1 << (next_rand(&rng) % 7));
        }
        made++;
        if (list_len > 0 && next_rand(&rng) % 3 != 0) {
            size_t i = next_rand(&rng) % list_len;
            free_item(list[i]);
            list[i] = NULL;
        }
        if (list_len > 0 && one_in(&rng, 4)) {
            size_t i = next_rand(&rng) % list_len;
            size_t t = next_rand(&rng) % TRANSFERS;
            list[i] = atomic_exchange(&transfer[t], list[i]);
        }
    }
    for (size_t i = 0; i < kept_len; i++) free_item(kept[i]);
    for (size_t i = 0; i < list_len; i++) free_item(list[i]);
    free(kept);
    free(list);
    atomic_fetch_add(&items_made, made);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    scale = argc > 2 ? atol(argv[2]) : 50;
    int rounds = argc > 3 ? atoi(argv[3]) : 10;
    if (threads < 1 || threads > MAX_THREADS || scale < 1 || rounds < 1) {
        fprintf(stderr, "usage: c_mstress [THREADS (1..%d) [SCALE (>= 1) [ROUNDS (>= 1)]]]\n", MAX_THREADS);
        return 2;
    }
    pthread_t tid[MAX_THREADS];
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < threads; i++)
            if (pthread_create(&tid[i], NULL, thread_main, (void *)(intptr_t)(r * threads + i)) != 0) {
                fprintf(stderr, "c-mstress: pthread_create failed\n");
                return 1;
            }
        for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
    }
    for (int t = 0; t < TRANSFERS; t++) free_item(atomic_load(&transfer[t]));
    printf("c-mstress ok threads=%d scale=%ld rounds=%d items=%ld malloc=%s\n", threads, scale, rounds,
           atomic_load(&items_made), malloc_library());
    return 0;
}

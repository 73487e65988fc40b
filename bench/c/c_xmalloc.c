/*
 * c-xmalloc: producer/consumer for the LD_PRELOAD benchmark
 * (nalloc-preload-bench), the shape of xmalloc-test: every block is
 * allocated by one thread and freed by another.
 *
 * THREADS threads form THREADS/2 pairs (an odd count is rounded up). In
 * each pair the producer allocates batches of blocks and hands each batch
 * to its consumer through a bounded single-producer ring (RING batches; a
 * producer facing a full ring, or a consumer facing an empty one, yields);
 * the consumer checks every block and frees it, and frees the batch too.
 * Batch lengths vary from 1 to 256 blocks (uniform). Block sizes cover the
 * small classes from 16 B to 32 KiB: a power of two 16 << e (e uniform in
 * 0..10) plus a uniform part of it, so each doubling gets as many blocks.
 * Each block carries its size and a tag in its first 8 bytes, a tag byte
 * over bytes 8..64 and one at its end; a mismatch aborts.
 *
 * usage: c_xmalloc [THREADS [BLOCKS_PER_PRODUCER]]   (default 2, 1500000)
 * stdout on success:
 *   "c-xmalloc ok threads=T pairs=P blocks=N bytes=B malloc=<library of malloc>"
 * build: cc -O2 -pthread c_xmalloc.c -o c_xmalloc -ldl
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

#define MAX_PAIRS 128
#define RING 32
#define MAX_BATCH 256

struct batch {
    uint32_t n;
    uint32_t seq;
    unsigned char *p[];
};

struct pair {
    _Atomic(struct batch *) ring[RING];
    _Atomic unsigned long head; /* next slot the producer fills */
    _Atomic unsigned long tail; /* next slot the consumer takes */
    _Atomic int done;
    long blocks;
    uint64_t seed;
    unsigned long long bytes;
    char pad[64];
};

static struct pair pairs[MAX_PAIRS];

static void fill(unsigned char *p, uint32_t size, uint32_t tag) {
    memcpy(p, &size, 4);
    memcpy(p + 4, &tag, 4);
    uint32_t end = size - 1 < 64 ? size - 1 : 64;
    if (end > 8) memset(p + 8, (int)(tag & 0xFF), end - 8);
    p[size - 1] = (unsigned char)(tag ^ 0x5A);
}

static uint32_t check(const unsigned char *p, uint32_t tag) {
    uint32_t size, got;
    memcpy(&size, p, 4);
    memcpy(&got, p + 4, 4);
    if (got != tag || size < 16 || size > 32768) {
        fprintf(stderr, "c-xmalloc: block %p: header size=%u tag=%u, wrote tag %u\n", (void *)p, size, got, tag);
        abort();
    }
    uint32_t end = size - 1 < 64 ? size - 1 : 64;
    for (uint32_t i = 8; i < end; i++)
        if (p[i] != (unsigned char)(tag & 0xFF)) {
            fprintf(stderr, "c-xmalloc: block %p: byte %u corrupted\n", (void *)p, i);
            abort();
        }
    if (p[size - 1] != (unsigned char)(tag ^ 0x5A)) {
        fprintf(stderr, "c-xmalloc: block %p: last byte corrupted\n", (void *)p);
        abort();
    }
    return size;
}

static void *producer(void *arg) {
    struct pair *q = arg;
    uint64_t rng = q->seed;
    long made = 0;
    uint32_t seq = 0;
    while (made < q->blocks) {
        uint32_t n = 1 + (uint32_t)(next_rand(&rng) % MAX_BATCH);
        if (n > q->blocks - made) n = (uint32_t)(q->blocks - made);
        struct batch *b = malloc(sizeof *b + n * sizeof b->p[0]);
        if (!b) {
            fprintf(stderr, "c-xmalloc: batch malloc failed\n");
            abort();
        }
        b->n = n;
        b->seq = seq++;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t r = next_rand(&rng);
            uint32_t base = 16u << (r % 11);
            uint32_t size = base + (uint32_t)((r >> 8) % base);
            unsigned char *p = malloc(size);
            if (!p) {
                fprintf(stderr, "c-xmalloc: malloc(%u) failed\n", size);
                abort();
            }
            fill(p, size, b->seq * 257u + i);
            b->p[i] = p;
        }
        made += n;
        unsigned long h = atomic_load_explicit(&q->head, memory_order_relaxed);
        while (h - atomic_load_explicit(&q->tail, memory_order_acquire) >= RING) sched_yield();
        atomic_store_explicit(&q->ring[h % RING], b, memory_order_relaxed);
        atomic_store_explicit(&q->head, h + 1, memory_order_release);
    }
    atomic_store_explicit(&q->done, 1, memory_order_release);
    return NULL;
}

static void *consumer(void *arg) {
    struct pair *q = arg;
    unsigned long long bytes = 0;
    uint32_t seq = 0;
    for (;;) {
        unsigned long t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (t == atomic_load_explicit(&q->head, memory_order_acquire)) {
            if (atomic_load_explicit(&q->done, memory_order_acquire) &&
                t == atomic_load_explicit(&q->head, memory_order_acquire))
                break;
            sched_yield();
            continue;
        }
        struct batch *b = atomic_load_explicit(&q->ring[t % RING], memory_order_relaxed);
        atomic_store_explicit(&q->tail, t + 1, memory_order_release);
        if (b->seq != seq++) {
            fprintf(stderr, "c-xmalloc: batch %u arrived as %u\n", seq - 1, b->seq);
            abort();
        }
        for (uint32_t i = 0; i < b->n; i++) {
            bytes += check(b->p[i], b->seq * 257u + i);
            free(b->p[i]);
        }
        free(b);
    }
    q->bytes = bytes;
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    long blocks = argc > 2 ? atol(argv[2]) : 1500000;
    int npairs = (threads + 1) / 2;
    if (threads < 1 || npairs > MAX_PAIRS || blocks < 1) {
        fprintf(stderr, "usage: c_xmalloc [THREADS (1..%d) [BLOCKS_PER_PRODUCER]]\n", 2 * MAX_PAIRS);
        return 2;
    }
    pthread_t prod[MAX_PAIRS], cons[MAX_PAIRS];
    for (int i = 0; i < npairs; i++) {
        pairs[i].blocks = blocks;
        pairs[i].seed = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
        if (pthread_create(&cons[i], NULL, consumer, &pairs[i]) != 0 ||
            pthread_create(&prod[i], NULL, producer, &pairs[i]) != 0) {
            fprintf(stderr, "c-xmalloc: pthread_create failed\n");
            return 1;
        }
    }
    unsigned long long bytes = 0;
    for (int i = 0; i < npairs; i++) {
        pthread_join(prod[i], NULL);
        pthread_join(cons[i], NULL);
        bytes += pairs[i].bytes;
    }
    printf("c-xmalloc ok threads=%d pairs=%d blocks=%ld bytes=%llu malloc=%s\n", 2 * npairs, npairs,
           blocks * npairs, bytes, malloc_library());
    return 0;
}

/*
 * c-thrash: cache thrash for the LD_PRELOAD benchmark
 * (nalloc-preload-bench), the shape of Hoard's cache-thrash: THREADS
 * threads each allocate a small object, write every byte of it WRITES
 * times, check it and free it, ITERATIONS times over. No block crosses
 * threads; what the allocator decides is where each thread's objects lie:
 * two threads' objects on one cache line make every write a coherence miss
 * (active false sharing), and each thread's malloc/free pair is on the
 * path too. A byte that reads back other than written aborts.
 *
 * usage: c_thrash [THREADS [ITERATIONS [OBJSIZE [WRITES]]]]
 *        (default 2, 4000000, 8, 16)
 * stdout on success:
 *   "c-thrash ok threads=T iterations=I objsize=O writes=W malloc=<library of malloc>"
 * build: cc -O2 -pthread c_thrash.c -o c_thrash -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_common.h"

#define MAX_THREADS 256

struct worker {
    int id;
    long iterations;
    int objsize;
    int writes;
    unsigned long long sum;
};

static void *run(void *arg) {
    struct worker *w = arg;
    unsigned long long sum = 0;
    for (long it = 0; it < w->iterations; it++) {
        volatile unsigned char *p = malloc((size_t)w->objsize);
        if (!p) {
            fprintf(stderr, "c-thrash: malloc(%d) failed\n", w->objsize);
            abort();
        }
        unsigned char v = (unsigned char)(it * 31 + w->id);
        for (int r = 0; r < w->writes; r++)
            for (int b = 0; b < w->objsize; b++) p[b] = (unsigned char)(v + r + b);
        for (int b = 0; b < w->objsize; b++) {
            unsigned char want = (unsigned char)(v + w->writes - 1 + b);
            if (p[b] != want) {
                fprintf(stderr, "c-thrash: thread %d: byte %d is %u, wrote %u\n", w->id, b, p[b], want);
                abort();
            }
            sum += want;
        }
        free((void *)p);
    }
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    long iterations = argc > 2 ? atol(argv[2]) : 4000000;
    int objsize = argc > 3 ? atoi(argv[3]) : 8;
    int writes = argc > 4 ? atoi(argv[4]) : 16;
    if (threads < 1 || threads > MAX_THREADS || iterations < 1 || objsize < 1 || writes < 1) {
        fprintf(stderr, "usage: c_thrash [THREADS (1..%d) [ITERATIONS [OBJSIZE [WRITES]]]]\n", MAX_THREADS);
        return 2;
    }
    pthread_t tid[MAX_THREADS];
    static struct worker w[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){.id = i, .iterations = iterations, .objsize = objsize, .writes = writes};
        if (pthread_create(&tid[i], NULL, run, &w[i]) != 0) {
            fprintf(stderr, "c-thrash: pthread_create failed\n");
            return 1;
        }
    }
    unsigned long long sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        sum += w[i].sum;
    }
    printf("c-thrash ok threads=%d iterations=%ld objsize=%d writes=%d sum=%llu malloc=%s\n", threads, iterations,
           objsize, writes, sum, malloc_library());
    return 0;
}

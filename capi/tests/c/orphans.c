/*
 * Memory of exited threads comes back: four threads allocate 1M blocks of
 * 64 bytes each and exit; the main thread frees them all and calls
 * malloc_trim(0). Prints the resident set after each step (KiB), for the
 * test to compare with glibc's.
 *
 * Usage: orphans   (with or without nalloc preloaded)
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define N (1 << 20)

static void *blocks[THREADS][N];

static void *work(void *arg) {
    void **b = arg;
    for (int i = 0; i < N; i++) {
        b[i] = malloc(64);
        if (!b[i]) exit(3);
        memset(b[i], i, 64);
    }
    return NULL;
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &v) == 1) break;
    fclose(f);
    return v;
}

int main(void) {
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, work, blocks[i]) != 0) return 3;
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    long full = rss_kib();
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < N; j++) {
            if (((unsigned char *)blocks[i][j])[63] != (unsigned char)j) return 4;
            free(blocks[i][j]);
        }
    malloc_trim(0);
    printf("orphans: full=%ld trimmed=%ld\n", full, rss_kib());
    return 0;
}

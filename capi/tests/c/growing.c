/*
 * growing: a vector that doubles from 1 MiB to 64 MiB, each size written
 * whole and freed before the next, as a prover's vectors grow. Under nalloc
 * the larger blocks are built from the freed smaller ones' pages; the test
 * reads that from the exit report's `gathered=` (NALLOC_STATS=1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    for (size_t size = 1u << 20; size <= 64u << 20; size *= 2) {
        unsigned char *p = malloc(size);
        if (!p) {
            fprintf(stderr, "growing: malloc(%zu) failed\n", size);
            return 1;
        }
        memset(p, (int)(size >> 20), size);
        if (p[size - 1] != (unsigned char)(size >> 20)) {
            fprintf(stderr, "growing: block of %zu lost its contents\n", size);
            return 1;
        }
        free(p);
    }
    puts("growing: ok");
    return 0;
}

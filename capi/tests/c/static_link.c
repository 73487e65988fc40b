/*
 * Linked statically with libnalloc.a: malloc is nalloc's, and the library
 * constructor came along (the NALLOC_STATS report appears at exit).
 *
 * Usage: static_link   (run with NALLOC_STATS=1)
 */
#include "check.h"

int main(void) {
    struct nalloc_stats a, b;
    CHECK(nalloc_stats(&a) == 0);
    void *p = malloc(100);
    void *q = malloc(1u << 20);
    CHECK(p != NULL && q != NULL);
    CHECK(nalloc_stats(&b) == 0);
    CHECK(b.small_allocs > a.small_allocs);
    CHECK(b.large_allocs > a.large_allocs);
    free(p);
    free(q);
    void *w = nalloc_witness_alloc(64);
    CHECK(w != NULL);
    nalloc_witness_free(w);
    return finish("static_link");
}

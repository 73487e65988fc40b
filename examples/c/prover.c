/* A toy prover in C on nalloc (nalloc.h): secret witness values in witness
 * memory, evaluation vectors as large malloc blocks (warm, huge-page-placed
 * spans), one wipe of all witness memory at the end of the proof.
 * It checks its own result and exits non-zero on any mismatch.
 *
 * Build and run (from the repository root):
 *   cargo build --release -p nalloc-capi && make -C examples/c run
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nalloc.h"

#define P 2013265921u /* BabyBear: 15 * 2^27 + 1 */

static uint32_t mulmod(uint32_t a, uint32_t b) { return (uint32_t)((uint64_t)a * b % P); }
static uint32_t addmod(uint32_t a, uint32_t b) { return (uint32_t)(((uint64_t)a + b) % P); }

int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : (1u << 20);
    int rounds = 3;

    /* The witness: zeroed, locked, out of core dumps, zero in fork children. */
    uint32_t *witness = nalloc_witness_alloc(n * sizeof *witness);
    if (!witness) { fprintf(stderr, "no witness memory\n"); return 1; }
    for (size_t i = 0; i < n; i++) witness[i] = (uint32_t)((i * 2654435761u) % P);

    uint32_t expect = 0, got = 0;
    for (int r = 0; r < rounds; r++) {
        /* Evaluations: a large block, freed every round and reused warm. */
        uint32_t *evals = malloc(n * sizeof *evals);
        if (!evals) return 1;
        uint32_t c = (uint32_t)(r + 2);
        for (size_t i = 0; i < n; i++) evals[i] = mulmod(witness[i], c);
        uint32_t sum = 0;
        for (size_t i = 0; i < n; i++) sum = addmod(sum, evals[i]);
        got = addmod(got, sum);
        free(evals);
    }
    /* The same sum computed another way: (2 + 3 + 4) * sum(witness). */
    uint32_t ws = 0;
    for (size_t i = 0; i < n; i++) ws = addmod(ws, witness[i]);
    for (int r = 0; r < rounds; r++) expect = addmod(expect, mulmod(ws, (uint32_t)(r + 2)));
    if (got != expect) { fprintf(stderr, "wrong result: %u != %u\n", got, expect); return 1; }

    nalloc_witness_free(witness); /* wiped */
    nalloc_witness_wipe_all();    /* end of the proof: every witness byte zeroed */

    struct nalloc_stats s;
    nalloc_stats(&s);
    if (s.large_allocs < (unsigned long long)rounds) { fprintf(stderr, "malloc did not reach nalloc\n"); return 1; }
    printf("c prover: n=%zu rounds=%d result=%u ok; large_allocs=%llu pool_hits=%llu\n", n, rounds, got,
           (unsigned long long)s.large_allocs, (unsigned long long)s.pool_hits);
    return 0;
}

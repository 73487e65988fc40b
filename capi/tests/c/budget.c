/*
 * The memory budget under LD_PRELOAD (run with NALLOC_BUDGET=64M and
 * NALLOC_STATS=1): a malloc past the budget returns NULL with errno =
 * ENOMEM, earlier data is intact, a later malloc that fits succeeds; the
 * phase entry points are found with dlsym, as a preloaded program would.
 *
 * Usage: budget
 */
#include "check.h"

static unsigned long long checksum(const unsigned char *p, size_t n) {
    unsigned long long h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

int main(void) {
    void (*begin)(const char *) = (void (*)(const char *))dlsym(RTLD_DEFAULT, "nalloc_phase_begin");
    void (*end)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "nalloc_phase_end");
    CHECK(begin != NULL && end != NULL);
    if (!begin || !end) return 1;

    size_t kept_n = 8u << 20;
    unsigned char *kept = malloc(kept_n);
    CHECK(kept != NULL);
    for (size_t i = 0; i < kept_n; i++) kept[i] = (unsigned char)(i * 7 + i / 4096);
    unsigned long long sum = checksum(kept, kept_n);

    begin("alloc");
    errno = 0;
    void *big = malloc(100u << 20);
    int err = errno;
    end();
    CHECK(big == NULL);
    CHECK(err == ENOMEM);

    CHECK(checksum(kept, kept_n) == sum);
    unsigned char *later = malloc(16u << 20);
    CHECK(later != NULL);
    if (later) {
        memset(later, 3, 16u << 20);
        CHECK(later[(16u << 20) - 1] == 3);
    }
    free(later);
    free(kept);

    /* The C setters, found as a preloaded program finds them: the peak
     * restarts at the current value, and a budget set at run time replaces
     * the environment's (0 lifts it). */
    int (*stats)(struct nalloc_stats *) = (int (*)(struct nalloc_stats *))dlsym(RTLD_DEFAULT, "nalloc_stats");
    size_t (*trim)(void) = (size_t (*)(void))dlsym(RTLD_DEFAULT, "nalloc_trim");
    void (*reset_peaks)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "nalloc_reset_peaks");
    void (*set_budget)(size_t) = (void (*)(size_t))dlsym(RTLD_DEFAULT, "nalloc_set_budget");
    CHECK(stats && trim && reset_peaks && set_budget);
    if (!stats || !trim || !reset_peaks || !set_budget) return 1;
    struct nalloc_stats s1, s2;
    CHECK(stats(&s1) == 0);
    trim();
    reset_peaks();
    CHECK(stats(&s2) == 0);
    /* 24 MiB were live at once before; after the trim far less is mapped. */
    CHECK(s1.peak_mapped >= (24u << 20));
    CHECK(s2.peak_mapped + (16u << 20) <= s1.peak_mapped);
    set_budget(0);
    void *lifted = malloc(100u << 20);
    CHECK(lifted != NULL);
    free(lifted);
    trim(); /* else the 64 MiB below is cut from the pooled 100 MiB: no new commit */
    set_budget(32u << 20);
    errno = 0;
    void *again = malloc(64u << 20);
    CHECK(again == NULL && errno == ENOMEM);
    free(again);
    if (check_failures) return 1;
    printf("budget: ok\n");
    return 0;
}

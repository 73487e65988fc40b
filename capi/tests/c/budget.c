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
    if (check_failures) return 1;
    printf("budget: ok\n");
    return 0;
}

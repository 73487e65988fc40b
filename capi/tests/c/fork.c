/*
 * fork() while other threads allocate. Worker threads hammer every locked
 * slow path of the allocator — new and retired thread heaps (short-lived
 * threads), large blocks and the warm pool, segment release, witness memory,
 * trimming — while the main thread forks repeatedly. Each child allocates
 * (including from a new thread and witness memory) and exits; a child that
 * deadlocks on a lock inherited from a vanished thread is killed by alarm()
 * and reported. Linked with -lnalloc.
 *
 * Usage: fork [forks]
 */
#include "check.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORKERS 3

static atomic_int stop;

static unsigned next_rand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void *short_lived(void *arg) {
    void *p = malloc((size_t)(uintptr_t)arg);
    if (p) memset(p, 1, (size_t)(uintptr_t)arg);
    free(p);
    return NULL;
}

static void *worker(void *arg) {
    unsigned rng = (unsigned)(uintptr_t)arg * 7919u + 1u;
    void *held[64] = {0};
    while (!atomic_load(&stop)) {
        unsigned r = next_rand(&rng);
        unsigned slot = r % 64;
        free(held[slot]);
        held[slot] = NULL;
        switch (r % 8) {
        case 0: { /* a thread that lives for one allocation: heap create/retire */
            pthread_t t;
            if (pthread_create(&t, NULL, short_lived, (void *)(uintptr_t)(16 + r % 4000)) == 0) pthread_join(t, NULL);
            break;
        }
        case 1: /* large blocks: warm pool and mapping */
            held[slot] = malloc((1u << 16) + r % (4u << 20));
            break;
        case 2: { /* witness memory */
            void *w = nalloc_witness_alloc(16 + r % 100000);
            nalloc_witness_free(w);
            break;
        }
        case 3:
            if (r % 256 == 3) nalloc_trim();
            break;
        case 4: /* a large block freed at once: pool in and out */
            free(malloc((1u << 17) + r % (1u << 20)));
            break;
        default:
            held[slot] = malloc(1 + r % 2048);
            break;
        }
        if (held[slot]) memset(held[slot], (int)slot, 16);
    }
    for (int i = 0; i < 64; i++) free(held[i]);
    return NULL;
}

static void *child_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        void *p = malloc(1 + (size_t)i * 37 % 5000);
        if (!p) return (void *)1;
        free(p);
    }
    return NULL;
}

/* The child's work: every allocation path once, a new thread, then exit. */
static int child_main(void) {
    alarm(10); /* a deadlock kills the child with SIGALRM */
    void *blocks[100];
    for (int i = 0; i < 100; i++) {
        blocks[i] = malloc(1 + (size_t)i * 97);
        if (!blocks[i]) return 1;
        memset(blocks[i], i, 1 + (size_t)i * 97);
    }
    void *big = malloc(6u << 20);
    if (!big) return 2;
    memset(big, 1, 6u << 20);
    big = realloc(big, 12u << 20);
    if (!big) return 3;
    free(big);
    void *a = NULL;
    if (posix_memalign(&a, 4096, 10000) != 0) return 4;
    free(a);
    void *w = nalloc_witness_alloc(1000);
    if (!w) return 5;
    nalloc_witness_free(w);
    pthread_t t;
    void *ret = (void *)1;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0) return 6;
    pthread_join(t, &ret);
    if (ret != NULL) return 7;
    for (int i = 0; i < 100; i++) free(blocks[i]);
    nalloc_trim();
    return 0;
}

int main(int argc, char **argv) {
    int forks = argc > 1 ? atoi(argv[1]) : 200;
    alarm(300); /* the whole test */
    pthread_t w[WORKERS];
    for (uintptr_t i = 0; i < WORKERS; i++) CHECK(pthread_create(&w[i], NULL, worker, (void *)i) == 0);

    int deadlocked = 0, failed = 0;
    for (int i = 0; i < forks; i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) exit(child_main()); /* exit(): atexit handlers run too */
        CHECK(pid > 0);
        if (pid < 0) break;
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
            deadlocked++;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed++;
            fprintf(stderr, "fork: child %d ended with status 0x%x\n", i, status);
        }
        /* Let the workers run between forks. */
        for (volatile int k = 0; k < 20000; k++) {
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++) pthread_join(w[i], NULL);
    if (deadlocked) fprintf(stderr, "fork: %d of %d children deadlocked\n", deadlocked, forks);
    CHECK(deadlocked == 0);
    CHECK(failed == 0);
    printf("fork: %d children\n", forks);
    return finish("fork");
}

/*
 * Heap misuse that nalloc's hardened build (cargo feature `hardened`)
 * must catch: the process aborts with one line on stderr.
 *
 * Usage: misuse double-free   (run with nalloc preloaded)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (strcmp(argv[1], "double-free") == 0) {
        char *p = malloc(40);
        char *keep = malloc(40); /* keeps the page in use */
        free(p);
        free(p);
        free(keep);
    }
    printf("misuse: not detected\n");
    return 0;
}

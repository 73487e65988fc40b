/*
 * The program closes stderr and opens a file, which gets descriptor 2. The
 * NALLOC_STATS report must not land in that file; it goes to nalloc's
 * duplicate of the original stderr instead.
 *
 * Usage: stderr_reuse FILE   (run with nalloc preloaded and NALLOC_STATS=1)
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    free(malloc(10));
    close(2);
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd != 2) return 3;
    const char *msg = "payload\n";
    if (write(fd, msg, strlen(msg)) != (ssize_t)strlen(msg)) return 4;
    return 0;
}

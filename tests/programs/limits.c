/* limits fork: fork children (each waits on a pipe) until fork fails; prints
 *   "forked N then EAGAIN" (the errno's name), lets the children go, reaps them, exits 0.
 * limits alloc MIB: allocate MIB MiB and touch every page; prints "allocated MIB MiB" if it
 *   got them all (under a lower memory limit the kernel kills it first). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errname.h"

static int fork_loop(void) {
    int fds[2];
    if (pipe(fds) != 0) {
        printf("pipe %s\n", errname(errno));
        return 1;
    }
    int n = 0;
    for (; n < 100000; n++) {
        pid_t pid = fork();
        if (pid < 0) {
            printf("forked %d then %s\n", n, errname(errno));
            break;
        }
        if (pid == 0) {
            char c;
            close(fds[1]);
            /* Returns 0 once the parent closes its end. */
            if (read(fds[0], &c, 1) < 0) _exit(1);
            _exit(0);
        }
    }
    fflush(stdout);
    close(fds[1]);
    while (wait(NULL) > 0) {
    }
    return 0;
}

static int alloc(long mib) {
    for (long i = 0; i < mib; i++) {
        char *p = malloc(1 << 20);
        if (!p) {
            printf("malloc failed after %ld MiB\n", i);
            return 1;
        }
        memset(p, 1, 1 << 20);
    }
    printf("allocated %ld MiB\n", mib);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "fork") == 0) return fork_loop();
    if (argc == 3 && strcmp(argv[1], "alloc") == 0) return alloc(atol(argv[2]));
    fprintf(stderr, "usage: limits fork | limits alloc MIB\n");
    return 2;
}

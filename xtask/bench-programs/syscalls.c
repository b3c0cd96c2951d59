/* Syscall micro-benchmark for `cargo xtask bench run` (built with gcc -static).
 *
 * usage: syscalls DIR FILES CALLS
 * DIR holds files f0000 .. f<FILES-1>. Does CALLS stat(2) calls, then CALLS
 * open/read/close sequences, cycling over the files by absolute path, and prints
 * the time of each loop in nanoseconds:
 *     stat_ns=<n> open_ns=<n> calls=<n>
 * A failed call aborts with exit 2, so a benchmark never times error paths. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s DIR FILES CALLS\n", argv[0]);
        return 1;
    }
    const char *dir = argv[1];
    int files = atoi(argv[2]);
    long calls = atol(argv[3]);
    if (files <= 0 || calls <= 0) {
        fprintf(stderr, "FILES and CALLS must be positive\n");
        return 1;
    }
    char **paths = calloc((size_t)files, sizeof *paths);
    for (int i = 0; i < files; i++) {
        paths[i] = malloc(strlen(dir) + 16);
        sprintf(paths[i], "%s/f%04d", dir, i);
    }

    struct stat st;
    long long t0 = now_ns();
    for (long i = 0; i < calls; i++) {
        if (stat(paths[i % files], &st) != 0) {
            perror(paths[i % files]);
            return 2;
        }
    }
    long long t1 = now_ns();

    char buf[4096];
    for (long i = 0; i < calls; i++) {
        int fd = open(paths[i % files], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            perror(paths[i % files]);
            return 2;
        }
        if (read(fd, buf, sizeof buf) < 0) {
            perror("read");
            return 2;
        }
        close(fd);
    }
    long long t2 = now_ns();

    printf("stat_ns=%lld open_ns=%lld calls=%ld\n", t1 - t0, t2 - t1, calls);
    return 0;
}

/* threads ITERATIONS PATH...: 8 threads read every PATH ITERATIONS times concurrently
 * (stat, open, fstat, read, close), each starting at a different file, and compare size
 * and FNV-1a-64 with what a first single-threaded pass read. Prints
 * "threads=8 reads=N mismatches=M" and, for the first pass, "PATH SIZE FNV" per file. */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errname.h"

#define THREADS 8

static int nfiles, iterations;
static char **files;
static uint64_t *want_hash;
static long long *want_size;

static int hash_file(const char *p, uint64_t *h, long long *size) {
    struct stat st, fs;
    if (stat(p, &st) != 0)
        return -1;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, &fs) != 0 || fs.st_size != st.st_size) {
        close(fd);
        return -2;
    }
    unsigned char buf[16384];
    uint64_t x = 0xcbf29ce484222325ULL;
    long long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            x ^= buf[i];
            x *= 0x100000001b3ULL;
        }
        total += n;
    }
    close(fd);
    if (n < 0 || total != st.st_size)
        return -3;
    *h = x;
    *size = total;
    return 0;
}

struct result {
    long reads, mismatches;
};

static void *worker(void *arg) {
    long id = (long)arg;
    struct result *r = calloc(1, sizeof *r);
    for (int it = 0; it < iterations; it++) {
        for (int k = 0; k < nfiles; k++) {
            int i = (int)((k + id * 7 + it) % nfiles);
            uint64_t h;
            long long size;
            int e = hash_file(files[i], &h, &size);
            r->reads++;
            if (e != 0 || h != want_hash[i] || size != want_size[i]) {
                if (r->mismatches < 5)
                    fprintf(stderr, "thread %ld: %s: rc %d (%s)\n", id, files[i], e, errname(errno));
                r->mismatches++;
            }
        }
    }
    return r;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: threads ITERATIONS PATH...\n");
        return 2;
    }
    iterations = atoi(argv[1]);
    files = argv + 2;
    nfiles = argc - 2;
    want_hash = calloc(nfiles, sizeof *want_hash);
    want_size = calloc(nfiles, sizeof *want_size);
    for (int i = 0; i < nfiles; i++) {
        if (hash_file(files[i], &want_hash[i], &want_size[i]) != 0) {
            printf("%s error %s\n", files[i], errname(errno));
            return 1;
        }
        printf("%s %lld %016llx\n", files[i], want_size[i], (unsigned long long)want_hash[i]);
    }
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
            return 1;
    long reads = 0, mismatches = 0;
    for (int i = 0; i < THREADS; i++) {
        struct result *r;
        pthread_join(t[i], (void **)&r);
        reads += r->reads;
        mismatches += r->mismatches;
    }
    printf("threads=%d reads=%ld mismatches=%ld\n", THREADS, reads, mismatches);
    return mismatches != 0;
}

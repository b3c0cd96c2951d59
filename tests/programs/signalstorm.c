/* signalstorm ITERATIONS DIR: a second thread sends this process SIGUSR1 as fast as it can
 * (the handler is installed with SA_RESTART, so natively no call sees the signal) while the
 * main thread, ITERATIONS times, makes DIR/d with mkdir, renames it to DIR/e, creates and
 * unlinks DIR/e/f, and removes DIR/e. Each call must succeed exactly once: a change that
 * was made and then restarted because a signal came in shows up as EEXIST or ENOENT.
 * Prints "signals=S calls=C failures=F" and, per failure, "FAIL call errno". */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errname.h"

static atomic_int done;
static atomic_long signals;
static pthread_t main_thread;

static void on_usr1(int sig) {
    (void)sig;
}

static void *storm(void *arg) {
    (void)arg;
    while (!atomic_load(&done)) {
        pthread_kill(main_thread, SIGUSR1);
        atomic_fetch_add(&signals, 1);
    }
    return NULL;
}

static int failures;

static void check(int r, const char *what) {
    if (r < 0) {
        failures++;
        if (failures <= 10)
            printf("FAIL %s %s\n", what, errname(errno));
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: signalstorm ITERATIONS DIR\n");
        return 2;
    }
    int n = atoi(argv[1]);
    char d[4096], e[4096], f[4096];
    snprintf(d, sizeof d, "%s/d", argv[2]);
    snprintf(e, sizeof e, "%s/e", argv[2]);
    snprintf(f, sizeof f, "%s/e/f", argv[2]);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);

    main_thread = pthread_self();
    pthread_t t;
    pthread_create(&t, NULL, storm, NULL);
    long calls = 0;
    for (int i = 0; i < n; i++) {
        check(mkdir(d, 0755), "mkdir");
        check(rename(d, e), "rename");
        int fd = open(f, O_CREAT | O_EXCL | O_WRONLY, 0644);
        check(fd, "open-excl");
        if (fd >= 0)
            close(fd);
        check(unlink(f), "unlink");
        check(rmdir(e), "rmdir");
        calls += 5;
    }
    atomic_store(&done, 1);
    pthread_join(t, NULL);
    printf("signals=%ld calls=%ld failures=%d\n", atomic_load(&signals), calls, failures);
    return 0;
}

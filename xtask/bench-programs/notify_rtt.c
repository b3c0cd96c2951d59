/* The kernel's floor for a seccomp user notification answered with CONTINUE, for
 * `cargo xtask bench run` (built with gcc -static -pthread).
 *
 * usage: notify_rtt CALLS WORKERS SYNC
 * Times CALLS getppid(2) calls natively, then installs a filter that notifies getppid,
 * starts WORKERS threads that each loop on NOTIF_RECV and answer CONTINUE (what vrift
 * does for a path outside its view), optionally sets SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
 * (SYNC=1), and times CALLS calls again. Prints per-call nanoseconds:
 *     base_ns=<n> notify_ns=<n> sync=<0|1|unsupported> workers=<n> */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

static int listener = -1;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *serve(void *arg) {
    (void)arg;
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    for (;;) {
        memset(&req, 0, sizeof req);
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) {
            if (errno == ENOENT || errno == EINTR)
                continue;
            return NULL;
        }
        memset(&resp, 0, sizeof resp);
        resp.id = req.id;
        resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
}

static long long time_calls(long calls) {
    long long t0 = now_ns();
    for (long i = 0; i < calls; i++)
        syscall(SYS_getppid);
    return now_ns() - t0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s CALLS WORKERS SYNC\n", argv[0]);
        return 1;
    }
    long calls = atol(argv[1]);
    int workers = atoi(argv[2]);
    int sync = atoi(argv[3]);
    if (calls <= 0 || workers <= 0) {
        fprintf(stderr, "CALLS and WORKERS must be positive\n");
        return 1;
    }
    long long base = time_calls(calls);

    struct sock_filter insns[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof insns / sizeof insns[0], .filter = insns};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        perror("PR_SET_NO_NEW_PRIVS");
        return 2;
    }
    listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                            SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (listener < 0) {
        perror("seccomp");
        return 2;
    }
    const char *sync_state = "0";
    if (sync) {
        __u64 flags = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
        sync_state = ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags) == 0
                         ? "1" : "unsupported";
    }
    for (int i = 0; i < workers; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, serve, NULL) != 0) {
            perror("pthread_create");
            return 2;
        }
    }
    long long notified = time_calls(calls);
    printf("base_ns=%lld notify_ns=%lld sync=%s workers=%d\n", base / calls,
           notified / calls, sync_state, workers);
    fflush(stdout);
    _exit(0); /* the workers stay blocked in RECV */
}

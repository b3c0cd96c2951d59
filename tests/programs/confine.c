/* Run a command under a seccomp filter like a container's default profile:
 *   confine ns CMD...       unshare, mount, setns and a clone that makes namespaces get EPERM
 *   confine threads CMD...  clone3 gets ENOSYS and a clone that makes a thread EPERM
 * Used to check that vrift names what was refused instead of failing vaguely or panicking. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NR_IS(nr, skip) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, (skip))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define LOAD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: confine ns|threads CMD...\n");
        return 2;
    }
    const unsigned ns_flags = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
                              CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP;
    struct sock_filter ns[] = {
        LOAD(offsetof(struct seccomp_data, nr)),
        NR_IS(__NR_unshare, 1), RET(SECCOMP_RET_ERRNO | EPERM),
        NR_IS(__NR_mount, 1), RET(SECCOMP_RET_ERRNO | EPERM),
        NR_IS(__NR_setns, 1), RET(SECCOMP_RET_ERRNO | EPERM),
        NR_IS(__NR_clone3, 1), RET(SECCOMP_RET_ERRNO | ENOSYS),
        NR_IS(__NR_clone, 3),
        LOAD(offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, ns_flags, 0, 1), RET(SECCOMP_RET_ERRNO | EPERM),
        RET(SECCOMP_RET_ALLOW),
    };
    struct sock_filter threads[] = {
        LOAD(offsetof(struct seccomp_data, nr)),
        NR_IS(__NR_clone3, 1), RET(SECCOMP_RET_ERRNO | ENOSYS),
        NR_IS(__NR_clone, 3),
        LOAD(offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1), RET(SECCOMP_RET_ERRNO | EPERM),
        RET(SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog;
    if (strcmp(argv[1], "ns") == 0) {
        prog.len = sizeof ns / sizeof ns[0];
        prog.filter = ns;
    } else {
        prog.len = sizeof threads / sizeof threads[0];
        prog.filter = threads;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("seccomp");
        return 2;
    }
    execvp(argv[2], argv + 2);
    perror(argv[2]);
    return 127;
}

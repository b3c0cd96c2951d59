/* Try every way out of a sandbox we know of, and say for each whether it was blocked:
 *   escape SECRET HOST_PID PORT FD
 * SECRET is a readable file outside the sandbox, HOST_PID a process outside it, PORT a TCP
 * listener on the host's loopback, FD a descriptor opened on SECRET by whoever started the
 * sandbox. The working directory holds `abs-link` (a symlink to SECRET) and `rel-link` (a
 * relative symlink climbing to it). One line per check: "NAME: blocked (why)" or
 * "NAME: ESCAPED (what)". Exit status 0 when every check was blocked. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *secret;
static int escaped;

static void report(const char *name, int blocked, const char *why) {
    printf("%s: %s (%s)\n", name, blocked ? "blocked" : "ESCAPED", why);
    fflush(stdout);
    if (!blocked) escaped = 1;
}

/* Can `path` be opened and read? On failure `why` gets the error. */
static int readable(const char *path, char *why, size_t n) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(why, n, "%s: %s", path, strerror(errno));
        return 0;
    }
    char b[64];
    ssize_t r = read(fd, b, sizeof b);
    close(fd);
    if (r < 0) {
        snprintf(why, n, "%s: read: %s", path, strerror(errno));
        return 0;
    }
    snprintf(why, n, "read %zd bytes of %s", r, path);
    return 1;
}

static void check_open(const char *name, const char *path) {
    char why[512];
    int ok = readable(path, why, sizeof why);
    report(name, !ok, why);
}

static void check_fds(int fd) {
    char why[512], b[16];
    ssize_t r = read(fd, b, sizeof b);
    if (r >= 0) {
        snprintf(why, sizeof why, "fd %d reads the secret", fd);
        report("inherited_fd", 0, why);
        return;
    }
    /* Any descriptor but 0, 1 and 2 (and the one opendir makes) is a leak. */
    char leaks[256] = "";
    for (int i = 3; i < 1024; i++) {
        if (fcntl(i, F_GETFD) >= 0) {
            char l[16];
            snprintf(l, sizeof l, " %d", i);
            strncat(leaks, l, sizeof leaks - strlen(leaks) - 1);
        }
    }
    if (leaks[0]) {
        snprintf(why, sizeof why, "descriptors open:%s", leaks);
        report("inherited_fd", 0, why);
    } else {
        snprintf(why, sizeof why, "fd %d: %s; only 0, 1, 2 open", fd, strerror(errno));
        report("inherited_fd", 1, why);
    }
}

static void check_processes(const char *host_pid) {
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9') n++;
    if (d) closedir(d);
    char p[64], why[128];
    snprintf(p, sizeof p, "/proc/%s", host_pid);
    int seen = access(p, F_OK) == 0;
    snprintf(why, sizeof why, "%d processes in /proc, host pid %s %s", n, host_pid,
             seen ? "visible" : "absent");
    report("host_processes", !seen && n < 20, why);
}

static void check_writes(void) {
    char dir[512], why[1024] = "", one[600];
    snprintf(dir, sizeof dir, "%s", secret);
    char *slash = strrchr(dir, '/');
    if (slash) strcpy(slash, "/written-from-sandbox");
    /* The first two may succeed on a sandbox's own root (a tmpfs): whoever started the
     * sandbox checks that nothing appeared on the host. The host's /usr and the secret's
     * directory must refuse. */
    const char *paths[] = {"/written-from-sandbox", "/etc/written-from-sandbox",
                           "/usr/written-from-sandbox", dir};
    int blocked = 1;
    for (unsigned i = 0; i < sizeof paths / sizeof *paths; i++) {
        int fd = open(paths[i], O_WRONLY | O_CREAT, 0644);
        if (fd >= 0) {
            close(fd);
            if (i >= 2) blocked = 0;
            snprintf(one, sizeof one, "%s created; ", paths[i]);
        } else {
            snprintf(one, sizeof one, "%s: %s; ", paths[i], strerror(errno));
        }
        strncat(why, one, sizeof why - strlen(why) - 1);
    }
    report("write_outside", blocked, why);
}

static void check_loopback(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(0x7f000001);
    char why[128];
    if (s < 0) {
        snprintf(why, sizeof why, "socket: %s", strerror(errno));
        report("host_loopback", 1, why);
        return;
    }
    int r = connect(s, (struct sockaddr *)&a, sizeof a);
    snprintf(why, sizeof why, "connect 127.0.0.1:%d: %s", port, r == 0 ? "connected" : strerror(errno));
    report("host_loopback", r != 0, why);
    close(s);
}

static void check_ptrace(const char *host_pid) {
    pid_t pid = atoi(host_pid);
    char why[128];
    /* SEIZE rather than ATTACH: a tracee that is reached is not stopped. */
    long r = ptrace(PTRACE_SEIZE, pid, 0, 0);
    snprintf(why, sizeof why, "PTRACE_SEIZE %d: %s", pid, r == 0 ? "attached" : strerror(errno));
    if (r == 0) ptrace(PTRACE_DETACH, pid, 0, 0);
    report("ptrace", r != 0, why);
}

static void check_mount_direct(void) {
    char why[256];
    mkdir("/tmp/m", 0755);
    int r = mount("none", "/tmp/m", "tmpfs", 0, NULL);
    long p = syscall(SYS_pivot_root, "/tmp", "/tmp/m");
    snprintf(why, sizeof why, "mount: %s; pivot_root: %s", r == 0 ? "mounted" : strerror(errno),
             p == 0 ? "done" : strerror(errno));
    /* A mount inside the sandbox's own namespace is not an escape by itself: what it shows
     * is checked by `unshare_mount` below. */
    report("mount", 1, why);
    if (r == 0) umount2("/tmp/m", MNT_DETACH);
}

/* In a child: new user and mount namespaces, then every mount trick, then look for the
 * secret through what they made. */
static void check_unshare_mount(const char *host_pid) {
    int pipefd[2];
    if (pipe(pipefd) != 0) return;
    pid_t c = fork();
    if (c == 0) {
        close(pipefd[0]);
        char log[1024] = "", one[600], p[1400];
        int u = unshare(CLONE_NEWUSER | CLONE_NEWNS);
        snprintf(one, sizeof one, "unshare: %s; ", u == 0 ? "done" : strerror(errno));
        strcat(log, one);
        mkdir("/tmp/u", 0755);
        mkdir("/tmp/u/p", 0755);
        mkdir("/tmp/u/r", 0755);
        int m = mount("proc", "/tmp/u/p", "proc", 0, NULL);
        int b = mount("/", "/tmp/u/r", NULL, MS_BIND | MS_REC, NULL);
        snprintf(one, sizeof one, "mount proc: %s; bind /: %s; ", m == 0 ? "done" : strerror(errno),
                 b == 0 ? "done" : strerror(errno));
        strcat(log, one);
        int found = 0;
        const char *via[] = {"/tmp/u/r%s", "/tmp/u/p/1/root%s", "/tmp/u/p/%s/root%s"};
        for (int i = 0; i < 3 && !found; i++) {
            if (i < 2) snprintf(p, sizeof p, via[i], secret);
            else snprintf(p, sizeof p, via[i], host_pid, secret);
            char why[512];
            found = readable(p, why, sizeof why);
            if (found) snprintf(one, sizeof one, "%s", why);
        }
        int ch = chroot("/tmp/u") == 0 && chdir("../../../../../..") == 0 && chroot(".") == 0;
        char why[512];
        if (!found && ch) {
            found = readable(secret, why, sizeof why);
            if (found) snprintf(one, sizeof one, "after chroot(.): %s", why);
        }
        snprintf(p, sizeof p, "%schroot trick: %s; secret %s", log, ch ? "done" : "refused",
                 found ? one : "not found");
        write(pipefd[1], p, strlen(p));
        _exit(found ? 1 : 0);
    }
    close(pipefd[1]);
    char buf[1024] = "";
    ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
    if (n > 0) buf[n] = 0;
    int st = 0;
    waitpid(c, &st, 0);
    report("unshare_mount_chroot", WIFEXITED(st) && WEXITSTATUS(st) == 0, buf);
}

static void check_io_uring(void) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    char why[600];
    int fd = syscall(__NR_io_uring_setup, 4, &p);
    if (fd < 0) {
        snprintf(why, sizeof why, "io_uring_setup: %s", strerror(errno));
        report("io_uring", 1, why);
        return;
    }
    size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    char *sq = mmap(0, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_SQ_RING);
    char *cq = mmap(0, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_CQ_RING);
    struct io_uring_sqe *sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe),
                                     PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
        snprintf(why, sizeof why, "mmap of the rings: %s", strerror(errno));
        report("io_uring", 1, why);
        return;
    }
    unsigned tail = *(unsigned *)(sq + p.sq_off.tail);
    unsigned idx = tail & *(unsigned *)(sq + p.sq_off.ring_mask);
    memset(&sqes[idx], 0, sizeof sqes[idx]);
    sqes[idx].opcode = IORING_OP_OPENAT;
    sqes[idx].fd = AT_FDCWD;
    sqes[idx].addr = (unsigned long)secret;
    sqes[idx].open_flags = O_RDONLY;
    ((unsigned *)(sq + p.sq_off.array))[idx] = idx;
    __atomic_store_n((unsigned *)(sq + p.sq_off.tail), tail + 1, __ATOMIC_RELEASE);
    int r = syscall(__NR_io_uring_enter, fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    if (r < 0) {
        snprintf(why, sizeof why, "io_uring_enter: %s", strerror(errno));
        report("io_uring", 1, why);
        return;
    }
    unsigned head = *(unsigned *)(cq + p.cq_off.head);
    struct io_uring_cqe *cqe = (struct io_uring_cqe *)(cq + p.cq_off.cqes) +
                               (head & *(unsigned *)(cq + p.cq_off.ring_mask));
    if (cqe->res >= 0) {
        snprintf(why, sizeof why, "IORING_OP_OPENAT %s: opened", secret);
        report("io_uring", 0, why);
    } else {
        snprintf(why, sizeof why, "IORING_OP_OPENAT %s: %s", secret, strerror(-cqe->res));
        report("io_uring", 1, why);
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: escape SECRET HOST_PID PORT FD\n");
        return 2;
    }
    secret = argv[1];
    const char *host_pid = argv[2];
    char p[1024];
    check_fds(atoi(argv[4]));
    check_open("secret", secret);
    check_open("symlink_absolute", "abs-link");
    check_open("symlink_relative", "rel-link");
    char cwd[512];
    if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, ".");
    snprintf(p, sizeof p, "%s/../../../../../../../../..%s", cwd, secret);
    check_open("dotdot", p);
    snprintf(p, sizeof p, "/proc/self/root%s", secret);
    check_open("proc_self_root", p);
    snprintf(p, sizeof p, "/proc/%s/root%s", host_pid, secret);
    check_open("proc_host_pid_root", p);
    snprintf(p, sizeof p, "/proc/1/root%s", secret);
    check_open("proc_1_root", p);
    check_processes(host_pid);
    check_writes();
    check_loopback(atoi(argv[3]));
    check_ptrace(host_pid);
    check_mount_direct();
    check_unshare_mount(host_pid);
    check_io_uring();
    return escaped;
}

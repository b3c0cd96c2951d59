/* writeattempts FILE LINK DIR OUTSIDE_DIR: try every route this program knows to change
 * FILE's bytes or metadata (FILE is a view file, LINK a view symlink to it, DIR a view
 * directory, OUTSIDE_DIR a writable real directory outside the view). Prints
 * "route: ERRNO" for each attempt, or "route: SUCCEEDED" when it went through; ends with
 * "content: <FNV of FILE as read now>". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "errname.h"

static void report(const char *route, long rc) {
    printf("%s: %s\n", route, rc < 0 ? errname(errno) : "SUCCEEDED");
    fflush(stdout);
}

/* An open that should fail; if it succeeds, also try to write through the fd. */
static void try_open(const char *route, const char *path, int flags) {
    int fd = open(path, flags, 0644);
    if (fd < 0) {
        report(route, -1);
        return;
    }
    ssize_t w = write(fd, "X", 1);
    printf("%s: SUCCEEDED (write %s)\n", route, w == 1 ? "went through" : errname(errno));
    close(fd);
}

static char *fdpath(int fd) {
    static char buf[64];
    snprintf(buf, sizeof buf, "/proc/self/fd/%d", fd);
    return buf;
}

static void attempts(const char *file, const char *slink, const char *dir, const char *out, const char *tag) {
    char route[256], path[4096], path2[4096];
#define R(name) (snprintf(route, sizeof route, "%s%s", tag, name), route)
    try_open(R("open O_WRONLY"), file, O_WRONLY);
    try_open(R("open O_RDWR"), file, O_RDWR);
    try_open(R("open O_WRONLY|O_TRUNC"), file, O_WRONLY | O_TRUNC);
    try_open(R("open O_WRONLY|O_APPEND"), file, O_WRONLY | O_APPEND);
    try_open(R("open O_RDONLY|O_TRUNC"), file, O_RDONLY | O_TRUNC);
    try_open(R("open O_RDWR|O_CREAT"), file, O_RDWR | O_CREAT);
    try_open(R("open symlink O_RDWR"), slink, O_RDWR);
    report(R("creat"), creat(file, 0644));
    struct open_how how = {.flags = O_RDWR};
    report(R("openat2 O_RDWR"), syscall(SYS_openat2, AT_FDCWD, file, &how, sizeof how));
    report(R("truncate"), truncate(file, 0));

    int fd = open(file, O_RDONLY);
    report(R("ftruncate of O_RDONLY fd"), ftruncate(fd, 0));
    report(R("write to O_RDONLY fd"), write(fd, "X", 1));
    report(R("pwrite to O_RDONLY fd"), pwrite(fd, "X", 1, 0));
    report(R("fallocate on O_RDONLY fd"), fallocate(fd, 0, 0, 4096));
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    report(R("mmap PROT_WRITE MAP_SHARED"), m == MAP_FAILED ? -1 : 0);
    if (m != MAP_FAILED) {
        ((char *)m)[0] = 'X';
        munmap(m, 4096);
    }
    report(R("fchmod on O_RDONLY fd"), fchmod(fd, 0777));
    report(R("fchown on O_RDONLY fd"), fchown(fd, 1, 1));
    report(R("futimens on O_RDONLY fd"), futimens(fd, NULL));
    report(R("fsetxattr on O_RDONLY fd"), fsetxattr(fd, "user.vrift", "x", 1, 0));
    try_open(R("reopen /proc/self/fd O_WRONLY"), fdpath(fd), O_WRONLY);
    try_open(R("reopen /proc/self/fd O_RDWR"), fdpath(fd), O_RDWR);
    try_open(R("reopen /proc/self/fd O_RDONLY|O_TRUNC"), fdpath(fd), O_RDONLY | O_TRUNC);
    snprintf(path, sizeof path, "%s/hardlink-from-fd", out);
    report(R("linkat /proc/self/fd to outside"), linkat(AT_FDCWD, fdpath(fd), AT_FDCWD, path, AT_SYMLINK_FOLLOW));
    report(R("linkat AT_EMPTY_PATH to outside"), linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH));
    close(fd);

    int pfd = open(file, O_PATH);
    try_open(R("reopen O_PATH fd O_RDWR"), fdpath(pfd), O_RDWR);
    close(pfd);

    report(R("chmod"), chmod(file, 0777));
    report(R("chown"), chown(file, 1, 1));
    report(R("lchown symlink"), lchown(slink, 1, 1));
    report(R("utimensat"), utimensat(AT_FDCWD, file, NULL, 0));
    report(R("setxattr"), setxattr(file, "user.vrift", "x", 1, 0));
    report(R("unlink"), unlink(file));
    snprintf(path, sizeof path, "%s.renamed", file);
    report(R("rename in the view"), rename(file, path));
    snprintf(path2, sizeof path2, "%s/moved-out", out);
    report(R("rename out of the view"), rename(file, path2));
    snprintf(path2, sizeof path2, "%s/hardlink", out);
    report(R("link to outside"), link(file, path2));
    snprintf(path, sizeof path, "%s/new-file", dir);
    try_open(R("create in view dir"), path, O_WRONLY | O_CREAT | O_EXCL);
    report(R("rmdir view dir"), rmdir(dir));
#undef R
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: writeattempts FILE LINK DIR OUTSIDE_DIR\n");
        return 2;
    }
    const char *file = argv[1], *slink = argv[2], *dir = argv[3], *out = argv[4];
    attempts(file, slink, dir, out, "");

    /* A root program in the view's mount namespace may try to make the view writable. */
    char root[4096];
    if (getcwd(root, sizeof root) == NULL)
        return 1;
    long rc = mount(NULL, root, NULL, MS_REMOUNT | MS_BIND, NULL);
    report("remount the view read-write", rc);
    if (rc == 0)
        attempts(file, slink, dir, out, "after remount: ");

    int fd = open(file, O_RDONLY);
    unsigned char buf[65536];
    uint64_t h = 0xcbf29ce484222325ULL;
    ssize_t n;
    while (fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++) {
            h ^= buf[i];
            h *= 0x100000001b3ULL;
        }
    printf("content: %016llx\n", (unsigned long long)h);
    return 0;
}

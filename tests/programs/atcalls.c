/* atcalls VIEWROOT: the *at family, statx, faccessat2, getdents64, chdir/fchdir/getcwd,
 * readlinkat, symlinks that leave the view, and io_uring_setup, over a fixed layout (see
 * tests/tests/run_static_c.rs). Starts with its cwd at VIEWROOT and prints one
 * "label: result" line per probe; results are content, metadata, names or an errno name. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "errname.h"

#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif

static char kind(mode_t m) { return S_ISLNK(m) ? 'l' : S_ISDIR(m) ? 'd' : S_ISREG(m) ? 'f' : '?'; }

/* Print the content of the file at (dirfd, path), or the errno. */
static void cat_at(const char *label, int dirfd, const char *path, int flags) {
    int fd = openat(dirfd, path, O_RDONLY | flags);
    if (fd < 0) {
        printf("%s: %s\n", label, errname(errno));
        return;
    }
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) {
        printf("%s: read %s\n", label, errname(errno));
        return;
    }
    buf[n] = 0;
    if (n > 0 && buf[n - 1] == '\n')
        buf[n - 1] = 0;
    printf("%s: %s\n", label, buf);
}

static void stat_at(const char *label, int dirfd, const char *path, int flags) {
    struct stat st;
    if (fstatat(dirfd, path, &st, flags) != 0)
        printf("%s: %s\n", label, errname(errno));
    else
        printf("%s: %c %o %lld\n", label, kind(st.st_mode), st.st_mode & 07777,
               (long long)st.st_size);
}

static void statx_at(const char *label, int dirfd, const char *path, int flags) {
    struct statx sx;
    if (statx(dirfd, path, flags, STATX_BASIC_STATS, &sx) != 0)
        printf("%s: %s\n", label, errname(errno));
    else
        printf("%s: %c %o %lld mtime=%lld\n", label, kind(sx.stx_mode), sx.stx_mode & 07777,
               (long long)sx.stx_size, (long long)sx.stx_mtime.tv_sec);
}

static void result(const char *label, long rc) { printf("%s: %s\n", label, rc == 0 ? "OK" : errname(errno)); }

static void cwd(const char *label) {
    char buf[4096];
    if (getcwd(buf, sizeof buf) == NULL)
        printf("%s: %s\n", label, errname(errno));
    else
        printf("%s: %s\n", label, buf);
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void listing(const char *label, int dirfd) {
    char buf[8192];
    char *names[256];
    int count = 0;
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY);
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n < 0) {
            printf("%s: %s\n", label, errname(errno));
            return;
        }
        if (n == 0)
            break;
        for (long off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            if (count < 256)
                names[count++] = strdup(d->d_name);
            off += d->d_reclen;
        }
    }
    close(fd);
    qsort(names, count, sizeof names[0], cmp);
    printf("%s:", label);
    for (int i = 0; i < count; i++)
        printf(" %s", names[i]);
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: atcalls VIEWROOT\n");
        return 2;
    }
    const char *root = argv[1];
    cwd("start cwd");
    int dfd = open("data", O_RDONLY | O_DIRECTORY);
    if (dfd < 0) {
        printf("open data: %s\n", errname(errno));
        return 1;
    }
    cat_at("openat a.txt", dfd, "a.txt", 0);
    cat_at("openat ../top.txt", dfd, "../top.txt", 0);
    cat_at("openat sub/../a.txt", dfd, "sub/../a.txt", 0);
    cat_at("openat sub/c.txt", dfd, "sub/c.txt", 0);
    cat_at("openat link", dfd, "link", 0);
    cat_at("openat uplink", dfd, "uplink", 0);
    cat_at("openat link nofollow", dfd, "link", O_NOFOLLOW);
    cat_at("openat missing", dfd, "missing", 0);
    cat_at("openat a.txt/x", dfd, "a.txt/x", 0);
    cat_at("openat a.txt directory", dfd, "a.txt", O_DIRECTORY);
    cat_at("openat abs top.txt", dfd, "/proc/self/cwd/top.txt", 0);

    stat_at("fstatat link nofollow", dfd, "link", AT_SYMLINK_NOFOLLOW);
    stat_at("fstatat link", dfd, "link", 0);
    stat_at("fstatat sub", dfd, "sub", AT_SYMLINK_NOFOLLOW);
    stat_at("fstatat b.bin", dfd, "b.bin", 0);
    stat_at("fstatat ..", dfd, "..", 0);
    stat_at("fstatat missing", dfd, "missing", 0);

    int bfd = openat(dfd, "b.bin", O_RDONLY);
    statx_at("statx empty_path fd b.bin", bfd, "", AT_EMPTY_PATH);
    struct stat fs;
    if (fstat(bfd, &fs) == 0)
        printf("fstat fd b.bin: %c %o %lld\n", kind(fs.st_mode), fs.st_mode & 07777, (long long)fs.st_size);
    else
        printf("fstat fd b.bin: %s\n", errname(errno));
    stat_at("fstatat empty_path fd b.bin", bfd, "", AT_EMPTY_PATH);
    close(bfd);
    statx_at("statx link nofollow", dfd, "link", AT_SYMLINK_NOFOLLOW);
    statx_at("statx uplink", dfd, "uplink", 0);
    statx_at("statx empty_path dirfd", dfd, "", AT_EMPTY_PATH);
    int pfd = openat(dfd, "sub/c.txt", O_PATH);
    statx_at("statx empty_path O_PATH sub/c.txt", pfd, "", AT_EMPTY_PATH);
    close(pfd);

    result("faccessat a.txt R_OK", faccessat(dfd, "a.txt", R_OK, 0));
    result("faccessat a.txt X_OK", faccessat(dfd, "a.txt", X_OK, 0));
    result("faccessat ../tool X_OK", faccessat(dfd, "../tool", X_OK, 0));
    result("faccessat missing F_OK", faccessat(dfd, "missing", F_OK, 0));
    result("faccessat2 sub/c.txt R_OK EACCESS", syscall(SYS_faccessat2, dfd, "sub/c.txt", R_OK, AT_EACCESS));
    result("faccessat2 link F_OK NOFOLLOW", syscall(SYS_faccessat2, dfd, "link", F_OK, AT_SYMLINK_NOFOLLOW));
    result("faccessat2 tool X_OK", syscall(SYS_faccessat2, AT_FDCWD, "tool", X_OK, 0));
    result("faccessat2 a.txt X_OK", syscall(SYS_faccessat2, dfd, "a.txt", X_OK, 0));
    result("access top.txt R_OK", access("top.txt", R_OK));

    listing("getdents64 data", dfd);
    listing("getdents64 root", AT_FDCWD);

    result("chdir data/sub", chdir("data/sub"));
    cwd("getcwd after chdir");
    cat_at("read c.txt relative", AT_FDCWD, "c.txt", 0);
    result("fchdir data", fchdir(dfd));
    cwd("getcwd after fchdir");
    cat_at("read a.txt relative", AT_FDCWD, "a.txt", 0);
    result("chdir ..", chdir(".."));
    cwd("getcwd after chdir ..");
    char abs[4096];
    snprintf(abs, sizeof abs, "%s/data/sub", root);
    result("chdir absolute data/sub", chdir(abs));
    cwd("getcwd after absolute chdir");
    result("chdir root", chdir(root));

    char buf[4096];
    ssize_t n = readlinkat(dfd, "link", buf, sizeof buf - 1);
    printf("readlinkat link: %s\n", n < 0 ? errname(errno) : (buf[n] = 0, buf));
    n = readlinkat(AT_FDCWD, "out", buf, sizeof buf - 1);
    printf("readlinkat out: %s\n", n < 0 ? errname(errno) : (buf[n] = 0, buf));
    n = readlinkat(dfd, "a.txt", buf, sizeof buf - 1);
    printf("readlinkat a.txt: %s\n", n < 0 ? errname(errno) : (buf[n] = 0, buf));

    cat_at("open out (symlink leaving the view)", AT_FDCWD, "out", 0);
    cat_at("open outrel (relative symlink leaving the view)", AT_FDCWD, "outrel", 0);
    cat_at("open ../outside.txt", AT_FDCWD, "../outside.txt", 0);
    const char *base = strrchr(root, '/') + 1;
    snprintf(abs, sizeof abs, "../%s/top.txt", base);
    cat_at("open ../<root>/top.txt (leaves and re-enters)", AT_FDCWD, abs, 0);
    snprintf(abs, sizeof abs, "%s/../%s/data/./sub//c.txt", root, base);
    cat_at("open <root>/../<root>/data/./sub//c.txt", AT_FDCWD, abs, 0);
    snprintf(abs, sizeof abs, "../%s/top.txt", base);
    stat_at("stat ../<root>/top.txt", AT_FDCWD, abs, 0);
    stat_at("stat out", AT_FDCWD, "out", 0);
    stat_at("lstat out", AT_FDCWD, "out", AT_SYMLINK_NOFOLLOW);

    struct open_how how = {.flags = O_RDONLY, .resolve = RESOLVE_IN_ROOT};
    int rfd = syscall(SYS_openat2, dfd, "/sub/c.txt", &how, sizeof how);
    if (rfd < 0) {
        printf("openat2 RESOLVE_IN_ROOT: %s\n", errname(errno));
    } else {
        close(rfd);
        printf("openat2 RESOLVE_IN_ROOT: OK\n");
    }
    how.resolve = RESOLVE_BENEATH;
    rfd = syscall(SYS_openat2, dfd, "../top.txt", &how, sizeof how);
    printf("openat2 RESOLVE_BENEATH ..: %s\n", rfd < 0 ? errname(errno) : "OK");
    how.resolve = 0;
    rfd = syscall(SYS_openat2, dfd, "link", &how, sizeof how);
    struct stat rst;
    if (rfd < 0 || fstat(rfd, &rst) != 0)
        printf("openat2 link + fstat: %s\n", errname(errno));
    else
        printf("openat2 link + fstat: %c %o %lld\n", kind(rst.st_mode), rst.st_mode & 07777, (long long)rst.st_size);

    long rc = syscall(425, 1, NULL);
    printf("io_uring_setup: %s\n", rc == -1 ? errname(errno) : "succeeded");
    return 0;
}

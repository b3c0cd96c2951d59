/* writeops OP ARGS...: one file operation, its result printed as "OP: OK" or "OP: ERRNO"
 * (symbolic, from errname.h), for the write tests to compare with what Linux gives.
 *
 *   open-w PATH             open O_WRONLY|O_TRUNC; on success write "rewritten\n"
 *   excl PATH               open O_WRONLY|O_CREAT|O_EXCL, mode 0644
 *   rename FROM TO          rename(2)
 *   rmdir DIR               rmdir(2)
 *   write-read PATH TEXT    umask 022; open O_RDWR|O_CREAT|O_TRUNC 0666, write TEXT, then
 *                           print what fstat and stat say (size, mode, mtime in seconds),
 *                           what a second open of PATH reads in this process, and what a
 *                           forked child that opens PATH reads, all while the first fd is
 *                           still open; then close it
 *   append PATH TAG N       open O_WRONLY|O_APPEND|O_CREAT, then N lines "TAG nnnnnn\n",
 *                           each with one write(2)
 *   rename2 FROM TO FLAG    renameat2(2) with FLAG "noreplace" or "exchange"
 *   chmod-nofollow PATH MODE  fchmodat(AT_FDCWD, PATH, MODE, AT_SYMLINK_NOFOLLOW) (octal)
 *   fchmod PATH MODE        open PATH O_RDONLY (a file or a directory), fchmod(fd, MODE)
 *   pathstat PATH           open PATH O_PATH|O_NOFOLLOW, fstatat(fd, "", AT_EMPTY_PATH):
 *                           prints "pathstat: symlink|file|dir|other" or the errno
 *   create PATH MODE        umask 022; open O_WRONLY|O_CREAT|O_EXCL with MODE (octal),
 *                           write "created\n"
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errname.h"

static int report(const char *op, long rc) {
    printf("%s: %s\n", op, rc < 0 ? errname(errno) : "OK");
    fflush(stdout);
    return rc < 0 ? 1 : 0;
}

/* Read all of PATH (up to 4 KiB) into buf as a string; returns the length or -errno. */
static long slurp(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    long n = read(fd, buf, cap - 1);
    long e = errno;
    close(fd);
    if (n < 0)
        return -e;
    buf[n] = 0;
    return n;
}

static void print_stat(const char *what, const struct stat *st) {
    printf("%s: size=%lld mode=%o mtime=%lld\n", what, (long long)st->st_size,
           (unsigned)(st->st_mode & 07777), (long long)st->st_mtim.tv_sec);
}

static int write_read(const char *path, const char *text) {
    umask(022);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return report("open", -1);
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len)
        return report("write", -1);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return report("fstat", -1);
    print_stat("fstat", &st);
    if (stat(path, &st) < 0)
        return report("stat", -1);
    print_stat("stat", &st);
    char buf[4096];
    long n = slurp(path, buf, sizeof buf);
    if (n < 0) {
        errno = (int)-n;
        return report("same process", -1);
    }
    printf("same process: %s\n", buf);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        n = slurp(path, buf, sizeof buf);
        if (n < 0) {
            errno = (int)-n;
            report("child process", -1);
            _exit(1);
        }
        printf("child process: %s\n", buf);
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    close(fd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int append(const char *path, const char *tag, int n) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return report("append", -1);
    char line[64];
    for (int i = 0; i < n; i++) {
        int len = snprintf(line, sizeof line, "%s %06d\n", tag, i);
        if (write(fd, line, len) != len)
            return report("append write", -1);
    }
    close(fd);
    printf("append: %d lines\n", n);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: writeops OP ARGS...\n");
        return 2;
    }
    const char *op = argv[1];
    if (!strcmp(op, "open-w")) {
        int fd = open(argv[2], O_WRONLY | O_TRUNC);
        if (fd < 0)
            return report(op, -1);
        ssize_t w = write(fd, "rewritten\n", 10);
        close(fd);
        return report(op, w == 10 ? 0 : -1);
    }
    if (!strcmp(op, "excl"))
        return report(op, open(argv[2], O_WRONLY | O_CREAT | O_EXCL, 0644));
    if (!strcmp(op, "rename") && argc == 4)
        return report(op, rename(argv[2], argv[3]));
    if (!strcmp(op, "rename2") && argc == 5) {
        unsigned flags = !strcmp(argv[4], "exchange") ? RENAME_EXCHANGE : RENAME_NOREPLACE;
        return report(op, renameat2(AT_FDCWD, argv[2], AT_FDCWD, argv[3], flags));
    }
    if (!strcmp(op, "rmdir"))
        return report(op, rmdir(argv[2]));
    if (!strcmp(op, "write-read") && argc == 4)
        return write_read(argv[2], argv[3]);
    if (!strcmp(op, "append") && argc == 5)
        return append(argv[2], argv[3], atoi(argv[4]));
    if (!strcmp(op, "chmod-nofollow") && argc == 4)
        return report(op, fchmodat(AT_FDCWD, argv[2], strtol(argv[3], NULL, 8), AT_SYMLINK_NOFOLLOW));
    if (!strcmp(op, "fchmod") && argc == 4) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0)
            return report("open", -1);
        return report(op, fchmod(fd, strtol(argv[3], NULL, 8)));
    }
    if (!strcmp(op, "pathstat")) {
        int fd = open(argv[2], O_PATH | O_NOFOLLOW);
        if (fd < 0)
            return report("open O_PATH", -1);
        struct stat st;
        if (fstatat(fd, "", &st, AT_EMPTY_PATH) < 0)
            return report(op, -1);
        printf("%s: %s\n", op,
               S_ISLNK(st.st_mode) ? "symlink" : S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : "other");
        return 0;
    }
    if (!strcmp(op, "create") && argc == 4) {
        umask(022);
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_EXCL, strtol(argv[3], NULL, 8));
        if (fd < 0)
            return report(op, -1);
        ssize_t w = write(fd, "created\n", 8);
        close(fd);
        return report(op, w == 8 ? 0 : -1);
    }
    fprintf(stderr, "writeops: bad arguments\n");
    return 2;
}

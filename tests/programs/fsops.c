/* fsops OPS_FILE: the executor of the differential test (tests/tests/differential.rs). Reads
 * one file operation per line from OPS_FILE, runs it relative to the cwd, and prints one
 * result line per operation: "OK ..." with what the call returned (bytes written or read,
 * a content hash, stat fields) or the errno's symbolic name. Every operation opens and
 * closes its own descriptors, so each line depends only on the tree the earlier ones left.
 * The last line is "end"; after it, with the op "tree", one line per entry of the tree
 * (sorted by path).
 *
 *   open P FLAGS MODE WLEN SEED  open(2) with FLAGS (comma-separated: r w rw creat excl trunc
 *                                append dir nofollow); write WLEN pattern bytes if WLEN > 0,
 *                                then fstat, then read from offset 0 if readable
 *   pwrite P OFF LEN SEED        open O_WRONLY, pwrite LEN pattern bytes at OFF
 *   truncate P LEN               truncate(2)
 *   read P                       open O_RDONLY and read everything
 *   rename A B FLAG              renameat2(2) with FLAG 0, noreplace or exchange
 *   link A B | symlink T B | unlink P | rmdir P
 *   mkdir P MODE | chmod P MODE  (octal modes)
 *   utime P SEC | lutime P SEC   utimensat(2): mtime SEC.000000123, atime left alone;
 *                                lutime with AT_SYMLINK_NOFOLLOW
 *   stat P | lstat P             type, mode, size and nlink (dnlink for a directory), mtime
 *   readlink P | ls P            the target; the sorted names of a directory
 *   setxattr P NAME VALUE FLAG   setxattr(2) (lsetxattr: not following a symlink); VALUE "-"
 *                                is empty, FLAG 0, create or replace
 *   removexattr P NAME           removexattr(2) (lremovexattr)
 *   getxattr P NAME              getxattr(2) (lgetxattr): the size query, a buffer one byte
 *                                short (ERANGE), the value
 *   listxattr P                  listxattr(2) (llistxattr): the same, then the sorted user.*
 *                                names
 *   tree                         every entry under "." as "PATH stat-fields [h=HASH|->T]
 *                                [x=NAME=VALUE,...]" (its user.* xattrs), leaving out ".vrift"
 * Modes of new entries go through umask 022.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "errname.h"

static uint64_t fnv(const unsigned char *p, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void pattern(unsigned char *buf, long n, long seed) {
    for (long i = 0; i < n; i++)
        buf[i] = (unsigned char)('a' + (seed + i) % 26);
}

static const char *kind(mode_t m) {
    switch (m & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    case S_IFIFO: return "fifo";
    default: return "other";
    }
}

static void stat_fields(char *out, size_t cap, const struct stat *st) {
    if (S_ISDIR(st->st_mode))
        snprintf(out, cap, "%s mode=%o dnlink=%lu mtime=%lld.%09ld", kind(st->st_mode),
                 (unsigned)(st->st_mode & 07777), (unsigned long)st->st_nlink,
                 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
    else
        snprintf(out, cap, "%s mode=%o size=%lld nlink=%lu mtime=%lld.%09ld",
                 kind(st->st_mode), (unsigned)(st->st_mode & 07777),
                 (long long)st->st_size, (unsigned long)st->st_nlink,
                 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

/* Read fd to its end from offset 0; returns the byte count (or -errno) and the hash. */
static long read_all(int fd, uint64_t *h) {
    static unsigned char buf[65536];
    long total = 0;
    off_t off = 0;
    *h = 0xcbf29ce484222325ULL;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof buf, off);
        if (n < 0)
            return -errno;
        if (n == 0)
            return total;
        *h = fnv(buf, (size_t)n, *h);
        total += n;
        off += n;
    }
}

static int open_flags(const char *s) {
    int acc = O_RDONLY, f = 0;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", s);
    for (char *t = strtok(tmp, ","); t; t = strtok(NULL, ",")) {
        if (!strcmp(t, "r")) acc = O_RDONLY;
        else if (!strcmp(t, "w")) acc = O_WRONLY;
        else if (!strcmp(t, "rw")) acc = O_RDWR;
        else if (!strcmp(t, "creat")) f |= O_CREAT;
        else if (!strcmp(t, "excl")) f |= O_EXCL;
        else if (!strcmp(t, "trunc")) f |= O_TRUNC;
        else if (!strcmp(t, "append")) f |= O_APPEND;
        else if (!strcmp(t, "dir")) f |= O_DIRECTORY;
        else if (!strcmp(t, "nofollow")) f |= O_NOFOLLOW;
    }
    return acc | f;
}

#define FAIL() (printf("%s\n", errname(errno)))

static void op_open(const char *p, const char *flags_s, const char *mode_s, long wlen, long seed) {
    int flags = open_flags(flags_s);
    int fd = open(p, flags | O_CLOEXEC, (mode_t)strtol(mode_s, NULL, 8));
    if (fd < 0) {
        FAIL();
        return;
    }
    char line[512] = "OK";
    size_t at = 2;
    if (wlen > 0 && (flags & O_ACCMODE) != O_RDONLY) {
        unsigned char *buf = malloc((size_t)wlen);
        pattern(buf, wlen, seed);
        ssize_t n = write(fd, buf, (size_t)wlen);
        free(buf);
        if (n < 0)
            at += snprintf(line + at, sizeof line - at, " write=%s", errname(errno));
        else
            at += snprintf(line + at, sizeof line - at, " write=%zd", n);
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        at += snprintf(line + at, sizeof line - at, " fstat=%s", errname(errno));
    } else {
        char f[200];
        stat_fields(f, sizeof f, &st);
        at += snprintf(line + at, sizeof line - at, " fstat=[%s]", f);
        if ((flags & O_ACCMODE) != O_WRONLY && S_ISREG(st.st_mode)) {
            uint64_t h;
            long n = read_all(fd, &h);
            if (n < 0)
                at += snprintf(line + at, sizeof line - at, " read=%s", errname((int)-n));
            else
                at += snprintf(line + at, sizeof line - at, " read=%ld h=%016llx", n,
                               (unsigned long long)h);
        }
    }
    close(fd);
    printf("%s\n", line);
}

static void op_pwrite(const char *p, long off, long len, long seed) {
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        FAIL();
        return;
    }
    unsigned char *buf = malloc((size_t)len + 1);
    pattern(buf, len, seed);
    ssize_t n = pwrite(fd, buf, (size_t)len, off);
    int e = errno;
    free(buf);
    close(fd);
    if (n < 0)
        printf("pwrite=%s\n", errname(e));
    else
        printf("OK %zd\n", n);
}

static void op_read(const char *p) {
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        FAIL();
        return;
    }
    uint64_t h;
    long n = read_all(fd, &h);
    close(fd);
    if (n < 0)
        printf("read=%s\n", errname((int)-n));
    else
        printf("OK %ld h=%016llx\n", n, (unsigned long long)h);
}

static void op_stat(const char *p, int follow) {
    struct stat st;
    if ((follow ? stat(p, &st) : lstat(p, &st)) < 0) {
        FAIL();
        return;
    }
    char f[200];
    stat_fields(f, sizeof f, &st);
    printf("OK %s\n", f);
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names of directory p (without "." and ".."), or NULL with errno set. */
static char **names(const char *p, int *count) {
    DIR *d = opendir(p);
    if (!d)
        return NULL;
    int n = 0, cap = 16;
    char **v = malloc(sizeof(char *) * (size_t)cap);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n == cap)
            v = realloc(v, sizeof(char *) * (size_t)(cap *= 2));
        v[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(v, (size_t)n, sizeof(char *), cmp);
    *count = n;
    return v;
}

static void op_ls(const char *p) {
    int n;
    char **v = names(p, &n);
    if (!v) {
        FAIL();
        return;
    }
    printf("OK");
    for (int i = 0; i < n; i++) {
        printf(" %s", v[i]);
        free(v[i]);
    }
    printf("\n");
    free(v);
}

/* The user.* names of the NUL-separated `list` of `len` bytes, sorted, into `names`. */
static void user_names(const char *list, ssize_t len, char **names, int *count) {
    int c = 0;
    for (const char *s = list; s < list + len && c < 64; s += strlen(s) + 1)
        if (!strncmp(s, "user.", 5))
            names[c++] = (char *)s;
    qsort(names, (size_t)c, sizeof(char *), cmp);
    *count = c;
}

/* " x=NAME=VALUE,..." for the user.* xattrs of p (not following a symlink); "" for none. */
static void xattr_fields(char *out, size_t n, const char *p) {
    out[0] = 0;
    char list[4096];
    ssize_t k = llistxattr(p, list, sizeof list);
    char *names[64];
    int c = 0;
    if (k > 0)
        user_names(list, k, names, &c);
    size_t at = 0;
    for (int i = 0; i < c && at < n; i++) {
        char v[256];
        ssize_t m = lgetxattr(p, names[i], v, sizeof v - 1);
        v[m < 0 ? 0 : m] = 0;
        at += (size_t)snprintf(out + at, n - at, "%s%s=%s", i ? "," : " x=", names[i], v);
    }
}

static void op_getxattr(const char *p, const char *name, int nofollow) {
    ssize_t (*get)(const char *, const char *, void *, size_t) = nofollow ? lgetxattr : getxattr;
    ssize_t len = get(p, name, NULL, 0);
    if (len < 0) {
        FAIL();
        return;
    }
    char v[256];
    const char *small = "-";
    if (len > 0)
        small = get(p, name, v, (size_t)len - 1) < 0 ? errname(errno) : "fits";
    ssize_t k = get(p, name, v, sizeof v - 1);
    if (k < 0) {
        FAIL();
        return;
    }
    v[k] = 0;
    printf("OK len=%zd small=%s v=%s\n", len, small, v);
}

static void op_listxattr(const char *p, int nofollow) {
    ssize_t (*list)(const char *, char *, size_t) = nofollow ? llistxattr : listxattr;
    ssize_t len = list(p, NULL, 0);
    if (len < 0) {
        FAIL();
        return;
    }
    char buf[4096];
    const char *small = "-";
    if (len > 0)
        small = list(p, buf, (size_t)len - 1) < 0 ? errname(errno) : "fits";
    ssize_t k = list(p, buf, sizeof buf);
    if (k < 0) {
        FAIL();
        return;
    }
    char *names[64];
    int c;
    user_names(buf, k, names, &c);
    printf("OK listlen=%zd listsmall=%s", len, small);
    for (int i = 0; i < c; i++)
        printf("%s%s", i ? "," : " ", names[i]);
    printf("\n");
}

static void tree(const char *dir) {
    int n;
    char **v = names(dir, &n);
    if (!v) {
        printf("%s: %s\n", dir, errname(errno));
        return;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, v[i]);
        if (!strcmp(path, "./.vrift")) {
            free(v[i]);
            continue;
        }
        struct stat st;
        if (lstat(path, &st) < 0) {
            printf("%s %s\n", path, errname(errno));
        } else {
            char f[1200], x[1024];
            stat_fields(f, sizeof f, &st);
            xattr_fields(x, sizeof x, path);
            strncat(f, x, sizeof f - strlen(f) - 1);
            if (S_ISREG(st.st_mode)) {
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                uint64_t h = 0;
                long r = fd < 0 ? -errno : read_all(fd, &h);
                if (fd >= 0)
                    close(fd);
                if (r < 0)
                    printf("%s %s read=%s\n", path, f, errname((int)-r));
                else
                    printf("%s %s h=%016llx\n", path, f, (unsigned long long)h);
            } else if (S_ISLNK(st.st_mode)) {
                char t[4096];
                ssize_t k = readlink(path, t, sizeof t - 1);
                t[k < 0 ? 0 : k] = 0;
                printf("%s %s ->%s\n", path, f, t);
            } else {
                printf("%s %s\n", path, f);
            }
            if (S_ISDIR(st.st_mode))
                tree(path);
        }
        free(v[i]);
    }
    free(v);
}

static struct timespec mtime_of(const char *sec) {
    struct timespec ts = {.tv_sec = strtol(sec, NULL, 10), .tv_nsec = 123};
    return ts;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fsops OPS_FILE\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "r");
    if (!in) {
        perror(argv[1]);
        return 2;
    }
    umask(022);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    char line[8192];
    while (fgets(line, sizeof line, in)) {
        line[strcspn(line, "\n")] = 0;
        char *a[8] = {0};
        int n = 0;
        for (char *t = strtok(line, " "); t && n < 8; t = strtok(NULL, " "))
            a[n++] = t;
        if (n == 0)
            continue;
        const char *op = a[0];
        errno = 0;
        long rc = 0;
        if (!strcmp(op, "open") && n == 6) {
            op_open(a[1], a[2], a[3], strtol(a[4], NULL, 10), strtol(a[5], NULL, 10));
            continue;
        } else if (!strcmp(op, "pwrite") && n == 5) {
            op_pwrite(a[1], strtol(a[2], NULL, 10), strtol(a[3], NULL, 10),
                      strtol(a[4], NULL, 10));
            continue;
        } else if (!strcmp(op, "read") && n == 2) {
            op_read(a[1]);
            continue;
        } else if (!strcmp(op, "stat") && n == 2) {
            op_stat(a[1], 1);
            continue;
        } else if (!strcmp(op, "lstat") && n == 2) {
            op_stat(a[1], 0);
            continue;
        } else if (!strcmp(op, "ls") && n == 2) {
            op_ls(a[1]);
            continue;
        } else if (!strcmp(op, "readlink") && n == 2) {
            char t[4096];
            ssize_t k = readlink(a[1], t, sizeof t - 1);
            if (k < 0) {
                FAIL();
            } else {
                t[k] = 0;
                printf("OK %s\n", t);
            }
            continue;
        } else if ((!strcmp(op, "getxattr") || !strcmp(op, "lgetxattr")) && n == 3) {
            op_getxattr(a[1], a[2], op[0] == 'l');
            continue;
        } else if ((!strcmp(op, "listxattr") || !strcmp(op, "llistxattr")) && n == 2) {
            op_listxattr(a[1], op[0] == 'l');
            continue;
        } else if (!strcmp(op, "tree") && n == 1) {
            printf("end\n");
            tree(".");
            continue;
        } else if (!strcmp(op, "truncate") && n == 3) {
            rc = truncate(a[1], strtol(a[2], NULL, 10));
        } else if (!strcmp(op, "rename") && n == 4) {
            unsigned flags = !strcmp(a[3], "noreplace") ? RENAME_NOREPLACE
                             : !strcmp(a[3], "exchange") ? RENAME_EXCHANGE
                                                         : 0;
            rc = renameat2(AT_FDCWD, a[1], AT_FDCWD, a[2], flags);
        } else if (!strcmp(op, "link") && n == 3) {
            rc = link(a[1], a[2]);
        } else if (!strcmp(op, "symlink") && n == 3) {
            rc = symlink(a[1], a[2]);
        } else if (!strcmp(op, "unlink") && n == 2) {
            rc = unlink(a[1]);
        } else if (!strcmp(op, "rmdir") && n == 2) {
            rc = rmdir(a[1]);
        } else if (!strcmp(op, "mkdir") && n == 3) {
            rc = mkdir(a[1], (mode_t)strtol(a[2], NULL, 8));
        } else if (!strcmp(op, "chmod") && n == 3) {
            rc = chmod(a[1], (mode_t)strtol(a[2], NULL, 8));
        } else if ((!strcmp(op, "setxattr") || !strcmp(op, "lsetxattr")) && n == 5) {
            const char *v = strcmp(a[3], "-") ? a[3] : "";
            int fl = !strcmp(a[4], "create")    ? XATTR_CREATE
                     : !strcmp(a[4], "replace") ? XATTR_REPLACE
                                                : 0;
            rc = (op[0] == 'l' ? lsetxattr : setxattr)(a[1], a[2], v, strlen(v), fl);
        } else if ((!strcmp(op, "removexattr") || !strcmp(op, "lremovexattr")) && n == 3) {
            rc = (op[0] == 'l' ? lremovexattr : removexattr)(a[1], a[2]);
        } else if ((!strcmp(op, "utime") || !strcmp(op, "lutime")) && n == 3) {
            struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, mtime_of(a[2])};
            rc = utimensat(AT_FDCWD, a[1], ts, op[0] == 'l' ? AT_SYMLINK_NOFOLLOW : 0);
        } else {
            printf("bad op\n");
            continue;
        }
        if (rc < 0)
            FAIL();
        else
            printf("OK\n");
    }
    fflush(stdout);
    return 0;
}

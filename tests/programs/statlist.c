/* For each path argument, one line: its lstat (inode, links, owner, size, mode, times),
 * its extended attributes (llistxattr, then lgetxattr of each), and for a regular file the
 * fstat of a descriptor opened on it. Built statically (the supervisor answers it) and
 * dynamically (the shim answers it) to compare what the two sides of shim+supervisor say. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static void print_stat(const char *tag, const struct stat *st) {
    printf(" %sino=%lu %snlink=%lu %suid=%u %sgid=%u %ssize=%lld %smode=%o %smtime=%lld.%09ld "
           "%sctime=%lld.%09ld",
           tag, (unsigned long)st->st_ino, tag, (unsigned long)st->st_nlink, tag, st->st_uid,
           tag, st->st_gid, tag, (long long)st->st_size, tag, st->st_mode, tag,
           (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, tag,
           (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *p = argv[i];
        struct stat st;
        printf("%s", p);
        if (lstat(p, &st) != 0) {
            printf(" lstat=%m\n");
            continue;
        }
        print_stat("", &st);
        char names[4096];
        ssize_t n = llistxattr(p, names, sizeof names);
        if (n < 0)
            printf(" xattrs=%m");
        for (ssize_t k = 0; n > 0 && k < n; k += (ssize_t)strlen(names + k) + 1) {
            char v[1024];
            ssize_t m = lgetxattr(p, names + k, v, sizeof v - 1);
            if (m < 0) {
                printf(" %s=(%m)", names + k);
            } else {
                v[m] = 0;
                printf(" %s=%s", names + k, v);
            }
        }
        if (S_ISREG(st.st_mode)) {
            int fd = open(p, O_RDONLY);
            struct stat fs;
            if (fd < 0 || fstat(fd, &fs) != 0)
                printf(" open=%m");
            else
                print_stat("f", &fs);
            if (fd >= 0)
                close(fd);
        }
        printf("\n");
    }
    return 0;
}

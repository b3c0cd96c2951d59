/* probe PATH...: for each path, what stat/lstat/open/read/fstat saw.
 * One line per path: "PATH KIND MODE SIZE FNV" where KIND is f, d or l (from lstat), MODE
 * the octal permission bits and SIZE the size from stat (following symlinks), and FNV the
 * FNV-1a-64 of the bytes read (files) or "-". A line "PATH error ERRNO" when a call fails.
 * fstat on the open fd must agree with stat, and read must return exactly SIZE bytes. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errname.h"

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int main(int argc, char **argv) {
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *p = argv[i];
        struct stat ls, st, fs;
        if (lstat(p, &ls) != 0 || stat(p, &st) != 0) {
            printf("%s error %s\n", p, errname(errno));
            continue;
        }
        char kind = S_ISLNK(ls.st_mode) ? 'l' : S_ISDIR(ls.st_mode) ? 'd' : 'f';
        if (S_ISDIR(st.st_mode)) {
            printf("%s %c %o %lld -\n", p, kind, st.st_mode & 07777, (long long)st.st_size);
            continue;
        }
        int fd = open(p, O_RDONLY);
        if (fd < 0) {
            printf("%s error %s\n", p, errname(errno));
            continue;
        }
        if (fstat(fd, &fs) != 0 || fs.st_size != st.st_size || fs.st_mode != st.st_mode) {
            printf("%s fstat-disagrees %lld %o\n", p, (long long)fs.st_size, fs.st_mode & 07777);
            bad = 1;
        }
        unsigned char buf[65536];
        uint64_t h = 0xcbf29ce484222325ULL;
        long long total = 0;
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) {
            h = fnv(h, buf, (size_t)n);
            total += n;
        }
        close(fd);
        if (n < 0 || total != (long long)st.st_size) {
            printf("%s read-disagrees %lld\n", p, total);
            bad = 1;
        }
        printf("%s %c %o %lld %016llx\n", p, kind, st.st_mode & 07777, (long long)st.st_size,
               (unsigned long long)h);
    }
    return bad;
}

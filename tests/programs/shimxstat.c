/* shimxstat PATH: call glibc's pre-2.33 __xstat (found with dlsym, as an old binary's
 * reference would be bound) and print "size MODE" in octal, or "none" when this libc has no
 * __xstat to find. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int (*xstat)(int, const char *, struct stat *) = (int (*)(int, const char *, struct stat *))dlsym(RTLD_DEFAULT, "__xstat");
    if (!xstat) { printf("none\n"); return 0; }
    struct stat st;
    if (xstat(1, argv[1], &st) != 0) { printf("error %s\n", strerror(errno)); return 1; }
    printf("%lld %o\n", (long long)st.st_size, (unsigned)(st.st_mode & 07777));
    return 0;
}

/* shimfortify DIR FLAGS: built with -D_FORTIFY_SOURCE=2 -O2, so open() with flags the
 * compiler cannot see becomes __open_2, readlink into a sized buffer __readlink_chk,
 * realpath __realpath_chk and getcwd __getcwd_chk. Prints, one per line: the size and bytes
 * of DIR/a.txt (read through the fd), the target of DIR/link, the realpath of DIR/link, and
 * the cwd after chdir(DIR/sub). */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/a.txt", argv[1]);
    int fd = open(p, atoi(argv[2]));
    if (fd < 0) { perror("open"); return 1; }
    struct stat st;
    if (fstat(fd, &st) != 0) { perror("fstat"); return 1; }
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) { perror("read"); return 1; }
    buf[n] = 0;
    printf("size %lld read %s", (long long)st.st_size, buf);
    close(fd);
    /* Sizes the compiler cannot see, so FORTIFY checks them at run time (the _chk forms). */
    size_t room = 40 + strlen(argv[2]);
    char t[64];
    snprintf(p, sizeof p, "%s/link", argv[1]);
    ssize_t k = readlink(p, t, room);
    if (k < 0) { perror("readlink"); return 1; }
    t[k] = 0;
    printf("link %s\n", t);
    char r[PATH_MAX];
    if (!realpath(p, r)) { perror("realpath"); return 1; }
    printf("realpath %s\n", r);
    snprintf(p, sizeof p, "%s/sub", argv[1]);
    if (chdir(p) != 0) { perror("chdir"); return 1; }
    char c[PATH_MAX];
    if (!getcwd(c, room * 50)) { perror("getcwd"); return 1; }
    printf("cwd %s\n", c);
    return 0;
}

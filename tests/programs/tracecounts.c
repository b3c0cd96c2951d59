/* tracecounts OUTSIDE_FILE: a known number of each kind of file syscall, for vrift trace's
 * exact-count test: 1000 stats of view files, 500 stats of missing view paths, 250
 * open+close of a file outside the view. Prints nothing (printing would stat stdout). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    char p[64];
    struct stat st;
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(p, sizeof p, "data/f%d", i % 10);
        if (stat(p, &st) != 0) bad++;
    }
    for (int i = 0; i < 500; i++) {
        snprintf(p, sizeof p, "data/missing%d", i);
        if (stat(p, &st) == 0) bad++;
    }
    for (int i = 0; i < 250; i++) {
        int fd = open(argv[1], O_RDONLY);
        if (fd < 0) bad++;
        else close(fd);
    }
    return bad ? 1 : 0;
}

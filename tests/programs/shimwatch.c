/* shimwatch DIR READY GO DONE: one long-lived process that sees another's changes. Prints
 * the names in DIR, writes to the FIFO READY, then blocks reading the FIFO GO (another process of the run writes to it
 * after changing DIR), then prints DIR's names again and the size of DIR/new.txt from stat,
 * and writes to the FIFO DONE. Names are printed sorted, one line per listing. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { perror("opendir"); exit(1); }
    char *names[1024];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 1024)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    printf("list");
    for (int i = 0; i < n; i++) printf(" %s", names[i]);
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 5) return 2;
    list(argv[1]);
    int ready = open(argv[2], O_WRONLY);
    if (ready < 0 || write(ready, "x", 1) != 1) { perror("ready"); return 1; }
    close(ready);
    char buf[8];
    int go = open(argv[3], O_RDONLY);
    if (go < 0 || read(go, buf, sizeof buf) <= 0) { perror("go"); return 1; }
    list(argv[1]);
    char p[4096];
    snprintf(p, sizeof p, "%s/new.txt", argv[1]);
    struct stat st;
    if (stat(p, &st) != 0) { perror("stat"); return 1; }
    printf("size %lld\n", (long long)st.st_size);
    fflush(stdout);
    int done = open(argv[4], O_WRONLY);
    if (done < 0 || write(done, "x", 1) != 1) { perror("done"); return 1; }
    return 0;
}

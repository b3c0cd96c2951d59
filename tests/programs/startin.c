/* startin DIR PROGRAM ARGS...: run PROGRAM with DIR as its working directory, set in the
 * child between fork and exec the ways runtimes do it, which no libc chdir wrapper sees:
 * "raw": fork, the chdir system call itself, then execv (Go's StartProcess with Dir);
 * "spawn": posix_spawn with a chdir file action (Rust's Command::current_dir).
 * Prints "ROUTE: exit N" after each child ends (the child's own output comes first). */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errname.h"

extern char **environ;

static void report(const char *route, pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid) {
        printf("%s: waitpid %s\n", route, errname(errno));
        return;
    }
    printf("%s: exit %d\n", route, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: startin DIR PROGRAM ARGS...\n");
        return 2;
    }
    const char *dir = argv[1];
    char **child = argv + 2;
    fflush(stdout);

    pid_t pid = fork();
    if (pid == 0) {
        if (syscall(SYS_chdir, dir) != 0) {
            printf("raw: chdir %s\n", errname(errno));
            _exit(1);
        }
        execv(child[0], child);
        printf("raw: exec %s\n", errname(errno));
        _exit(127);
    }
    report("raw", pid);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addchdir_np(&fa, dir);
    int e = posix_spawn(&pid, child[0], &fa, NULL, child, environ);
    if (e != 0) {
        printf("spawn: %s\n", errname(e));
        return 1;
    }
    report("spawn", pid);
    return 0;
}

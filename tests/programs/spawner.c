/* spawner PROGRAM ARGS...: run PROGRAM (which may exist only in the view) through every
 * process-creation route: fork+execv, vfork+execv, clone(CLONE_VM|CLONE_VFORK)+execv,
 * posix_spawn, and fork+execv from a second thread. Prints "ROUTE: exit N" after each
 * child ends (the child's own output comes first). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errname.h"

extern char **environ;
static char **child_argv;

static void report(const char *route, pid_t pid) {
    int st;
    if (pid < 0) {
        printf("%s: spawn failed %s\n", route, errname(errno));
        return;
    }
    if (waitpid(pid, &st, __WALL) != pid) {
        printf("%s: waitpid %s\n", route, errname(errno));
        return;
    }
    if (WIFEXITED(st))
        printf("%s: exit %d\n", route, WEXITSTATUS(st));
    else
        printf("%s: signal %d\n", route, WTERMSIG(st));
    fflush(stdout);
}

static int clone_child(void *arg) {
    (void)arg;
    execv(child_argv[0], child_argv);
    _exit(126);
}

static void *thread_main(void *arg) {
    (void)arg;
    pid_t pid = fork();
    if (pid == 0) {
        execv(child_argv[0], child_argv);
        _exit(126);
    }
    report("thread fork+execv", pid);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: spawner PROGRAM ARGS...\n");
        return 2;
    }
    child_argv = argv + 1;
    fflush(stdout);

    pid_t pid = fork();
    if (pid == 0) {
        execv(child_argv[0], child_argv);
        _exit(126);
    }
    report("fork+execv", pid);

    pid = vfork();
    if (pid == 0) {
        execv(child_argv[0], child_argv);
        _exit(126);
    }
    report("vfork+execv", pid);

    size_t stack_size = 1 << 16;
    char *stack = malloc(stack_size);
    pid = clone(clone_child, stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
    report("clone(CLONE_VM|CLONE_VFORK)+execv", pid);
    free(stack);

    int rc = posix_spawn(&pid, child_argv[0], NULL, NULL, child_argv, environ);
    report("posix_spawn", rc == 0 ? pid : (errno = rc, -1));

    rc = posix_spawnp(&pid, "tool", NULL, NULL, child_argv, environ);
    report("posix_spawnp via PATH", rc == 0 ? pid : (errno = rc, -1));

    pthread_t t;
    pthread_create(&t, NULL, thread_main, NULL);
    pthread_join(t, NULL);
    return 0;
}

/* spawn.c - start-up cost of a traced process without fork handlers:
 * posix_spawn (clone(CLONE_VM|CLONE_VFORK) in glibc) PATH N times and wait
 * for each. Usage: spawn N PATH. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: spawn N PATH\n");
        return 2;
    }
    int n = atoi(argv[1]);
    for (int i = 0; i < n; i++) {
        pid_t pid;
        char *args[] = {argv[2], NULL};
        if (posix_spawn(&pid, argv[2], NULL, NULL, args, environ) != 0) return 1;
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return 1;
    }
    return 0;
}

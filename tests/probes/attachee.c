/* attachee.c - a program for `leakscope attach` tests: it runs until told
 * to stop and does exactly what its stdin says, so the test knows the truth.
 * Built without frame pointers (as distributions build programs) so the
 * call sites must come from DWARF unwinding.
 *
 * Commands (one a line; "ok" on stdout after each):
 *   open N      open N files (held)       close N   close N of them
 *   pipe N      N pipes (held, 2 fds)     sock N    N TCP sockets (held)
 *   malloc N S  N blocks of S bytes held  free N    free N of them
 *   churn N     N malloc/free pairs (nothing held)
 *   quit
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_HELD 100000
static int fds[MAX_HELD];
static int nfds;
static void *blocks[MAX_HELD];
static int nblocks;

__attribute__((noinline)) static void attachee_open_files(int n) {
    for (int i = 0; i < n && nfds < MAX_HELD; i++) fds[nfds++] = open("/etc/hostname", O_RDONLY);
}

__attribute__((noinline)) static void attachee_make_pipes(int n) {
    for (int i = 0; i < n && nfds + 2 <= MAX_HELD; i++) {
        int p[2];
        if (pipe(p) == 0) {
            fds[nfds++] = p[0];
            fds[nfds++] = p[1];
        }
    }
}

__attribute__((noinline)) static void attachee_make_sockets(int n) {
    for (int i = 0; i < n && nfds < MAX_HELD; i++) fds[nfds++] = socket(AF_INET, SOCK_STREAM, 0);
}

__attribute__((noinline)) static void attachee_close(int n) {
    for (int i = 0; i < n && nfds > 0; i++) close(fds[--nfds]);
}

__attribute__((noinline)) static void attachee_alloc_blocks(int n, size_t size) {
    for (int i = 0; i < n && nblocks < MAX_HELD; i++) {
        blocks[nblocks] = malloc(size);
        memset(blocks[nblocks], 1, size);
        nblocks++;
    }
}

__attribute__((noinline)) static void attachee_free_blocks(int n) {
    for (int i = 0; i < n && nblocks > 0; i++) free(blocks[--nblocks]);
}

__attribute__((noinline)) static void attachee_churn(int n) {
    for (int i = 0; i < n; i++) {
        void *volatile p = malloc(64);
        free(p);
    }
}

int main(void) {
    char line[128];
    setvbuf(stdout, NULL, _IOLBF, 0);
    attachee_alloc_blocks(10, 100); /* before any attach: unknown to attach */
    printf("ready %d\n", (int)getpid());
    while (fgets(line, sizeof line, stdin)) {
        char cmd[16];
        long n = 0, size = 0;
        if (sscanf(line, "%15s %ld %ld", cmd, &n, &size) < 1) continue;
        if (strcmp(cmd, "open") == 0) attachee_open_files((int)n);
        else if (strcmp(cmd, "close") == 0) attachee_close((int)n);
        else if (strcmp(cmd, "pipe") == 0) attachee_make_pipes((int)n);
        else if (strcmp(cmd, "sock") == 0) attachee_make_sockets((int)n);
        else if (strcmp(cmd, "malloc") == 0) attachee_alloc_blocks((int)n, (size_t)size);
        else if (strcmp(cmd, "free") == 0) attachee_free_blocks((int)n);
        else if (strcmp(cmd, "churn") == 0) attachee_churn((int)n);
        else if (strcmp(cmd, "quit") == 0) break;
        printf("ok\n");
    }
    return 0;
}

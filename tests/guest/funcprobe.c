/* funcprobe - call sites a user reads in the report, and stacks by the
 * million. Linked the usual way (no -rdynamic), so its functions are in
 * .symtab only.
 *
 *   funcprobe func        http_read_page() (static) keeps 3 files open and
 *                         3 x 1000 bytes allocated
 *   funcprobe churn N     N open/close and malloc/free pairs through 65536
 *                         distinct 16-deep stacks (nothing stays live), then
 *                         late_leak() keeps 5 files and 5 x 777 bytes
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *g_keep[16]; /* read by nobody, but not static: the allocations must happen */
int g_nkeep;

static __attribute__((noinline)) int http_read_page(int i) {
    int fd = open("/dev/null", O_RDONLY);
    g_keep[g_nkeep++] = malloc(1000);
    return fd + i * 0;
}

static volatile unsigned g_sink;

/* Two functions per level: the bits of `path` choose the stack. */
static __attribute__((noinline)) void churn_leaf(unsigned path) {
    int fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) close(fd);
    void *p = malloc(32 + (path & 255));
    g_sink += (unsigned)(uintptr_t)p & 1;
    free(p);
}
static void level_a(unsigned path, int depth);
static __attribute__((noinline)) void level_b(unsigned path, int depth) {
    if (depth == 0) churn_leaf(path);
    else if (path & 1) level_b(path >> 1, depth - 1);
    else level_a(path >> 1, depth - 1);
    g_sink++;
}
static __attribute__((noinline)) void level_a(unsigned path, int depth) {
    if (depth == 0) churn_leaf(path);
    else if (path & 1) level_b(path >> 1, depth - 1);
    else level_a(path >> 1, depth - 1);
    g_sink++;
}

static __attribute__((noinline)) int late_leak(int i) {
    int fd = open("/dev/null", O_RDONLY);
    g_keep[g_nkeep++] = malloc(777);
    return fd + i * 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "func")) {
        for (int i = 0; i < 3; i++)
            if (http_read_page(i) < 0) return 1;
        printf("func ok\n");
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "churn")) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) level_a((unsigned)(i * 2654435761u) & 0xffff, 16);
        for (int i = 0; i < 5; i++)
            if (late_leak(i) < 0) return 1;
        printf("churn ok\n");
        return 0;
    }
    fprintf(stderr, "usage: funcprobe func | churn N\n");
    return 2;
}

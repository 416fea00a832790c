/* attachbench.c - workloads for measuring tracers that attach to a running
 * process (leakscope attach, bpftrace, bcc): it starts, prints "ready PID",
 * waits for a line on stdin so the tracer can attach first, runs, prints
 * nanoseconds per operation timed inside the process, and exits.
 *   attachbench file N   N open+close pairs of a file, through two call levels
 *   attachbench heap N   N operations on a 100k-pointer working set, each
 *                        replacing a random block of 16..4096 bytes (malloc,
 *                        calloc or realloc, as heapbench does), then frees all
 * Built without frame pointers, like a distribution's programs.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((noinline)) static int open_config(const char *path) { return open(path, O_RDONLY); }

__attribute__((noinline)) static void file_pairs(const char *path, long n) {
    for (long i = 0; i < n; i++) {
        int fd = open_config(path);
        if (fd < 0) exit(1);
        close(fd);
    }
}

__attribute__((noinline)) static void *alloc_block(size_t size, unsigned how) {
    switch (how & 3) {
    case 2: return calloc(1, size);
    case 3: return realloc(NULL, size);
    default: return malloc(size);
    }
}

#define WORKING_SET 100000
__attribute__((noinline)) static uint64_t heap_ops(long n) {
    void **ws = calloc(WORKING_SET, sizeof(void *));
    uint64_t seed = 88172645463325252ull, sum = 0;
    for (long i = 0; i < n; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        size_t slot = seed % WORKING_SET, size = 16 + (seed >> 20) % 4081;
        free(ws[slot]);
        ws[slot] = alloc_block(size, (unsigned)(seed >> 40));
        ((char *)ws[slot])[0] = (char)i;
        sum += (uintptr_t)ws[slot] & 0xff;
    }
    for (size_t i = 0; i < WORKING_SET; i++) free(ws[i]);
    free(ws);
    return sum;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: attachbench file|heap N\n");
        return 2;
    }
    long n = atol(argv[2]);
    char path[] = "/tmp/attachbench-XXXXXX";
    int tmp = mkstemp(path);
    if (tmp < 0) return 1;
    close(tmp);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin)) return 1;
    double t = now();
    uint64_t sum = 0;
    if (strcmp(argv[1], "file") == 0) file_pairs(path, n);
    else sum = heap_ops(n);
    double ns = (now() - t) * 1e9 / (double)n;
    unlink(path);
    printf("%s %.1f %llu\n", argv[1], ns, (unsigned long long)(sum & 1));
    return 0;
}

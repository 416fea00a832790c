/* fdbench.c - descriptor churn for measuring a tracer's cost: open+close of
 * a file, socket+connect+close to a loopback listener, pipe2+close. Prints
 * nanoseconds per pair for each workload, timed inside the process so that
 * start-up costs (valgrind's, the shim's) are not counted. Each pair is made
 * 8 frames deep (issue 8), so a tracer's stack capture does real work. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Calls op(arg) depth frames below the caller (no tail calls). */
__attribute__((noinline)) static void deep(int depth, void (*op)(const void *), const void *arg) {
    if (depth > 1) deep(depth - 1, op, arg);
    else op(arg);
    __asm__ volatile("" ::: "memory");
}
#define DEPTH 8

static void file_once(const void *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) exit(1);
    close(fd);
}

__attribute__((noinline)) static void bench_file(const char *path, long n) {
    for (long i = 0; i < n; i++) deep(DEPTH, file_once, path);
}

/* Closed with an RST (linger 0): no TIME_WAIT pile-up, so the kernel's
 * ephemeral-port search does not dominate what is measured. */
static void socket_once(const void *arg) {
    const struct sockaddr_in *a = arg;
    struct linger lg = {1, 0};
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (const struct sockaddr *)a, sizeof *a) != 0) exit(2);
    setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(s);
}

__attribute__((noinline)) static void bench_socket(const struct sockaddr_in *a, long n) {
    for (long i = 0; i < n; i++) deep(DEPTH, socket_once, a);
}

static void pipe_once(const void *arg) {
    (void)arg;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) exit(3);
    close(p[0]);
    close(p[1]);
}

__attribute__((noinline)) static void bench_pipe(long n) {
    for (long i = 0; i < n; i++) deep(DEPTH, pipe_once, NULL);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 200000;
    const char *which = argc > 2 ? argv[2] : "file,socket,pipe";
    char path[] = "/tmp/fdbench-XXXXXX";
    int tmp = mkstemp(path);
    if (tmp < 0) return 1;
    close(tmp);

    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(l, (struct sockaddr *)&a, len) != 0 || listen(l, 4096) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) != 0)
        return 1;

    if (strstr(which, "file")) {
        bench_file(path, n / 10); /* warm up: page cache, call sites */
        double t = now();
        bench_file(path, n);
        printf("file %.1f\n", (now() - t) * 1e9 / n);
    }
    if (strstr(which, "socket")) {
        /* The listener's backlog fills; accept in between to drain it. */
        long done = 0, batch = 1000;
        double total = 0;
        while (done < n) {
            double t = now();
            bench_socket(&a, batch);
            total += now() - t;
            for (long i = 0; i < batch; i++) close(accept(l, NULL, NULL));
            done += batch;
        }
        printf("socket %.1f\n", total * 1e9 / done);
    }
    if (strstr(which, "pipe")) {
        bench_pipe(n / 10);
        double t = now();
        bench_pipe(n);
        printf("pipe %.1f\n", (now() - t) * 1e9 / n);
    }
    unlink(path);
    return 0;
}

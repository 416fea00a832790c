/* sigprobe - a program that does the things a guest shim must survive:
 * descriptors and allocations made inside signal handlers running on a small
 * sigaltstack, a fast interval timer whose handler opens files, deep
 * recursion, small thread stacks. Each mode prints one line of truth and
 * exits 0; a crash or a hang is the shim's fault.
 *
 *   sigprobe altstack N     N handler runs on an 8 KiB sigaltstack, each
 *                           open()+close() and malloc()+free()
 *   sigprobe timer N        50 us ITIMER_REAL; handler opens/closes; main
 *                           waits for N handler runs (livelock = hang)
 *   sigprobe recurse DEPTH  opens a file at the bottom of a recursion
 *   sigprobe smallthread N  N threads with a 16 KiB stack each open a file
 *   sigprobe cost N         prints the mean time of a handler run (open +
 *                           close on the main stack), N raise()s; for bench
 *   sigprobe deep N         N threads recurse until under 3 KiB of their
 *                           stack is left, then open a file and allocate
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_runs, g_failed;

static void handler(int sig) {
    (void)sig;
    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0) g_failed++;
    else close(fd);
    g_runs++;
}

static void handler_alloc(int sig) {
    handler(sig);
    void *p = malloc(100 + (size_t)g_runs % 200);
    if (!p) g_failed++;
    free(p);
}

static int mode_altstack(int n) {
    static char alt[8192];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler_alloc;
    sa.sa_flags = SA_ONSTACK | SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    for (int i = 0; i < n; i++) raise(SIGUSR1);
    printf("altstack runs=%d failed=%d\n", (int)g_runs, (int)g_failed);
    return 0;
}

static int mode_timer(int n) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 50}, {0, 50}};
    setitimer(ITIMER_REAL, &it, NULL);
    volatile unsigned long spin = 0;
    while (g_runs < n) spin++;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("timer runs>=%d failed=%d\n", n, (int)g_failed);
    return 0;
}

static __attribute__((noinline)) int recurse(int depth) {
    volatile char pad[256];
    pad[0] = (char)depth;
    if (depth == 0) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0) return 1;
        close(fd);
        return pad[0];
    }
    return recurse(depth - 1) + pad[0] * 0;
}

static void *small_thread(void *arg) {
    (void)arg;
    int fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) close(fd);
    void *p = malloc(64);
    free(p);
    return fd >= 0 ? NULL : (void *)1;
}

static int mode_smallthread(int n) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        pthread_attr_t a;
        pthread_t t;
        void *ret;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, 16384);
        if (pthread_create(&t, &a, small_thread, NULL) != 0) return 2;
        pthread_join(t, &ret);
        bad += ret != NULL;
        pthread_attr_destroy(&a);
    }
    printf("smallthread n=%d failed=%d\n", n, bad);
    return 0;
}

static char *g_stack_lo;

static __attribute__((noinline)) int dive(void) {
    volatile char pad[128];
    pad[0] = 1;
    if ((char *)pad - g_stack_lo > 4096) return dive() + pad[0] * 0;
    int r = small_thread(NULL) != NULL;
    return r + pad[0] * 0;
}

static void *deep_thread(void *arg) {
    (void)arg;
    pthread_attr_t a;
    void *lo;
    size_t size;
    pthread_getattr_np(pthread_self(), &a);
    pthread_attr_getstack(&a, &lo, &size);
    pthread_attr_destroy(&a);
    g_stack_lo = lo;
    return dive() ? (void *)1 : NULL;
}

static int mode_deep(int n) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        pthread_attr_t a;
        pthread_t t;
        void *ret;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, 256 << 10);
        if (pthread_create(&t, &a, deep_thread, NULL) != 0) return 2;
        pthread_join(t, &ret);
        bad += ret != NULL;
        pthread_attr_destroy(&a);
    }
    printf("deep n=%d failed=%d\n", n, bad);
    return 0;
}

static int mode_cost(int n) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigaction(SIGUSR1, &sa, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) raise(SIGUSR1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("cost runs=%d failed=%d us_per_run=%.2f\n", (int)g_runs, (int)g_failed, ns / n / 1000);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: sigprobe altstack|timer|recurse|smallthread N\n");
        return 2;
    }
    int n = atoi(argv[2]);
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(argv[1], "altstack")) return mode_altstack(n);
    if (!strcmp(argv[1], "timer")) return mode_timer(n);
    if (!strcmp(argv[1], "smallthread")) return mode_smallthread(n);
    if (!strcmp(argv[1], "deep")) return mode_deep(n);
    if (!strcmp(argv[1], "cost")) return mode_cost(n);
    if (!strcmp(argv[1], "recurse")) {
        printf("recurse depth=%d result=%d\n", n, recurse(n) != 0);
        return 0;
    }
    return 2;
}

/* heapprobe.c - a program that does one known thing to the heap per mode, so
 * the tests can hold memtrack's counts against the truth. Allocations meant
 * for the frontier subsystem come from frontier_* functions (func rule);
 * those for "testlib" from libheapprobe_lib.so (module rule). Functions that
 * allocate for a subsystem call nothing else that allocates.
 *
 * Each mode prints what it knows: `SUBSYS live_bytes live_allocs allocs
 * frees alloc_bytes`, so the test compares the segment to the byte.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "leakscope/memtrack.h"

void **heapprobe_lib_leak(int n, size_t size);
extern void *__libc_malloc(size_t);

struct truth {
    long long live_bytes, live_allocs, allocs, frees, alloc_bytes;
};
static struct truth frontier, testlib;
static void *volatile sink; /* leaked blocks go here, so nothing warns */
void *leaked_blocks[64];

static void got(struct truth *t, size_t size) {
    t->live_bytes += (long long)size;
    t->live_allocs++;
    t->allocs++;
    t->alloc_bytes += (long long)size;
}

static void lost(struct truth *t, size_t size) {
    t->live_bytes -= (long long)size;
    t->live_allocs--;
    t->frees++;
}

static void print_truth(void) {
    printf("frontier %lld %lld %lld %lld %lld\n", frontier.live_bytes, frontier.live_allocs,
           frontier.allocs, frontier.frees, frontier.alloc_bytes);
    printf("testlib %lld %lld %lld %lld %lld\n", testlib.live_bytes, testlib.live_allocs,
           testlib.allocs, testlib.frees, testlib.alloc_bytes);
}

/* Every allocator entry point, some blocks freed, a realloc chain. */
__attribute__((noinline)) void frontier_every_allocator(void) {
    void **keep = leaked_blocks;
    int k = 0;
    for (int i = 0; i < 10; i++) {
        keep[k++] = malloc(1000);
        got(&frontier, 1000);
    }
    for (int i = 0; i < 5; i++) {
        keep[k++] = calloc(10, 100);
        got(&frontier, 1000);
    }
    void *tmp[8];
    for (int i = 0; i < 8; i++) {
        tmp[i] = malloc(64);
        got(&frontier, 64);
    }
    for (int i = 0; i < 8; i += 2) {
        free(tmp[i]);
        lost(&frontier, 64);
    }
    void *p = realloc(NULL, 100);
    got(&frontier, 100);
    p = realloc(p, 5000);
    lost(&frontier, 100);
    got(&frontier, 5000);
    p = realloc(p, 300);
    lost(&frontier, 5000);
    got(&frontier, 300);
    keep[k++] = p;
    p = reallocarray(NULL, 10, 20);
    got(&frontier, 200);
    keep[k++] = p;
    if (posix_memalign(&p, 64, 4096) != 0) exit(20);
    got(&frontier, 4096);
    keep[k++] = p;
    keep[k++] = aligned_alloc(256, 512);
    got(&frontier, 512);
    keep[k++] = memalign(128, 1000);
    got(&frontier, 1000);
    keep[k++] = valloc(10000);
    got(&frontier, 10000);
    keep[k++] = pvalloc(100);
    got(&frontier, 100);
    p = malloc(77);
    got(&frontier, 77);
    p = realloc(p, 0); /* glibc: frees, returns NULL */
    lost(&frontier, 77);
    if (p) exit(21);
}

static void mode_leak(void) {
    frontier_every_allocator();
    void **v = heapprobe_lib_leak(20, 333);
    got(&testlib, sizeof(void *) * 20);
    for (int i = 0; i < 20; i++) got(&testlib, 333);
    for (int i = 0; i < 20; i += 4) {
        free(v[i]);
        lost(&testlib, 333);
    }
    print_truth();
}

/* 16 threads: each allocates and frees its own blocks and its neighbour's,
 * and leaks a known amount from a frontier_* function. */
#define STORM_THREADS 16
#define STORM_SLOTS 512
static void *storm_slots[STORM_THREADS][STORM_SLOTS];
static pthread_barrier_t storm_barrier;

__attribute__((noinline)) void *frontier_storm_leak(size_t size) { return malloc(size); }

static void *storm_thread(void *arg) {
    int id = (int)(intptr_t)arg;
    unsigned seed = (unsigned)id * 2654435761u + 1;
    for (int i = 0; i < STORM_SLOTS; i++) storm_slots[id][i] = malloc(16 + i);
    pthread_barrier_wait(&storm_barrier);
    for (int round = 0; round < 20000; round++) {
        seed = seed * 1103515245u + 12345u;
        int slot = (int)((seed >> 8) % STORM_SLOTS);
        free(storm_slots[id][slot]);
        storm_slots[id][slot] = malloc(16 + (seed >> 20) % 2048);
    }
    pthread_barrier_wait(&storm_barrier);
    /* Free the neighbour's blocks: frees from another thread than the
     * allocating one. */
    int other = (id + 1) % STORM_THREADS;
    for (int i = 0; i < STORM_SLOTS; i++) free(storm_slots[other][i]);
    for (int i = 0; i < 100 + id; i++) sink = frontier_storm_leak((size_t)(100 + id));
    return NULL;
}

static void mode_storm(void) {
    pthread_t t[STORM_THREADS];
    pthread_barrier_init(&storm_barrier, NULL, STORM_THREADS);
    for (int i = 0; i < STORM_THREADS; i++)
        if (pthread_create(&t[i], NULL, storm_thread, (void *)(intptr_t)i) != 0) exit(30);
    for (int i = 0; i < STORM_THREADS; i++) pthread_join(t[i], NULL);
    for (int id = 0; id < STORM_THREADS; id++)
        for (int i = 0; i < 100 + id; i++) got(&frontier, (size_t)(100 + id));
    print_truth();
}

__attribute__((noinline)) void frontier_before_fork(void) {
    for (int i = 0; i < 7; i++) sink = malloc(1234);
}

__attribute__((noinline)) void frontier_in_child(void) {
    for (int i = 0; i < 3; i++) sink = malloc(4321);
}

/* The parent leaks before forking; the child inherits that and leaks more.
 * Prints the child's pid and both truths. */
static void mode_fork(void) {
    frontier_before_fork();
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) exit(40);
    if (pid == 0) {
        frontier_in_child();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) exit(41);
    printf("child %d\nparent frontier %d %d\nchild frontier %d %d\n", (int)pid, 7 * 1234, 7,
           7 * 1234 + 3 * 4321, 10);
}

/* A fork child that allocates only where its parent did makes its segment
 * 50 ms into its life, not at the fork: prints whether the file existed
 * before that (it must not) and after (it must). */
static void mode_forklate(void) {
    char path[512];
    const char *dir = getenv("LEAKSCOPE_DIR");
    pid_t pid = -1;
    int before = -1, after = -1;
    for (int round = 0; round < 3; round++) {
        frontier_before_fork(); /* one call site, 7 blocks a round */
        if (round == 0) {
            fflush(stdout);
            pid = fork();
            if (pid < 0) exit(40);
            if (pid > 0) break;
            snprintf(path, sizeof path, "%s/%d.seg", dir ? dir : "", (int)getpid());
        }
        if (round == 1) {
            before = access(path, F_OK) == 0;
            usleep(120 * 1000);
        }
    }
    if (pid == 0) {
        after = access(path, F_OK) == 0;
        printf("child segment before %d after %d\n", before, after);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) exit(41);
    printf("child %d\nparent frontier %d %d\nchild frontier %d %d\n", (int)pid, 7 * 1234, 7,
           21 * 1234, 21);
}

__attribute__((noinline)) void *frontier_twice_freed(void) { return malloc(4242); }

__attribute__((noinline)) void probe_first_free(void *p) { free(p); }

__attribute__((noinline)) void probe_second_free(void *p) { free(p); }

/* A free of memory libc gave out behind the shim's back, a double free,
 * and an allocation that fails. The program must go on. */
static void mode_errors(void) {
    free(__libc_malloc(100));
    void *p = frontier_twice_freed();
    probe_first_free(p);
    probe_second_free(p);
    volatile size_t huge = SIZE_MAX / 2;
    errno = 0;
    void *big = malloc(huge);
    printf("oom %s %s\n", big ? "non-null" : "null", errno == ENOMEM ? "ENOMEM" : "other");
    printf("survived\n");
}

__attribute__((noinline)) void frontier_job_leak(int n) {
    for (int i = 0; i < n; i++) sink = malloc(2000);
}

__attribute__((noinline)) void probe_job_scratch(void) {
    void *v[50];
    for (int i = 0; i < 50; i++) v[i] = malloc(700);
    for (int i = 0; i < 50; i++) free(v[i]);
}

/* Mark/diff in-process through the optional header: a job that leaks 3
 * blocks between mark and check, with churn that frees everything else. */
static void mode_job(void) {
    frontier_job_leak(10); /* before the mark: not in the diff */
    if (leakscope_heap_mark() != 0) {
        printf("no shim\n");
        return;
    }
    probe_job_scratch();
    frontier_job_leak(3);
    int64_t bytes = -1, allocs = -1;
    leakscope_heap_since_mark(&bytes, &allocs);
    printf("since mark %lld %lld\n", (long long)bytes, (long long)allocs);
}

/* For `leakscope mark/diff PID`: reads commands on stdin. "leak" leaks 5
 * blocks of 3000 bytes from frontier_injected_leak, "churn" allocates and
 * frees, "quit" exits. Says "ready" after each command. */
__attribute__((noinline)) void frontier_injected_leak(void) {
    for (int i = 0; i < 5; i++) sink = malloc(3000);
}

static void mode_serve(void) {
    char line[64];
    frontier_job_leak(4);
    printf("ready\n");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        if (!strncmp(line, "leak", 4)) frontier_injected_leak();
        else if (!strncmp(line, "churn", 5)) probe_job_scratch();
        else if (!strncmp(line, "quit", 4)) break;
        printf("ready\n");
        fflush(stdout);
    }
}

/* Signal handlers that allocate, interrupting a loop that allocates: the
 * shim must neither deadlock nor lose count. */
static volatile sig_atomic_t alarms;
static void on_alarm(int sig) {
    (void)sig;
    free(malloc(64)); /* not async-signal-safe, but programs do it */
    alarms++;
}

static void mode_signals(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 200}, {0, 200}};
    setitimer(ITIMER_REAL, &it, NULL);
    for (int i = 0; i < 3000000 && alarms < 200; i++) free(malloc(16 + (size_t)(i % 512)));
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    frontier_job_leak(2);
    printf("alarms %s\n", alarms > 0 ? "seen" : "none");
}

/* Threads churn the heap while the main thread forks children that
 * allocate and exit: fork must never inherit a lock held by a thread that
 * does not exist in the child. */
static volatile int churn_stop;
static void *churn(void *arg) {
    (void)arg;
    void *v[64] = {0};
    for (unsigned i = 0; !churn_stop; i++) {
        free(v[i % 64]);
        v[i % 64] = malloc(16 + i % 1000);
    }
    for (int i = 0; i < 64; i++) free(v[i]);
    return NULL;
}

static void mode_forkstorm(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, churn, NULL);
    int ok = 0;
    for (int k = 0; k < 30; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (int i = 0; i < 1000; i++) free(malloc(100));
            frontier_job_leak(1);
            exit(0);
        }
        int st;
        if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0) ok++;
    }
    churn_stop = 1;
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("children ok %d\n", ok);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "leak")) mode_leak();
    else if (!strcmp(mode, "storm")) mode_storm();
    else if (!strcmp(mode, "fork")) mode_fork();
    else if (!strcmp(mode, "errors")) mode_errors();
    else if (!strcmp(mode, "job")) mode_job();
    else if (!strcmp(mode, "serve")) mode_serve();
    else if (!strcmp(mode, "signals")) mode_signals();
    else if (!strcmp(mode, "forkstorm")) mode_forkstorm();
    else if (!strcmp(mode, "forklate")) mode_forklate();
    else {
        fprintf(stderr, "usage: heapprobe leak|storm|fork|errors|job|serve|signals|forkstorm|forklate\n");
        return 2;
    }
    return 0;
}

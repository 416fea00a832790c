/* edgeprobe.c - C programs with known truth at the edges fdtrack gets wrong
 * easily: the descriptor limit, closes no hook sees, raw fork and vfork,
 * forked children, pipes, failed allocations, the shim's own descriptors,
 * call sites behind an allocation wrapper. Each mode prints what it did (and what the kernel says) so the tests can
 * hold leakscope's numbers against it. Leaks come from functions with
 * telling names.
 */
#define _GNU_SOURCE
#include <alloca.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Descriptors the kernel has open below max, asked without opening one. */
static int kernel_open_below(int max) {
    int n = 0;
    for (int fd = 0; fd < max; fd++)
        if (fcntl(fd, F_GETFD) != -1) n++;
    return n;
}

/* Blocks until SIGTERM, so a test can look at the live process. */
static void wait_for_term(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    int sig;
    sigwait(&set, &sig);
}

static void block_term(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
}

__attribute__((noinline)) int edge_hold_files(void) {
    int n = 0;
    while (open("/dev/null", O_RDONLY) >= 0 || (errno != EMFILE && errno != ENFILE)) n++;
    return n;
}

/* Lowers the limit to 32 and fills it: the process has no descriptor left. */
static int mode_limit(int wait) {
    struct rlimit rl = {32, 32};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 1;
    int held = edge_hold_files();
    printf("held %d kernel %d\n", held, kernel_open_below(64));
    fflush(stdout);
    if (wait) wait_for_term();
    return 0;
}

/* Sockets closed by raw syscall (as libuv does): each number comes back. */
__attribute__((noinline)) int edge_raw_close_sockets(int n) {
    int last = -1;
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) return -1;
        if (last >= 0 && fd != last) return -1;
        last = fd;
        syscall(SYS_close, fd);
    }
    return last;
}

static int mode_reuse(int n) {
    if (edge_raw_close_sockets(n) < 0) return 1;
    printf("reused %d kernel %d\n", n, kernel_open_below(1024));
    return 0;
}

__attribute__((noinline)) void edge_leak_files(int n) {
    for (int i = 0; i < n; i++)
        if (open("/dev/null", O_RDONLY) < 0) exit(10);
}

__attribute__((noinline)) void edge_child_files(int n) { edge_leak_files(n); }

/* A child made by the fork syscall itself: no atfork handler runs. */
static int mode_rawfork(void) {
    block_term();
    edge_leak_files(3);
    fflush(stdout);
    long pid = syscall(SYS_fork);
    if (pid == 0) {
        edge_child_files(2);
        printf("child %d\n", (int)getpid());
        exit(0);
    }
    int st;
    waitpid((pid_t)pid, &st, 0);
    printf("parent %d ready\n", (int)getpid());
    fflush(stdout);
    wait_for_term();
    return 0;
}

/* vfork + closing everything in the child, as Python's subprocess does. */
static int mode_vfork(void) {
    edge_leak_files(5);
    pid_t pid = vfork();
    if (pid == 0) {
        close_range(3, ~0U, 0);
        for (int fd = 3; fd < 64; fd++) close(fd);
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("vfork child status %d kernel %d\n", WEXITSTATUS(st), kernel_open_below(1024));
    return 0;
}

__attribute__((noinline)) void edge_one_pipe(void) {
    int p[2];
    if (pipe(p) != 0) exit(11);
}

__attribute__((noinline)) void edge_one_socketpair(void) {
    int p[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, p) != 0) exit(12);
}

__attribute__((noinline)) void edge_leak_pipes(int n) {
    for (int i = 0; i < n; i++) edge_one_pipe();
}

/* One pipe and one socketpair held for life (a wake-up pipe, a channel),
 * then n pipes leaked from one site. */
static int mode_pairs(int n) {
    edge_one_pipe();
    edge_one_socketpair();
    for (int i = 0; i < n; i++) {
        int p[2];
        if (pipe(p) != 0) return 1;
    }
    printf("pairs leaked %d\n", n);
    return 0;
}

__attribute__((noinline)) void edge_pool_open(int n) {
    for (int i = 0; i < n; i++)
        if (socket(AF_INET, SOCK_STREAM, 0) < 0) exit(13);
}

/* A pool opened by the parent, then a forked worker that leaks its own.
 * how: "exit" (the child exits), "_exit" (it leaves with _exit and is not
 * reaped until SIGTERM), "wait" (it waits for SIGTERM). */
static int mode_fork(const char *how) {
    block_term();
    edge_pool_open(6);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        edge_child_files(3);
        printf("child %d kernel %d\n", (int)getpid(), kernel_open_below(1024));
        fflush(stdout);
        if (!strcmp(how, "wait")) wait_for_term();
        if (!strcmp(how, "_exit")) _exit(0);
        exit(0);
    }
    if (!strcmp(how, "_exit")) {
        /* Leave the child a zombie while the test looks at it. */
        siginfo_t si;
        waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
        printf("parent %d ready\n", (int)getpid());
        fflush(stdout);
        wait_for_term();
    }
    int st;
    waitpid(pid, &st, 0);
    printf("parent %d done\n", (int)getpid());
    return 0;
}

/* What the kernel holds at fds >= 3: "kernel N pipe P device D". Listed
 * with the directory's own descriptor left out, and written without stdio:
 * an allocation after the listing would be a stack capture, which may
 * re-create the unwinder's pipe. */
static void print_kernel_view(void) {
    int n = 0, pipes = 0, devices = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) exit(14);
    struct dirent *de;
    while ((de = readdir(d))) {
        int fd = atoi(de->d_name);
        if (de->d_name[0] == '.' || fd < 3 || fd == dirfd(d)) continue;
        char link[64], to[256];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t len = readlink(link, to, sizeof to - 1);
        to[len > 0 ? len : 0] = 0;
        n++;
        pipes += strncmp(to, "pipe:", 5) == 0;
        devices += strncmp(to, "/dev/", 5) == 0;
    }
    closedir(d);
    char line[64];
    int len = snprintf(line, sizeof line, "kernel %d pipe %d device %d\n", n, pipes, devices);
    if (write(1, line, (size_t)len) != len) exit(16);
}

/* A device and a pipe opened and closed at the bottom of a deep stack, the
 * unwinder's deepest walk. */
__attribute__((noinline)) int edge_deep_open(int depth) {
    if (depth > 0) return edge_deep_open(depth - 1) + (depth & 1);
    int fd = open("/dev/null", O_RDONLY), p[2];
    if (fd < 0 || pipe(p) != 0) exit(15);
    close(fd);
    close(p[0]);
    close(p[1]);
    return 0;
}

static void *deep_thread(void *arg) {
    (void)arg;
    edge_deep_open(500);
    return NULL;
}

/* Opens nothing it keeps: whatever the kernel holds beyond stdio at exit is
 * the shim's (libunwind's validation pipe). */
static int mode_quiet(void) {
    pthread_t t;
    edge_deep_open(2000);
    if (pthread_create(&t, NULL, deep_thread, NULL) != 0) return 1;
    pthread_join(t, NULL);
    print_kernel_view();
    return 0;
}

__attribute__((noinline)) int edge_keep_file(void) { return open("/dev/null", O_RDONLY); }

/* A daemon's close-all loop closes the shim's pipe with the rest; then one
 * device is opened and kept. */
static int mode_closeall(void) {
    edge_deep_open(10);
    for (int fd = 3; fd < 1024; fd++) close(fd);
    if (edge_keep_file() < 0) return 1;
    print_kernel_view();
    return 0;
}

/* Failed allocations, each through another entry point. */
static int mode_allocfail(void) {
    volatile size_t huge = SIZE_MAX / 4, many = 16;
    int failed = 0;
    void *volatile p = malloc(huge);
    failed += p == NULL;
    p = calloc(huge, many);
    failed += p == NULL;
    void *small = malloc(16);
    void *grown = realloc(small, huge);
    failed += grown == NULL;
    if (grown) small = grown;
    grown = reallocarray(small, huge, many); /* n * size overflows */
    failed += grown == NULL;
    if (grown) small = grown;
    void *q = NULL;
    failed += posix_memalign(&q, 64, huge) != 0;
    failed += posix_memalign(&q, 3, 64) != 0; /* not a power of two */
    p = aligned_alloc(64, huge);
    failed += p == NULL;
    p = memalign(64, huge);
    failed += p == NULL;
    free(small);
    printf("failed allocations %d\n", failed);
    return 0;
}

/* Call sites behind an allocation wrapper (the sqlite3MemMalloc, xmalloc
 * shape): edge_wrap_alloc is called from five paths at one stack depth, two
 * of them through edge_via_alloca, whose frame size changes from call to
 * call and whose alloca'd block holds the other path's return address.
 * Every path allocates and frees 20,000 times; edge_wrap_from_X keeps the
 * last KEPT_X blocks of its own size. */
#define OPAQUE(p) __asm__ volatile("" ::"r"(p) : "memory")
__attribute__((noinline)) void *edge_wrap_alloc(size_t n) {
    void *p = malloc(n);
    OPAQUE(p);
    return p;
}
static void *g_last_caller;
__attribute__((noinline)) void *edge_via_alloca(size_t pad, size_t n) {
    /* The alloca'd block holds the other path's return address: a walk
     * that takes this frame for its size last time reads the wrong path. */
    void **buf = alloca(pad);
    for (size_t i = 0; i < pad / sizeof *buf; i++) buf[i] = g_last_caller;
    g_last_caller = __builtin_return_address(0);
    OPAQUE(buf);
    void *p = edge_wrap_alloc(n);
    OPAQUE(p);
    return p;
}
__attribute__((noinline)) void *edge_wrap_from_a(size_t pad) { (void)pad; void *p = edge_wrap_alloc(24); OPAQUE(p); return p; }
__attribute__((noinline)) void *edge_wrap_from_b(size_t pad) { (void)pad; void *p = edge_wrap_alloc(32); OPAQUE(p); return p; }
__attribute__((noinline)) void *edge_wrap_from_c(size_t pad) { (void)pad; void *p = edge_wrap_alloc(40); OPAQUE(p); return p; }
__attribute__((noinline)) void *edge_wrap_from_d(size_t pad) { void *p = edge_via_alloca(pad, 48); OPAQUE(p); return p; }
__attribute__((noinline)) void *edge_wrap_from_e(size_t pad) { void *p = edge_via_alloca(pad, 56); OPAQUE(p); return p; }

static int mode_wrappers(void) {
    void *(*path[5])(size_t) = {edge_wrap_from_a, edge_wrap_from_b, edge_wrap_from_c,
                                edge_wrap_from_d, edge_wrap_from_e};
    const int kept[5] = {10, 20, 30, 40, 50}, rounds = 20000;
    for (int i = 0; i < rounds; i++)
        for (int k = 0; k < 5; k++) {
            void *p = path[k](16 + (size_t)((i * 7 + k) % 13) * 48);
            if (i < rounds - kept[k]) free(p);
        }
    printf("kept a %d b %d c %d d %d e %d\n", kept[0], kept[1], kept[2], kept[3], kept[4]);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *m = argc > 1 ? argv[1] : "";
    int arg = argc > 2 ? atoi(argv[2]) : 0;
    if (!strcmp(m, "limit")) return mode_limit(0);
    if (!strcmp(m, "limit-wait")) {
        printf("pid %d\n", (int)getpid());
        block_term();
        return mode_limit(1);
    }
    if (!strcmp(m, "reuse")) return mode_reuse(arg);
    if (!strcmp(m, "rawfork")) return mode_rawfork();
    if (!strcmp(m, "vfork")) return mode_vfork();
    if (!strcmp(m, "pairs")) return mode_pairs(arg);
    if (!strcmp(m, "fork")) return mode_fork(argc > 2 ? argv[2] : "exit");
    if (!strcmp(m, "allocfail")) return mode_allocfail();
    if (!strcmp(m, "wrappers")) return mode_wrappers();
    if (!strcmp(m, "quiet")) return mode_quiet();
    if (!strcmp(m, "closeall")) return mode_closeall();
    fprintf(stderr, "edgeprobe: unknown mode '%s'\n", m);
    return 2;
}

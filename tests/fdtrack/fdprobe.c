/* fdprobe.c - a program that does one known thing to descriptors per mode,
 * so tests can hold fdtrack's counts against the truth. Leaks come from
 * functions with telling names; the tests look for them in the call sites.
 * Prints a line of results that must be identical with and without the shim.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *tmpdir(void) {
    const char *t = getenv("FDPROBE_TMP");
    return t ? t : "/tmp";
}

/* Leaks n frontier files under $FDPROBE_TMP/frontier/. */
__attribute__((noinline)) void frontier_leak_files(int n) {
    char path[512];
    snprintf(path, sizeof path, "%s/frontier", tmpdir());
    mkdir(path, 0700);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/frontier/h%d.frontier", tmpdir(), i);
        FILE *f = fopen(path, "a");
        if (!f) exit(10);
    }
}

__attribute__((noinline)) void probe_leak_pipes(int n) {
    for (int i = 0; i < n; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0) exit(11);
    }
}

/* Opens and closes files through every entry point that has a hook. */
__attribute__((noinline)) void probe_balanced_churn(int rounds) {
    char path[512];
    snprintf(path, sizeof path, "%s/churn.txt", tmpdir());
    for (int i = 0; i < rounds; i++) {
        int fd = open(path, O_RDWR | O_CREAT, 0600);
        int fd2 = dup(fd);
        int fd3 = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        close(fd3);
        close(fd2);
        close(fd);
        FILE *f = fopen(path, "r");
        fclose(f);
        DIR *d = opendir(tmpdir());
        closedir(d);
        FILE *t = tmpfile();
        fclose(t);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        close(s);
        int ep = epoll_create1(0);
        close(ep);
        int ev = eventfd(0, 0);
        close(ev);
        int sp[2];
        socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
        close(sp[0]);
        close(sp[1]);
        FILE *pp = popen("true", "r");
        pclose(pp);
        FILE *re = fopen(path, "r");
        re = freopen(NULL, "r+", re); /* same file, new mode */
        re = freopen("/etc/hostname", "r", re);
        fclose(re);
    }
}

static void *storm_thread(void *arg) {
    char path[512];
    snprintf(path, sizeof path, "%s/storm.txt", tmpdir());
    long rounds = (long)arg;
    for (long i = 0; i < rounds; i++) {
        int fd = open(path, O_RDONLY | O_CREAT, 0600);
        if (fd < 0) return (void *)1;
        close(fd);
    }
    return NULL;
}

static int mode_threads(void) {
    pthread_t t[64];
    long bad = 0;
    for (int i = 0; i < 64; i++) pthread_create(&t[i], NULL, storm_thread, (void *)2000L);
    for (int i = 0; i < 64; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad += (long)r;
    }
    probe_leak_pipes(5);
    printf("threads bad=%ld\n", bad);
    return 0;
}

static int mode_forkexec(int n) {
    int failed = 0;
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0) {
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        int st;
        waitpid(p, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failed++;
    }
    printf("forkexec n=%d failed=%d\n", n, failed);
    return 0;
}

static int mode_spawn(void) {
    pid_t p = vfork();
    if (p == 0) {
        execl("/bin/echo", "echo", "from-vfork", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    char *args[] = {"echo", "from-posix-spawn", NULL};
    if (posix_spawn(&p, "/bin/echo", NULL, NULL, args, environ) != 0) return 1;
    waitpid(p, &st, 0);
    printf("spawn status=%d\n", WEXITSTATUS(st));
    return 0;
}

/* Parent leaks 3 frontier files, then the child leaks 2 pipes. */
static int mode_fork(void) {
    frontier_leak_files(3);
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        probe_leak_pipes(2);
        printf("child %d\n", (int)getpid());
        exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    printf("parent done\n");
    return 0;
}

/* Like mode_fork, but the child drops root first, as nginx's workers do:
 * it could not create its segment afterwards, so the shim must have made it
 * before setuid. Prints "skip" when not root. */
static int mode_fork_setuid(void) {
    if (geteuid() != 0) {
        printf("skip\n");
        return 0;
    }
    frontier_leak_files(3);
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
        probe_leak_pipes(2);
        printf("child %d\n", (int)getpid());
        exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    printf("parent done %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}

/* The parent closes two pipe ends and makes new pipes the moment fork
 * returns, as multiprocessing does: the child must still hold the four ends
 * it got (and none of the new ones), whenever its fork handler runs. */
static int mode_fork_then_close(void) {
    int a[2], b[2];
    frontier_leak_files(3);
    if (pipe(a) != 0 || pipe(b) != 0) return 1;
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        usleep(100000);
        printf("child %d\n", (int)getpid());
        exit(0);
    }
    close(a[1]);
    close(b[0]);
    probe_leak_pipes(2);
    int st;
    waitpid(p, &st, 0);
    printf("parent done\n");
    return 0;
}

/* Sends a frontier file and a pipe end to itself over a unix socket
 * (SCM_RIGHTS), closes the originals, keeps what it received. */
__attribute__((noinline)) int probe_receive_fds(int sock, int out[2]) {
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } ctl;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof ctl.buf};
    if (recvmsg(sock, &msg, 0) != 1) return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
    memcpy(out, CMSG_DATA(c), 2 * sizeof(int));
    return 0;
}

static int mode_scm_rights(void) {
    char path[512];
    int sp[2], p[2], got[2];
    snprintf(path, sizeof path, "%s/frontier", tmpdir());
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/frontier/sent.frontier", tmpdir());
    int f = open(path, O_RDWR | O_CREAT, 0600);
    if (f < 0 || pipe(p) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0) return 1;
    int send[2] = {f, p[0]};
    char byte = 'x';
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof send)];
    } ctl;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof ctl.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof send);
    memcpy(CMSG_DATA(c), send, sizeof send);
    if (sendmsg(sp[0], &msg, 0) != 1) return 1;
    close(f);
    close(p[0]);
    if (probe_receive_fds(sp[1], got) != 0) return 1;
    int copy = dup(got[1]);
    close(copy);
    printf("scm_rights ok\n");
    return 0;
}

static int mode_close_range(void) {
    frontier_leak_files(10);
    if (close_range(3, ~0U, 0) != 0) return 1;
    probe_leak_pipes(1);
    printf("close_range ok\n");
    return 0;
}

/* dup2 onto a tracked pipe end: the pipe end closes, the file takes over. */
static int mode_dup2(void) {
    frontier_leak_files(1);
    int p[2];
    if (pipe(p) != 0) return 1;
    int f = open("/etc/hostname", O_RDONLY);
    if (dup2(f, p[0]) != p[0]) return 1;
    close(f);
    printf("dup2 ok\n");
    return 0;
}

static int pending_fds[16];
static void close_in_handler(int sig) {
    (void)sig;
    for (int i = 0; i < 16; i++)
        if (pending_fds[i] >= 0) close(pending_fds[i]);
}

static int mode_signal(void) {
    for (int i = 0; i < 16; i++) pending_fds[i] = open("/etc/hostname", O_RDONLY);
    signal(SIGUSR1, close_in_handler);
    raise(SIGUSR1);
    probe_leak_pipes(1);
    printf("signal ok\n");
    return 0;
}

/* Opens until EMFILE, repeatedly, under a limit of 64. Reports failures. */
__attribute__((noinline)) int probe_exhaust_descriptors(void) {
    int fds[64], n = 0, failures = 0;
    for (int round = 0; round < 50; round++) {
        for (;;) {
            int fd = open("/etc/hostname", O_RDONLY);
            if (fd < 0) {
                if (errno == EMFILE) failures++;
                break;
            }
            fds[n++] = fd;
        }
        while (n > 0) close(fds[--n]);
    }
    return failures;
}

static int mode_emfile(void) {
    struct rlimit rl = {64, 64};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 1;
    printf("emfile failures=%d\n", probe_exhaust_descriptors());
    return 0;
}

/* Connects to 127.0.0.1:port (argv) and leaks the socket. */
__attribute__((noinline)) int probe_leak_connection(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return connect(s, (struct sockaddr *)&a, sizeof a);
}

static int mode_connect(int port, int n) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 64) != 0) return 1;
    for (int i = 0; i < n; i++)
        if (probe_leak_connection(port) != 0) return 1;
    for (int i = 0; i < n; i++)
        if (accept(l, NULL, NULL) < 0) return 1;
    printf("connect ok\n");
    return 0;
}

/* Holds descriptors open and waits, so a reader can compare live. */
static int mode_hold(void) {
    frontier_leak_files(4);
    probe_leak_pipes(3);
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0) return 1;
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0)
        ;
    return 0;
}

static int mode_exec(int stage) {
    if (stage == 0) {
        frontier_leak_files(2); /* fopen: not close-on-exec, survives */
        execl("/proc/self/exe", "fdprobe", "exec", "1", (char *)NULL);
        return 1;
    }
    probe_leak_pipes(1);
    printf("exec stage %d\n", stage);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: fdprobe MODE [ARG]\n");
        return 2;
    }
    const char *m = argv[1];
    int arg = argc > 2 ? atoi(argv[2]) : 0;
    if (!strcmp(m, "basic")) {
        frontier_leak_files(5);
        probe_leak_pipes(3);
        probe_balanced_churn(20);
        printf("basic ok\n");
        return 0;
    }
    if (!strcmp(m, "clean")) {
        probe_balanced_churn(20);
        printf("clean ok\n");
        return 0;
    }
    if (!strcmp(m, "age")) { /* frontier files 1.5 s old at exit, pipes new */
        frontier_leak_files(2);
        usleep(1500000);
        probe_leak_pipes(1);
        return 0;
    }
    if (!strcmp(m, "threads")) return mode_threads();
    if (!strcmp(m, "forkexec")) return mode_forkexec(arg ? arg : 1000);
    if (!strcmp(m, "spawn")) return mode_spawn();
    if (!strcmp(m, "fork")) return mode_fork();
    if (!strcmp(m, "fork_setuid")) return mode_fork_setuid();
    if (!strcmp(m, "fork_then_close")) return mode_fork_then_close();
    if (!strcmp(m, "scm_rights")) return mode_scm_rights();
    if (!strcmp(m, "close_range")) return mode_close_range();
    if (!strcmp(m, "dup2")) return mode_dup2();
    if (!strcmp(m, "signal")) return mode_signal();
    if (!strcmp(m, "emfile")) return mode_emfile();
    if (!strcmp(m, "connect")) return mode_connect(arg, argc > 3 ? atoi(argv[3]) : 4);
    if (!strcmp(m, "hold")) return mode_hold();
    if (!strcmp(m, "exec")) return mode_exec(arg);
    if (!strcmp(m, "exit7")) return 7;
    fprintf(stderr, "fdprobe: unknown mode %s\n", m);
    return 2;
}

/* leaky_fds.c - the bundled example for `leakscope run`: a tiny "crawler"
 * that handles 200 jobs. Each job opens a frontier file, a socket to a local
 * "queue" server and a pipe; one error path forgets to close the frontier
 * file, and the connection pool grows a connection every 20 jobs.
 * leakscope must name both leaks, their subsystems and call sites.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int listener_port(int *listener) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    *listener = socket(AF_INET, SOCK_STREAM, 0);
    if (*listener < 0 || bind(*listener, (struct sockaddr *)&a, len) != 0 ||
        listen(*listener, 64) != 0 || getsockname(*listener, (struct sockaddr *)&a, &len) != 0)
        return -1;
    return ntohs(a.sin_port);
}

/* The pool "forgets" connections it should reuse. */
__attribute__((noinline)) int queue_pool_connect(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        close(s);
        return -1;
    }
    return s;
}

/* Appends URLs to a domain's frontier file; leaks it when the job "fails". */
__attribute__((noinline)) int frontier_append(const char *dir, int job) {
    char path[512];
    snprintf(path, sizeof path, "%s/frontiers/h%d.example.frontier", dir, job % 50);
    FILE *f = fopen(path, "a");
    if (!f) return -1;
    fprintf(f, "http://h%d.example/page/%d\n", job % 50, job);
    if (job % 10 == 7) return -1; /* the bug: early return without fclose */
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    char dir[] = "/tmp/leaky-fds-XXXXXX";
    int listener;
    int port = listener_port(&listener);
    if (!mkdtemp(dir) || port < 0) {
        perror("leaky_fds: setup");
        return 1;
    }
    char sub[600];
    snprintf(sub, sizeof sub, "%s/frontiers", dir);
    mkdir(sub, 0700);
    int jobs = argc > 1 ? atoi(argv[1]) : 200, failed = 0;
    for (int job = 0; job < jobs; job++) {
        int p[2];
        if (pipe(p) == 0) {
            close(p[0]);
            close(p[1]);
        }
        if (frontier_append(dir, job) != 0) failed++;
        if (job % 20 == 0 && queue_pool_connect(port) < 0) failed++;
    }
    printf("leaky_fds: %d jobs, %d failed\n", jobs, failed);
    snprintf(sub, sizeof sub, "rm -rf '%s'", dir);
    return system(sub) == 0 ? 0 : 1;
}

/* Unit tests of the Redis pool against a real redis-server: counts, the
 * bound that blocks instead of failing, broken connections, and the
 * injected abandon of seed 001. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis_pool.h"

static pid_t redis_pid;
static int redis_port;
static char redis_dir[] = "/tmp/leakscope-pool-test.XXXXXX";

static int free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    bind(s, (struct sockaddr *)&a, sizeof(a));
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    return ntohs(a.sin_port);
}

static void start_redis(void) {
    cr_assert_not_null(mkdtemp(redis_dir));
    redis_port = free_port();
    char port[16];
    snprintf(port, sizeof(port), "%d", redis_port);
    redis_pid = fork();
    if (redis_pid == 0) {
        freopen("/dev/null", "w", stdout);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", redis_dir, "--save", "",
               "--appendonly", "no", "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        redisContext *c = redisConnect("127.0.0.1", redis_port);
        int ok = c && !c->err;
        if (c) redisFree(c);
        if (ok) return;
        usleep(25000);
    }
    cr_assert_fail("redis-server did not start");
}

static void stop_redis(void) {
    kill(redis_pid, SIGTERM);
    waitpid(redis_pid, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", redis_dir);
    system(cmd);
}

TestSuite(redis_pool, .init = start_redis, .fini = stop_redis, .timeout = 30);

Test(redis_pool, counts_and_reuse) {
    char err[256];
    struct redis_pool *p = redis_pool_create("127.0.0.1", redis_port, 4, 1000);
    redisContext *a = redis_pool_acquire(p, err, sizeof(err));
    redisContext *b = redis_pool_acquire(p, err, sizeof(err));
    cr_assert(a && b);
    struct redis_pool_counts c = redis_pool_counts(p);
    cr_expect_eq(c.created, 2);
    cr_expect_eq(c.in_use, 2);
    cr_expect_eq(c.idle, 0);
    redis_pool_release(p, a, 0);
    redis_pool_release(p, b, 0);
    c = redis_pool_counts(p);
    cr_expect_eq(c.in_use, 0);
    cr_expect_eq(c.idle, 2);
    for (int i = 0; i < 100; i++) redis_pool_release(p, redis_pool_acquire(p, err, sizeof(err)), 0);
    cr_expect_eq(redis_pool_counts(p).created, 2, "idle connections are reused");
    redisContext *x = redis_pool_acquire(p, err, sizeof(err));
    redis_pool_release(p, x, 1);
    c = redis_pool_counts(p);
    cr_expect_eq(c.closed, 1);
    cr_expect_eq(c.idle, 1);
    redis_pool_destroy(p);
}

struct delayed_release {
    struct redis_pool *pool;
    redisContext *conn;
};

static void *release_later(void *arg) {
    struct delayed_release *d = arg;
    usleep(300 * 1000);
    redis_pool_release(d->pool, d->conn, 0);
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(redis_pool, bound_blocks_then_times_out) {
    char err[256];
    struct redis_pool *p = redis_pool_create("127.0.0.1", redis_port, 2, 1000);
    redisContext *a = redis_pool_acquire(p, err, sizeof(err));
    redisContext *b = redis_pool_acquire(p, err, sizeof(err));
    cr_assert(a && b);
    struct delayed_release d = {p, a};
    pthread_t t;
    pthread_create(&t, NULL, release_later, &d);
    double start = now_s();
    redisContext *c = redis_pool_acquire(p, err, sizeof(err));
    double waited = now_s() - start;
    pthread_join(t, NULL);
    cr_assert_eq(c, a, "the waiter gets the released connection");
    cr_expect_geq(waited, 0.25);
    cr_expect_eq(redis_pool_counts(p).created, 2);
    cr_expect_eq(redis_pool_counts(p).waits, 1);

    start = now_s();
    cr_expect_null(redis_pool_acquire(p, err, sizeof(err)));
    cr_expect_geq(now_s() - start, 0.9);
    cr_expect(strstr(err, "no Redis connection free") != NULL, "%s", err);
    redis_pool_release(p, b, 0);
    redis_pool_release(p, c, 0);
    redis_pool_destroy(p);
}

Test(redis_pool, unreachable_redis_is_a_clear_error) {
    char err[256];
    struct redis_pool *p = redis_pool_create("127.0.0.1", free_port(), 2, 100);
    cr_expect_null(redis_pool_acquire(p, err, sizeof(err)));
    cr_expect(strstr(err, "cannot connect to Redis") != NULL, "%s", err);
    cr_expect_eq(redis_pool_counts(p).in_use, 0);
    redis_pool_destroy(p);
}

Test(redis_pool, abandon_grows_created_not_in_use) {
    char err[256];
    struct redis_pool *p = redis_pool_create("127.0.0.1", redis_port, 4, 1000);
    for (int i = 0; i < 10; i++) redis_pool_abandon(p, redis_pool_acquire(p, err, sizeof(err)));
    struct redis_pool_counts c = redis_pool_counts(p);
    cr_expect_eq(c.created, 10);
    cr_expect_eq(c.in_use, 0);
    cr_expect_eq(c.idle, 0);
    cr_expect_eq(c.closed, 0);
    redis_pool_destroy(p);
}

/* redis_pool.h - a bounded pool of hiredis connections.
 *
 * Seed 001's lesson: a pool must say how many connections it created, how
 * many are lent out and how many sit idle, and a bounded pool must make a
 * caller wait for a connection instead of failing with "Too many
 * connections". Thread-safe: the metrics thread and the main loop share it. */
#ifndef CRAWLER_REDIS_POOL_H
#define CRAWLER_REDIS_POOL_H

#include <hiredis/hiredis.h>
#include <pthread.h>

struct redis_pool_counts {
    long created; /* connections ever opened */
    long closed;  /* connections ever closed */
    long in_use;  /* lent out now */
    long idle;    /* waiting in the pool now */
    long waits;   /* acquires that had to wait for a release */
};

struct redis_pool {
    pthread_mutex_t lock;
    pthread_cond_t released;
    char host[256];
    int port;
    int max_size;      /* bound on in_use + idle */
    int wait_ms;       /* how long acquire waits for a free slot */
    redisContext **idle_conns;
    struct redis_pool_counts counts;
};

/* Returns a pool of at most max_size connections, or NULL. */
struct redis_pool *redis_pool_create(const char *host, int port, int max_size, int wait_ms);

/* Lend a connection: an idle one, else a new one when under the bound,
 * else wait up to wait_ms for a release. Returns NULL (with a message in
 * err) when Redis cannot be reached or the wait timed out. */
redisContext *redis_pool_acquire(struct redis_pool *pool, char *err, size_t errlen);

/* Give a connection back; a broken one (c->err set, or broken != 0) is
 * closed instead of kept. */
void redis_pool_release(struct redis_pool *pool, redisContext *c, int broken);

/* The injected bug of seed 001 (--inject redis-pool-growth): what a
 * cancelled caller did there. The connection leaves in_use but is neither
 * returned to the idle list nor closed, so the next acquire finds none idle
 * and opens a new one: created climbs while in_use stays small. */
void redis_pool_abandon(struct redis_pool *pool, redisContext *c);

struct redis_pool_counts redis_pool_counts(struct redis_pool *pool);

/* Close every idle connection (lent ones must be released first). */
void redis_pool_destroy(struct redis_pool *pool);

#endif

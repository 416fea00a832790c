/* redis_pool.c - bounded hiredis connection pool with counts. */
#include "redis_pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct redis_pool *redis_pool_create(const char *host, int port, int max_size, int wait_ms) {
    struct redis_pool *pool = calloc(1, sizeof(*pool));
    if (!pool) return NULL;
    pool->idle_conns = calloc((size_t)max_size, sizeof(redisContext *));
    if (!pool->idle_conns) {
        free(pool);
        return NULL;
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pool->released, &attr);
    pthread_condattr_destroy(&attr);
    snprintf(pool->host, sizeof(pool->host), "%s", host);
    pool->port = port;
    pool->max_size = max_size;
    pool->wait_ms = wait_ms;
    return pool;
}

redisContext *redis_pool_acquire(struct redis_pool *pool, char *err, size_t errlen) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += pool->wait_ms / 1000;
    deadline.tv_nsec += (long)(pool->wait_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&pool->lock);
    while (pool->counts.idle == 0 && pool->counts.in_use >= pool->max_size) {
        pool->counts.waits++;
        if (pthread_cond_timedwait(&pool->released, &pool->lock, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&pool->lock);
            snprintf(err, errlen, "no Redis connection free after %d ms (pool size %d)", pool->wait_ms,
                     pool->max_size);
            return NULL;
        }
    }
    if (pool->counts.idle > 0) {
        redisContext *c = pool->idle_conns[--pool->counts.idle];
        pool->counts.in_use++;
        pthread_mutex_unlock(&pool->lock);
        return c;
    }
    pool->counts.in_use++; /* reserve the slot while connecting unlocked */
    pthread_mutex_unlock(&pool->lock);

    struct timeval timeout = {2, 0};
    redisContext *c = redisConnectWithTimeout(pool->host, pool->port, timeout);
    if (!c || c->err) {
        snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s", pool->host, pool->port,
                 c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        pthread_mutex_lock(&pool->lock);
        pool->counts.in_use--;
        pthread_cond_signal(&pool->released);
        pthread_mutex_unlock(&pool->lock);
        return NULL;
    }
    redisSetTimeout(c, timeout);
    pthread_mutex_lock(&pool->lock);
    pool->counts.created++;
    pthread_mutex_unlock(&pool->lock);
    return c;
}

void redis_pool_release(struct redis_pool *pool, redisContext *c, int broken) {
    pthread_mutex_lock(&pool->lock);
    pool->counts.in_use--;
    int keep = !broken && !c->err;
    if (keep) pool->idle_conns[pool->counts.idle++] = c;
    else pool->counts.closed++;
    pthread_cond_signal(&pool->released);
    pthread_mutex_unlock(&pool->lock);
    if (!keep) redisFree(c);
}

void redis_pool_abandon(struct redis_pool *pool, redisContext *c) {
    (void)c; /* the bug: the context is dropped, its socket stays open */
    pthread_mutex_lock(&pool->lock);
    pool->counts.in_use--;
    pthread_cond_signal(&pool->released);
    pthread_mutex_unlock(&pool->lock);
}

struct redis_pool_counts redis_pool_counts(struct redis_pool *pool) {
    pthread_mutex_lock(&pool->lock);
    struct redis_pool_counts counts = pool->counts;
    pthread_mutex_unlock(&pool->lock);
    return counts;
}

void redis_pool_destroy(struct redis_pool *pool) {
    if (!pool) return;
    for (long i = 0; i < pool->counts.idle; i++) redisFree(pool->idle_conns[i]);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->released);
    free(pool->idle_conns);
    free(pool);
}

/* store.h - the crawl's state in Redis: keys, scripts, and retries.
 *
 * Keys:
 *   domains:schedule       ZSET domain -> time (ms) it may be fetched next; a
 *                          domain being fetched holds a lease (score far ahead)
 *   domain:<domain>        HASH frontier_offset, frontier_size, next_fetch (ms; the
 *                          delay holds even when the domain leaves the schedule),
 *                          robots_status, robots
 *   seen:urls              SET of every URL ever discovered (parsers dedupe on it)
 *   fetched:urls           HASH URL -> claim token, each URL fetched at most once
 *   fetch:queue            LIST of fetched pages for the parsers
 *   fetch:processing:<id>  LIST holding the page parser <id> is working on
 *   stats:pages_parsed     counter
 */
#ifndef CRAWLER_STORE_H
#define CRAWLER_STORE_H

#include "redis_pool.h"

#include <stddef.h>
#include <stdint.h>

#define STORE_FETCH_QUEUE "fetch:queue"

struct store {
    struct redis_pool *pool;
    int retry_ms;        /* keep retrying a command this long while Redis is down */
    long errors;         /* commands that failed and were retried */
    int failed;          /* gave up: Redis stayed unreachable */
    char last_error[256];
    char script_sha[8][41]; /* SHA1 of each Lua script once loaded, "" before */
};

/* Connect lazily through a pool of pool_size connections. */
int store_open(struct store *s, const char *host, int port, int pool_size, int retry_ms);
void store_close(struct store *s);

/* Run a command, reconnecting and retrying while Redis is unreachable for
 * up to retry_ms. Returns the reply (caller frees), or NULL with s->failed
 * set. An error reply from Redis is returned as is. */
redisReply *store_command(struct store *s, const char *fmt, ...);
redisReply *store_command_argv(struct store *s, int argc, const char **argv, const size_t *lens);

/* Delete every key of a previous crawl. Returns 0 or -1. */
int store_reset(struct store *s);

/* Claim up to max domains due at now_ms, leasing them until lease_ms.
 * Fills domains (owned strings), offsets and sizes; returns the count or -1. */
long store_claim_domains(struct store *s, int64_t now_ms, int64_t lease_ms, int max, char **domains,
                         uint64_t *offsets, uint64_t *sizes);

/* Mark url fetched by this claim (token) and move the domain's offset.
 * Returns 1 when claimed (also when a retried call had claimed it), 0 when
 * it was fetched before, -1 on failure. */
int store_claim_url(struct store *s, const char *domain, const char *url, const char *token, uint64_t offset);

/* A transfer of domain finished: push page (if any) to fetch:queue, store
 * offset, and schedule the domain at when_ms if its frontier has more, else
 * drop it from the schedule. Returns 0 or -1. */
int store_complete(struct store *s, const char *domain, uint64_t offset, int64_t when_ms, const char *page,
                   size_t page_len);

/* New URLs of one domain, already appended to its frontier file, which
 * now holds bytes up to end. */
struct discovered {
    const char *domain;
    uint64_t end;
    const char **urls;
    size_t count;
};

/* Record n domains' discoveries in one round trip: mark the URLs seen,
 * raise frontier_size to end, and schedule each domain (at its next_fetch,
 * now at the earliest) unless it is scheduled or leased. Returns 0 or -1. */
int store_discover(struct store *s, int64_t now_ms, const struct discovered *d, size_t n);

/* Give back leases (scores beyond threshold_ms) except those of the keep
 * domains: after a restart, those of the previous fetcher; after a Redis
 * failure, those whose claim's reply was lost (keep: domains in flight). */
long store_recover_leases(struct store *s, int64_t threshold_ms, int64_t now_ms, const char **keep, size_t nkeep);

/* Pending work: scheduled domains, queued pages, pages being parsed by
 * parsers 0..parsers-1. Returns 0 or -1. */
int store_pending(struct store *s, int parsers, long *scheduled, long *queued, long *processing);

/* robots.txt cache in domain:<domain>. store_robots_load returns 1 and a
 * malloc'ed text when cached, 0 when not, -1 on failure. */
int store_robots_save(struct store *s, const char *domain, int status, const char *text, size_t len);
int store_robots_load(struct store *s, const char *domain, int *status, char **text, size_t *len);

/* LLEN fetch:queue, for backpressure; -1 on failure. */
long store_fetch_queue_length(struct store *s);

/* A parser finished the page in its processing list: drop it, count it. */
int store_page_parsed(struct store *s, const char *processing);

long store_counter(struct store *s, const char *key);

#endif

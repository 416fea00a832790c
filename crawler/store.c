/* store.c - the crawl's state in Redis.
 *
 * Multi-key updates that must not interleave with another process (claim a
 * domain, finish a transfer, record discoveries) are Lua scripts, so each
 * is one round trip and atomic. Every command goes through store_command,
 * which survives a Redis restart by reconnecting and retrying; the scripts
 * are written to be safe when a retry repeats one that already ran. */
#include "store.h"
#include "inject.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum script_id { SCRIPT_CLAIM_DOMAINS, SCRIPT_CLAIM_URL, SCRIPT_COMPLETE, SCRIPT_DISCOVER, SCRIPT_RECOVER,
                 SCRIPT_PENDING, SCRIPT_PARSED, SCRIPT_COUNT };

_Static_assert(SCRIPT_COUNT <= sizeof(((struct store *)0)->script_sha) / sizeof(((struct store *)0)->script_sha[0]),
               "struct store needs room for every script's SHA1");

static const char *script_text[SCRIPT_COUNT] = {
    [SCRIPT_CLAIM_DOMAINS] =
        "local d = redis.call('ZRANGEBYSCORE', 'domains:schedule', '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])\n"
        "local out = {}\n"
        "for _, dom in ipairs(d) do\n"
        "  redis.call('ZADD', 'domains:schedule', ARGV[2], dom)\n"
        "  local m = redis.call('HMGET', 'domain:' .. dom, 'frontier_offset', 'frontier_size')\n"
        "  out[#out+1] = dom; out[#out+1] = m[1] or '0'; out[#out+1] = m[2] or '0'\n"
        "end\n"
        "return out\n",
    [SCRIPT_CLAIM_URL] =
        "redis.call('HSET', 'domain:' .. ARGV[1], 'frontier_offset', ARGV[4])\n"
        "if redis.call('HSETNX', 'fetched:urls', ARGV[2], ARGV[3]) == 1 then return 1 end\n"
        "if redis.call('HGET', 'fetched:urls', ARGV[2]) == ARGV[3] then return 1 end\n"
        "return 0\n",
    [SCRIPT_COMPLETE] =
        "if #ARGV[4] > 0 then redis.call('LPUSH', 'fetch:queue', ARGV[4]) end\n"
        "local key = 'domain:' .. ARGV[1]\n"
        "redis.call('HSET', key, 'frontier_offset', ARGV[2], 'next_fetch', ARGV[3])\n"
        "local size = tonumber(redis.call('HGET', key, 'frontier_size') or '0')\n"
        "if size > tonumber(ARGV[2]) then redis.call('ZADD', 'domains:schedule', ARGV[3], ARGV[1])\n"
        "else redis.call('ZREM', 'domains:schedule', ARGV[1]) end\n"
        "return 1\n",
    [SCRIPT_DISCOVER] =
        "local i = 2\n"
        "while i <= #ARGV do\n"
        "  local dom, n = ARGV[i], tonumber(ARGV[i + 2])\n"
        "  local key = 'domain:' .. dom\n"
        "  if n > 0 then redis.call('SADD', 'seen:urls', unpack(ARGV, i + 3, i + 2 + n)) end\n"
        "  local size = tonumber(redis.call('HGET', key, 'frontier_size') or '0')\n"
        "  if tonumber(ARGV[i + 1]) > size then redis.call('HSET', key, 'frontier_size', ARGV[i + 1]) end\n"
        "  local due = math.max(tonumber(ARGV[1]), tonumber(redis.call('HGET', key, 'next_fetch') or '0'))\n"
        "  redis.call('ZADD', 'domains:schedule', 'NX', due, dom)\n"
        "  i = i + 3 + n\n"
        "end\n"
        "return 1\n",
    [SCRIPT_RECOVER] =
        "local d = redis.call('ZRANGEBYSCORE', 'domains:schedule', '(' .. ARGV[1], '+inf')\n"
        "local keep = {}\n"
        "for i = 3, #ARGV do keep[ARGV[i]] = true end\n"
        "local n = 0\n"
        "for _, dom in ipairs(d) do\n"
        "  if not keep[dom] then redis.call('ZADD', 'domains:schedule', ARGV[2], dom); n = n + 1 end\n"
        "end\n"
        "return n\n",
    [SCRIPT_PENDING] =
        "local p = 0\n"
        "for i = 0, tonumber(ARGV[1]) - 1 do p = p + redis.call('LLEN', 'fetch:processing:' .. i) end\n"
        "return {redis.call('ZCARD', 'domains:schedule'), redis.call('LLEN', 'fetch:queue'), p}\n",
    [SCRIPT_PARSED] =
        "redis.call('DEL', ARGV[1])\n"
        "return redis.call('INCR', 'stats:pages_parsed')\n",
};

int store_open(struct store *s, const char *host, int port, int pool_size, int retry_ms) {
    memset(s, 0, sizeof(*s));
    s->pool = redis_pool_create(host, port, pool_size, retry_ms);
    s->retry_ms = retry_ms;
    return s->pool ? 0 : -1;
}

void store_close(struct store *s) {
    redis_pool_destroy(s->pool);
    s->pool = NULL;
}

static int64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One attempt of a command already in Redis protocol: NULL when the
 * connection failed (it is then released as broken). */
static redisReply *store_try(struct store *s, const char *cmd, size_t len) {
    redisContext *c = redis_pool_acquire(s->pool, s->last_error, sizeof(s->last_error));
    if (!c) return NULL;
    void *reply = NULL;
    if (redisAppendFormattedCommand(c, cmd, len) != REDIS_OK || redisGetReply(c, &reply) != REDIS_OK) {
        snprintf(s->last_error, sizeof(s->last_error), "Redis: %s", c->errstr[0] ? c->errstr : "no reply");
        redis_pool_release(s->pool, c, 1);
        return NULL;
    }
    redis_pool_release(s->pool, c, 0);
    return reply;
}

/* Send a formatted command until it gets a reply or retry_ms have passed. */
static redisReply *store_send(struct store *s, const char *cmd, size_t len) {
    if (s->failed) return NULL;
    int64_t deadline = monotonic_ms() + s->retry_ms;
    int backoff_ms = 50;
    for (;;) {
        redisReply *reply = store_try(s, cmd, len);
        if (reply) return reply;
        s->errors++;
        if (monotonic_ms() >= deadline) {
            s->failed = 1;
            return NULL;
        }
        usleep((useconds_t)backoff_ms * 1000);
        if (backoff_ms < 1000) backoff_ms *= 2;
    }
}

redisReply *store_command_argv(struct store *s, int argc, const char **argv, const size_t *lens) {
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0) return NULL;
    redisReply *reply = store_send(s, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return reply;
}

redisReply *store_command(struct store *s, const char *fmt, ...) {
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0) return NULL;
    redisReply *reply = store_send(s, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return reply;
}

/* SCRIPT LOAD a script and remember its SHA1. Returns 0 or -1. */
static int store_load_script(struct store *s, enum script_id id) {
    redisReply *r = store_command(s, "SCRIPT LOAD %s", script_text[id]);
    int ok = r && r->type == REDIS_REPLY_STRING && r->len == 40;
    if (ok) memcpy(s->script_sha[id], r->str, 41);
    else if (r) snprintf(s->last_error, sizeof(s->last_error), "SCRIPT LOAD: %s", r->str ? r->str : "?");
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}

/* EVALSHA a script, loading it first when this process has not, or when
 * Redis lost it (NOSCRIPT after a restart). */
static redisReply *store_eval(struct store *s, enum script_id id, int argc, const char **args, const size_t *lens) {
    const char *argv[argc + 3];
    size_t alens[argc + 3];
    argv[0] = "EVALSHA";
    alens[0] = 7;
    argv[2] = "0";
    alens[2] = 1;
    for (int i = 0; i < argc; i++) {
        argv[i + 3] = args[i];
        alens[i + 3] = lens ? lens[i] : strlen(args[i]);
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!s->script_sha[id][0] && store_load_script(s, id) != 0) return NULL;
        argv[1] = s->script_sha[id];
        alens[1] = 40;
        redisReply *reply = store_command_argv(s, argc + 3, argv, alens);
        if (!reply) return NULL;
        if (reply->type != REDIS_REPLY_ERROR) return reply;
        snprintf(s->last_error, sizeof(s->last_error), "Redis script: %s", reply->str);
        int lost = strncmp(reply->str, "NOSCRIPT", 8) == 0;
        freeReplyObject(reply);
        if (!lost) return NULL;
        s->script_sha[id][0] = '\0';
    }
    return NULL;
}

int store_reset(struct store *s) {
    static const char *patterns[] = {"domain:*", "domains:*", "seen:*", "fetched:*", "fetch:*", "stats:*"};
    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
        char cursor[32] = "0";
        do {
            redisReply *r = store_command(s, "SCAN %s MATCH %s COUNT 1000", cursor, patterns[i]);
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                if (r) freeReplyObject(r);
                return -1;
            }
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            redisReply *keys = r->element[1];
            for (size_t k = 0; k < keys->elements; k++) {
                redisReply *d = store_command(s, "UNLINK %b", keys->element[k]->str, keys->element[k]->len);
                if (!d) {
                    freeReplyObject(r);
                    return -1;
                }
                freeReplyObject(d);
            }
            freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
    }
    return 0;
}

long store_claim_domains(struct store *s, int64_t now_ms, int64_t lease_ms, int max, char **domains,
                         uint64_t *offsets, uint64_t *sizes) {
    char now[24], lease[24], count[16];
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(lease, sizeof(lease), "%lld", (long long)lease_ms);
    snprintf(count, sizeof(count), "%d", max);
    const char *args[] = {now, lease, count};
    redisReply *r = store_eval(s, SCRIPT_CLAIM_DOMAINS, 3, args, NULL);
    if (!r) return -1;
    long n = 0;
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 2 < r->elements + 0 && n < max; i += 3) {
            domains[n] = strdup(r->element[i]->str);
            offsets[n] = strtoull(r->element[i + 1]->str, NULL, 10);
            sizes[n] = strtoull(r->element[i + 2]->str, NULL, 10);
            n++;
        }
    }
    freeReplyObject(r);
    return n;
}

int store_claim_url(struct store *s, const char *domain, const char *url, const char *token, uint64_t offset) {
    char off[24];
    snprintf(off, sizeof(off), "%llu", (unsigned long long)offset);
    const char *args[] = {domain, url, token, off};
    redisReply *r = store_eval(s, SCRIPT_CLAIM_URL, 4, args, NULL);
    if (!r) return -1;
    int claimed = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return claimed;
}

int store_complete(struct store *s, const char *domain, uint64_t offset, int64_t when_ms, const char *page,
                   size_t page_len) {
    char off[24], when[24];
    snprintf(off, sizeof(off), "%llu", (unsigned long long)offset);
    snprintf(when, sizeof(when), "%lld", (long long)when_ms);
    const char *args[] = {domain, off, when, page ? page : ""};
    size_t lens[] = {strlen(domain), strlen(off), strlen(when), page ? page_len : 0};
    redisReply *r = store_eval(s, SCRIPT_COMPLETE, 4, args, lens);
    if (!r) return -1;
    freeReplyObject(r);
    return 0;
}

int store_discover(struct store *s, int64_t now_ms, const struct discovered *d, size_t n) {
    size_t argc = 1;
    for (size_t i = 0; i < n; i++) argc += 3 + d[i].count;
    const char **args = malloc(argc * sizeof(char *));
    char (*numbers)[24] = malloc((2 * n + 1) * sizeof(*numbers));
    int rc = -1;
    if (!args || !numbers) goto out;
    snprintf(numbers[0], sizeof(numbers[0]), "%lld", (long long)now_ms);
    args[0] = numbers[0];
    size_t k = 1;
    for (size_t i = 0; i < n; i++) {
        snprintf(numbers[2 * i + 1], sizeof(numbers[0]), "%llu", (unsigned long long)d[i].end);
        snprintf(numbers[2 * i + 2], sizeof(numbers[0]), "%zu", d[i].count);
        args[k++] = d[i].domain;
        args[k++] = numbers[2 * i + 1];
        args[k++] = numbers[2 * i + 2];
        for (size_t u = 0; u < d[i].count; u++) args[k++] = d[i].urls[u];
    }
    redisReply *r = store_eval(s, SCRIPT_DISCOVER, (int)argc, args, NULL);
    if (r) {
        freeReplyObject(r);
        rc = 0;
    }
out:
    free(args);
    free(numbers);
    return rc;
}

long store_recover_leases(struct store *s, int64_t threshold_ms, int64_t now_ms, const char **keep, size_t nkeep) {
    char threshold[24], now[24];
    snprintf(threshold, sizeof(threshold), "%lld", (long long)threshold_ms);
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    const char **args = malloc((nkeep + 2) * sizeof(char *));
    if (!args) return -1;
    args[0] = threshold;
    args[1] = now;
    for (size_t i = 0; i < nkeep; i++) args[i + 2] = keep[i];
    redisReply *r = store_eval(s, SCRIPT_RECOVER, (int)nkeep + 2, args, NULL);
    free(args);
    if (!r) return -1;
    long n = r->type == REDIS_REPLY_INTEGER ? (long)r->integer : 0;
    freeReplyObject(r);
    return n;
}

int store_pending(struct store *s, int parsers, long *scheduled, long *queued, long *processing) {
    char n[16];
    snprintf(n, sizeof(n), "%d", parsers);
    const char *args[] = {n};
    redisReply *r = store_eval(s, SCRIPT_PENDING, 1, args, NULL);
    if (!r) return -1;
    int ok = r->type == REDIS_REPLY_ARRAY && r->elements == 3;
    if (ok) {
        *scheduled = (long)r->element[0]->integer;
        *queued = (long)r->element[1]->integer;
        *processing = (long)r->element[2]->integer;
    }
    freeReplyObject(r);
    return ok ? 0 : -1;
}

int store_robots_save(struct store *s, const char *domain, int status, const char *text, size_t len) {
    redisReply *r = store_command(s, "HSET domain:%s robots_status %d robots %b", domain, status, text ? text : "",
                                  text ? len : 0);
    if (!r) return -1;
    freeReplyObject(r);
    return 0;
}

int store_robots_load(struct store *s, const char *domain, int *status, char **text, size_t *len) {
    redisReply *r = store_command(s, "HMGET domain:%s robots_status robots", domain);
    if (!r) return -1;
    int found = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING) {
        *status = atoi(r->element[0]->str);
        const redisReply *t = r->element[1];
        *len = t->type == REDIS_REPLY_STRING ? t->len : 0;
        *text = malloc(*len + 1);
        if (*text) {
            if (*len) memcpy(*text, t->str, *len);
            (*text)[*len] = '\0';
            found = 1;
        }
    }
    freeReplyObject(r);
    return found;
}

long store_fetch_queue_length(struct store *s) {
    if (inject_mode != INJECT_REDIS_POOL_GROWTH) {
        redisReply *r = store_command(s, "LLEN " STORE_FETCH_QUEUE);
        if (!r) return -1;
        long n = r->type == REDIS_REPLY_INTEGER ? (long)r->integer : -1;
        freeReplyObject(r);
        return n;
    }
    /* INJECT_REDIS_POOL_GROWTH: the sample is taken as a cancellable task
     * would, and its connection is abandoned instead of released. */
    redisContext *c = redis_pool_acquire(s->pool, s->last_error, sizeof(s->last_error));
    if (!c) return -1;
    redisReply *r = redisCommand(c, "LLEN " STORE_FETCH_QUEUE);
    long n = r && r->type == REDIS_REPLY_INTEGER ? (long)r->integer : -1;
    if (r) freeReplyObject(r);
    redis_pool_abandon(s->pool, c);
    return n;
}

int store_page_parsed(struct store *s, const char *processing) {
    const char *args[] = {processing};
    redisReply *r = store_eval(s, SCRIPT_PARSED, 1, args, NULL);
    if (!r) return -1;
    freeReplyObject(r);
    return 0;
}

long store_counter(struct store *s, const char *key) {
    redisReply *r = store_command(s, "GET %s", key);
    if (!r) return -1;
    long n = r->type == REDIS_REPLY_STRING ? atol(r->str) : 0;
    freeReplyObject(r);
    return n;
}

/* fetcher.c - the fetcher's event loop.
 *
 * One thread drives every transfer through libcurl's multi interface. Each
 * turn of the loop claims due domains from Redis (each domain is leased to
 * one transfer at a time, which is what makes the per-domain delay hold),
 * picks each one's next allowed URL from its frontier file, and starts the
 * transfer; finished transfers push their page to fetch:queue and put the
 * domain back in the schedule at finish time + delay. A redirect is not
 * followed: its target goes to the parsers like any discovered link. */
#include "fetcher.h"
#include "domains.h"
#include "frontier.h"
#include "inject.h"
#include "log.h"
#include "metrics.h"
#include "parser.h"
#include "parsers.h"
#include "url.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t fetcher_stop_requested;
volatile sig_atomic_t fetcher_reopen_log;

/* The functions that open HTTP sockets, allocate page buffers and handles,
 * or leak them under --inject are global and never inlined, so that they
 * appear by name in the call stacks leakscope records (the executable
 * exports its symbols). */
#define CALL_SITE __attribute__((noinline))

#define LEASE_MS (3600 * 1000)  /* a claimed domain's score while it is fetched */
#define CLAIM_BATCH 128          /* domains claimed per round trip */
#define FRONTIER_BATCH 16384     /* bytes read from a frontier per domain turn */
#define ROBOTS_MAX_BYTES (512 * 1024)

struct transfer {
    CURL *easy;
    struct domain *domain;
    char *url;
    int hops;              /* redirect hops that led to this URL */
    int is_robots;
    uint64_t next_offset;  /* the domain's frontier offset once this is done */
    int body_decided;      /* first write seen: status and type known */
    int keep_body;         /* body is wanted (2xx HTML, or robots.txt) */
    int binary;
    size_t received;
    size_t limit;          /* --max-page-bytes, or the robots.txt cap */
    int too_large;
    char *body;
    size_t len, cap;
    char error[CURL_ERROR_SIZE];
    struct transfer *prev, *next; /* the fetcher's list of transfers in flight */
};

/* A page buffer kept after its push (--inject retain-pages). */
struct retained_page {
    char *url;
    char *body;
    size_t len;
    struct retained_page *next;
};

struct fetcher {
    const struct crawler_config *cfg;
    struct store *store;
    struct crawl_stats *stats;
    CURLM *multi;
    struct curl_slist *connect_to;
    struct domains domains;
    long max_active;
    long pages_started;
    char run_token[64];
    long claim_seq;
    int64_t next_claim_ms;   /* do not ask Redis for due domains before this */
    int paused;              /* backpressure: fetch:queue too long */
    long redis_errors_seen;  /* store->errors when leases were last checked */
    struct transfer *in_flight;
    struct retained_page *retained; /* the "error context" of retain-pages; never freed */
};

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CURLOPT_OPENSOCKETFUNCTION: count HTTP sockets and EMFILE failures. */
CALL_SITE curl_socket_t fetch_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr) {
    struct crawl_stats *stats = clientp;
    (void)purpose;
    int fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) stats->http_socket_emfile++;
        return CURL_SOCKET_BAD;
    }
    if (++stats->http_sockets_open > stats->http_sockets_peak) stats->http_sockets_peak = stats->http_sockets_open;
    return fd;
}

CALL_SITE int fetch_close_socket(void *clientp, curl_socket_t fd) {
    struct crawl_stats *stats = clientp;
    stats->http_sockets_open--;
    return close(fd);
}

static int is_html_type(const char *type) {
    if (!type) return 1; /* no Content-Type: look at it */
    return strncasecmp(type, "text/html", 9) == 0 || strncasecmp(type, "application/xhtml+xml", 21) == 0;
}

/* Make room for n more body bytes. */
CALL_SITE int fetch_page_buffer_grow(struct transfer *t, size_t n) {
    if (t->len + n <= t->cap) return 0;
    size_t cap = t->cap ? t->cap : 32768;
    while (cap < t->len + n) cap *= 2;
    char *body = realloc(t->body, cap);
    if (!body) return -1;
    t->body = body;
    t->cap = cap;
    return 0;
}

/* CURLOPT_WRITEFUNCTION: keep the bodies worth parsing, count the rest,
 * and abort at --max-page-bytes. */
CALL_SITE size_t fetch_write_body(char *data, size_t size, size_t nmemb, void *userp) {
    struct transfer *t = userp;
    size_t n = size * nmemb;
    if (!t->body_decided) {
        long code = 0;
        char *type = NULL;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &type);
        t->keep_body = code >= 200 && code < 300 && (t->is_robots || is_html_type(type));
        t->binary = code >= 200 && code < 300 && !t->keep_body;
        if (t->keep_body && !t->is_robots && memchr(data, '\0', n < 1024 ? n : 1024)) {
            t->keep_body = 0;
            t->binary = 1;
        }
        t->body_decided = 1;
    }
    t->received += n;
    if (t->received > t->limit) {
        t->too_large = 1;
        return 0;
    }
    if (t->keep_body) {
        if (fetch_page_buffer_grow(t, n) != 0) return 0;
        memcpy(t->body + t->len, data, n);
        t->len += n;
    }
    return n;
}

/* --inject retain-pages: the seed 000 bug. The page was pushed to
 * fetch:queue, but its buffer is also kept in an "error context" list that
 * nothing ever trims, so page buffers accumulate. */
CALL_SITE void fetch_retain_page_context(struct fetcher *f, struct transfer *t) {
    struct retained_page *p = malloc(sizeof(*p));
    if (!p) return;
    p->url = strdup(t->url);
    p->body = t->body;
    p->len = t->len;
    p->next = f->retained;
    f->retained = p;
    f->stats->retained_pages++;
    f->stats->retained_page_bytes += (long)t->len;
    t->body = NULL;
}

static void fetch_unlink(struct fetcher *f, struct transfer *t) {
    if (t->prev) t->prev->next = t->next;
    else f->in_flight = t->next;
    if (t->next) t->next->prev = t->prev;
    f->stats->active_transfers--;
}

static void transfer_free(struct transfer *t) {
    free(t->url);
    free(t->body);
    free(t);
}

CALL_SITE int fetch_start_transfer(struct fetcher *f, struct domain *d, const char *url, int hops, int is_robots,
                                uint64_t next_offset) {
    const struct crawler_config *cfg = f->cfg;
    struct transfer *t = calloc(1, sizeof(*t));
    if (!t) return -1;
    t->url = strdup(url);
    t->domain = d;
    t->hops = hops;
    t->is_robots = is_robots;
    t->next_offset = next_offset;
    t->limit = is_robots ? ROBOTS_MAX_BYTES : (size_t)cfg->max_page_bytes;
    t->easy = curl_easy_init();
    if (!t->url || !t->easy) {
        if (t->easy) curl_easy_cleanup(t->easy);
        transfer_free(t);
        return -1;
    }
    f->stats->curl_easy_alive++;
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, t->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fetch_write_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(e, CURLOPT_USERAGENT, CRAWLER_USER_AGENT);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(cfg->timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(cfg->connect_timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->limit);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, fetch_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, f->stats);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, fetch_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, f->stats);
    if (f->connect_to) curl_easy_setopt(e, CURLOPT_CONNECT_TO, f->connect_to);
    if (curl_multi_add_handle(f->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        f->stats->curl_easy_alive--;
        transfer_free(t);
        return -1;
    }
    t->next = f->in_flight;
    if (t->next) t->next->prev = t;
    f->in_flight = t;
    f->stats->active_transfers++;
    if (!is_robots) f->pages_started++;
    return 0;
}

/* Rules of d from its robots.txt answer (status 0: the transfer failed);
 * a Crawl-delay above --delay becomes the domain's delay. */
static void fetch_set_robots(struct domain *d, int status, const char *text, size_t len) {
    d->robots = status >= 200 && status < 300 ? robots_parse(text, len, CRAWLER_ROBOTS_AGENT)
                                              : robots_for_status(status);
    if (d->robots && d->robots->crawl_delay * 1000 > d->delay_ms) d->delay_ms = (int64_t)(d->robots->crawl_delay * 1000);
}

/* Load robots rules for d from Redis, or start fetching robots.txt.
 * Returns 1 when rules are known, 0 when a fetch was started, -1 on error. */
static int fetch_robots(struct fetcher *f, struct domain *d, uint64_t offset) {
    int status;
    char *text;
    size_t len;
    int found = store_robots_load(f->store, d->name, &status, &text, &len);
    if (found < 0) return -1;
    if (found) {
        fetch_set_robots(d, status, text, len);
        free(text);
        return d->robots ? 1 : -1;
    }
    char url[URL_MAX_LEN];
    snprintf(url, sizeof(url), "http://%s/robots.txt", d->name);
    return fetch_start_transfer(f, d, url, 0, 1, offset) == 0 ? 0 : -1;
}

/* One turn of a claimed domain: start the transfer of its next allowed,
 * not yet fetched URL, or give the domain back to the schedule. */
static void fetch_domain_turn(struct fetcher *f, const char *name, uint64_t offset, uint64_t size) {
    const struct crawler_config *cfg = f->cfg;
    struct domain *d = domains_get(&f->domains, name, (int64_t)(cfg->delay_s * 1000));
    if (!d) return;
    if (!d->robots) {
        int known = fetch_robots(f, d, offset);
        if (known == 0) return;
        if (known < 0) {
            store_complete(f->store, name, offset, wall_ms() + 1000, NULL, 0);
            return;
        }
    }
    static char buf[FRONTIER_BATCH + 1];
    int reads = 0;
    while (offset < size && reads++ < 8 && f->pages_started < (cfg->max_pages ? cfg->max_pages : LONG_MAX)) {
        long n = frontier_read_batch(cfg->data_dir, name, offset, size, buf, FRONTIER_BATCH);
        if (n < 0) {
            log_msg("frontier of %s unreadable at %llu: %s", name, (unsigned long long)offset, strerror(errno));
            store_complete(f->store, name, offset, wall_ms() + 1000, NULL, 0);
            return;
        }
        if (n == 0) break;
        buf[n] = '\0';
        char *line = buf;
        while (line < buf + n) {
            char *nl = strchr(line, '\n');
            *nl = '\0';
            uint64_t line_end = offset + (uint64_t)(nl + 1 - line);
            const char *url;
            int hops;
            frontier_parse_line(line, &url, &hops);
            char url_dom[256];
            int valid = url_domain(url, url_dom, sizeof(url_dom)) == 0 && strcmp(url_dom, name) == 0;
            if (!valid) {
                log_msg("skipping malformed frontier line of %s at %llu", name, (unsigned long long)offset);
            } else if (!robots_allowed(d->robots, url_path(url))) {
                f->stats->robots_disallowed++;
            } else {
                char token[96];
                snprintf(token, sizeof(token), "%s:%ld", f->run_token, ++f->claim_seq);
                int claimed = store_claim_url(f->store, name, url, token, line_end);
                if (claimed < 0) return;
                if (claimed) {
                    if (fetch_start_transfer(f, d, url, hops, 0, line_end) == 0) return;
                    log_msg("cannot start a transfer for %s", url);
                } else {
                    f->stats->duplicates_skipped++;
                }
            }
            offset = line_end;
            line = nl + 1;
        }
    }
    /* Nothing started: the domain is due again now if it has more. */
    store_complete(f->store, name, offset, wall_ms(), NULL, 0);
}

/* Build the fetch:queue record for a finished transfer, or NULL. */
static char *fetch_page_record(struct fetcher *f, struct transfer *t, long code, size_t *len) {
    char header[URL_MAX_LEN + 64];
    const char *body = NULL;
    size_t body_len = 0;
    int hlen;
    char *location = NULL;
    if (code >= 300 && code < 400) {
        curl_easy_getinfo(t->easy, CURLINFO_REDIRECT_URL, &location);
        if (!location) return NULL;
        if (t->hops + 1 > f->cfg->max_redirects) {
            f->stats->redirects_dropped++;
            return NULL;
        }
        f->stats->redirects++;
        hlen = snprintf(header, sizeof(header), "%s\t%c\t%d\n", t->url, PAGE_KIND_REDIRECT, t->hops + 1);
        body = location;
        body_len = strlen(location);
    } else if (code >= 200 && code < 300 && t->keep_body && t->len > 0) {
        hlen = snprintf(header, sizeof(header), "%s\t%c\t0\n", t->url, PAGE_KIND_PAGE);
        body = t->body;
        body_len = t->len;
    } else {
        return NULL;
    }
    char *rec = malloc((size_t)hlen + body_len);
    if (!rec) return NULL;
    memcpy(rec, header, (size_t)hlen);
    memcpy(rec + hlen, body, body_len);
    *len = (size_t)hlen + body_len;
    return rec;
}

static void fetch_robots_done(struct fetcher *f, struct transfer *t, CURLcode result, long code) {
    struct domain *d = t->domain;
    int status = result == CURLE_OK ? (int)code : 0;
    f->stats->robots_fetched++;
    if (result != CURLE_OK)
        log_msg("robots.txt of %s failed (%s): not crawling the host", d->name,
                t->error[0] ? t->error : curl_easy_strerror(result));
    else if (code >= 500)
        log_msg("robots.txt of %s answered %ld: not crawling the host", d->name, code);
    if (store_robots_save(f->store, d->name, status, t->body, t->len) != 0) return;
    fetch_set_robots(d, status, t->body ? t->body : "", t->len);
    store_complete(f->store, d->name, t->next_offset, wall_ms() + d->delay_ms, NULL, 0);
}

static void fetch_page_done(struct fetcher *f, struct transfer *t, CURLcode result, long code) {
    struct crawl_stats *st = f->stats;
    st->pages_fetched++;
    st->bytes_fetched += (long)t->received;
    if (result != CURLE_OK) {
        st->errors++;
        if (t->too_large || result == CURLE_FILESIZE_EXCEEDED) st->too_large++;
        else st->transport_errors++;
        log_msg("fetch %s failed: %s", t->url, t->error[0] ? t->error : curl_easy_strerror(result));
    } else if (code >= 400) {
        st->errors++;
        if (code < 500) st->http_4xx++;
        else st->http_5xx++;
    } else if (t->binary) {
        st->not_html++;
    }
    size_t len = 0;
    char *rec = result == CURLE_OK ? fetch_page_record(f, t, code, &len) : NULL;
    int64_t due = wall_ms() + t->domain->delay_ms;
    if (store_complete(f->store, t->domain->name, t->next_offset, due, rec, len) == 0 && rec) st->pages_queued++;
    free(rec);
    if (inject_mode == INJECT_RETAIN_PAGES && t->body) fetch_retain_page_context(f, t);
}

/* A transfer ended: record it, then release (or, injected, leak) its handle. */
CALL_SITE void fetch_transfer_done(struct fetcher *f, CURL *easy, CURLcode result) {
    struct transfer *t;
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    if (t->is_robots) fetch_robots_done(f, t, result, code);
    else fetch_page_done(f, t, result, code);
    curl_multi_remove_handle(f->multi, easy);
    fetch_unlink(f, t);
    int failed = result != CURLE_OK || code >= 400;
    if (failed && inject_mode == INJECT_CURL_HANDLE) {
        /* --inject curl-handle: the failure path forgets curl_easy_cleanup. */
    } else {
        curl_easy_cleanup(easy);
        f->stats->curl_easy_alive--;
    }
    transfer_free(t);
}

/* Claim due domains and start their transfers, within the worker bound. */
static void fetch_schedule(struct fetcher *f) {
    const struct crawler_config *cfg = f->cfg;
    int64_t now = wall_ms();
    long slots = f->max_active - f->stats->active_transfers;
    if (slots <= 0 || f->paused || now < f->next_claim_ms) return;
    if (cfg->max_pages && f->pages_started >= cfg->max_pages) return;
    char *domains[CLAIM_BATCH];
    uint64_t offsets[CLAIM_BATCH], sizes[CLAIM_BATCH];
    int want = slots < CLAIM_BATCH ? (int)slots : CLAIM_BATCH;
    long n = store_claim_domains(f->store, now, now + LEASE_MS, want, domains, offsets, sizes);
    if (n <= 0) {
        f->next_claim_ms = now + 10;
        return;
    }
    for (long i = 0; i < n; i++) {
        fetch_domain_turn(f, domains[i], offsets[i], sizes[i]);
        free(domains[i]);
    }
}

/* Sample fetch:queue and pause fetching above --queue-high until it has
 * drained to half of that. */
static void fetch_backpressure(struct fetcher *f) {
    long len = store_fetch_queue_length(f->store);
    if (len < 0) return;
    f->stats->fetch_queue_length = len;
    if (!f->paused && len >= f->cfg->queue_high) {
        f->paused = 1;
        f->stats->backpressure_pauses++;
    } else if (f->paused && len <= f->cfg->queue_high / 2) {
        f->paused = 0;
    }
}

/* Redis failed and recovered: a claim whose reply was lost left domains
 * leased to no transfer. Give back every lease but those in flight. */
static void fetch_recover_leases(struct fetcher *f) {
    if (f->store->errors == f->redis_errors_seen) return;
    f->redis_errors_seen = f->store->errors;
    const char **keep = malloc(((size_t)f->stats->active_transfers + 1) * sizeof(char *));
    if (!keep) return;
    size_t n = 0;
    for (struct transfer *t = f->in_flight; t; t = t->next) keep[n++] = t->domain->name;
    int64_t now = wall_ms();
    long given = store_recover_leases(f->store, now + LEASE_MS / 2, now, keep, n);
    free(keep);
    if (given > 0) log_msg("after a Redis failure: %ld leased domains given back", given);
}

/* Sample the crawl's queues (for the counters) and tell whether it is
 * over: nothing in flight, nothing queued or being parsed, and nothing
 * scheduled (or --max-pages reached). */
static int fetch_finished(struct fetcher *f) {
    long scheduled, queued, processing;
    if (store_pending(f->store, f->cfg->parsers, &scheduled, &queued, &processing) != 0) return 0;
    f->stats->scheduled_domains = scheduled;
    f->stats->pages_processing = processing;
    if (f->stats->active_transfers > 0) return 0;
    int limit_reached = f->cfg->max_pages && f->pages_started >= f->cfg->max_pages;
    return queued == 0 && processing == 0 && (scheduled == 0 || limit_reached);
}

static void fetch_update_stats(struct fetcher *f, double start) {
    struct crawl_stats *st = f->stats;
    st->elapsed_s = mono_s() - start;
    st->pool = redis_pool_counts(f->store->pool);
    st->frontier_files_open = frontier_files_open;
    st->frontier_open_errors = frontier_open_errors;
    st->frontier_open_emfile = frontier_open_emfile;
    st->redis_errors = f->store->errors;
    st->fds_open = stats_count_fds();
    st->rss_kb = stats_rss_kb();
    st->heap_live_bytes = stats_heap_live_bytes();
}

static int fetch_setup(struct fetcher *f) {
    const struct crawler_config *cfg = f->cfg;
    if (domains_init(&f->domains) != 0) return -1;
    f->multi = curl_multi_init();
    if (!f->multi) return -1;
    if (inject_mode == INJECT_HTTP_UNBOUNDED) {
        /* --inject http-unbounded: seed 002's client, no limit anywhere. */
        f->max_active = LONG_MAX;
        curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, 1000000L);
    } else {
        f->max_active = cfg->workers;
        curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, (long)cfg->workers);
        curl_multi_setopt(f->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)cfg->workers);
    }
    if (cfg->connect_to[0]) {
        char spec[320];
        snprintf(spec, sizeof(spec), "::%s", cfg->connect_to);
        f->connect_to = curl_slist_append(NULL, spec);
    }
    snprintf(f->run_token, sizeof(f->run_token), "%d.%lld", (int)getpid(), (long long)wall_ms());
    return 0;
}

static void fetch_teardown(struct fetcher *f) {
    /* Only a stop after Redis was lost leaves transfers; their URLs stay
     * claimed in Redis, so name them in the log. */
    while (f->in_flight) {
        struct transfer *t = f->in_flight;
        log_msg("abandoned in flight: %s", t->url);
        curl_multi_remove_handle(f->multi, t->easy);
        curl_easy_cleanup(t->easy);
        f->stats->curl_easy_alive--;
        fetch_unlink(f, t);
        transfer_free(t);
    }
    curl_multi_cleanup(f->multi);
    curl_slist_free_all(f->connect_to);
    domains_free(&f->domains);
}

int fetcher_run(const struct crawler_config *cfg, struct store *store, struct crawl_stats *stats) {
    struct fetcher f;
    memset(&f, 0, sizeof(f));
    f.cfg = cfg;
    f.store = store;
    f.stats = stats;
    if (fetch_setup(&f) != 0) {
        log_msg("cannot set up libcurl");
        return 1;
    }
    double start = mono_s();
    double next_tick = 0, next_status = start + cfg->status_interval_s;
    long last_fetched = 0;
    double last_status = start;
    int stopping = 0, finished = 0;
    while (!finished) {
        double now = mono_s();
        if (!stopping && (fetcher_stop_requested || (cfg->duration_s > 0 && now - start >= cfg->duration_s))) {
            stopping = 1;
            log_msg("stopping: %s; waiting for %ld transfers", fetcher_stop_requested ? "signal" : "--duration",
                    stats->active_transfers);
        }
        if (store->failed) break;
        if (!stopping) fetch_schedule(&f);
        int running;
        curl_multi_perform(f.multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(f.multi, &left)))
            if (msg->msg == CURLMSG_DONE) fetch_transfer_done(&f, msg->easy_handle, msg->data.result);

        if (now >= next_tick) {
            next_tick = now + 0.25;
            if (fetcher_reopen_log) {
                fetcher_reopen_log = 0;
                log_reopen();
                parsers_signal(SIGHUP);
            }
            if (!stopping) stats->parser_restarts += parsers_check(cfg);
            fetch_recover_leases(&f);
            fetch_backpressure(&f);
            int over = fetch_finished(&f);
            fetch_update_stats(&f, start);
            metrics_publish(stats);
            if (stopping && stats->active_transfers == 0) break;
            if (!stopping && over) {
                log_msg("nothing left to crawl");
                finished = 1;
            }
        }
        if (now >= next_status) {
            stats->pages_parsed = store_counter(store, "stats:pages_parsed");
            char line[512];
            stats_status_line(stats, (stats->pages_fetched - last_fetched) / (now - last_status), line, sizeof(line));
            log_msg("%s", line);
            last_fetched = stats->pages_fetched;
            last_status = now;
            next_status = now + cfg->status_interval_s;
        }
        if (!finished) curl_multi_poll(f.multi, NULL, 0, stats->active_transfers ? 50 : 10, NULL);
    }
    if (store->failed) log_msg("stopping: Redis unreachable for %ds (%s)", cfg->redis_retry_s, store->last_error);
    fetch_teardown(&f);
    fetch_update_stats(&f, start);
    return store->failed ? 2 : 0;
}

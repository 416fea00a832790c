/* parser.c - parser processes.
 *
 * Each parser moves one page at a time from fetch:queue to its own
 * fetch:processing:<id> list (BLMOVE), so a parser that dies mid-page loses
 * nothing: its replacement (same id) moves the page back first. Pages are
 * parsed with links.c and their new links added with discover.c. */
#include "parser.h"
#include "discover.h"
#include "links.h"
#include "log.h"
#include "store.h"
#include "url.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t parser_stop;
static volatile sig_atomic_t parser_hup;

static void parser_on_signal(int sig) {
    if (sig == SIGHUP) parser_hup = 1;
    else parser_stop = 1;
}

/* Extract the links of one record and add the new ones. Returns 0 or -1. */
static int parser_process(struct store *s, const struct crawler_config *cfg, const char *rec, size_t len) {
    const char *nl = memchr(rec, '\n', len);
    if (!nl) return 0;
    char header[URL_MAX_LEN + 64];
    size_t hlen = (size_t)(nl - rec);
    if (hlen >= sizeof(header)) return 0;
    memcpy(header, rec, hlen);
    header[hlen] = '\0';
    char *kind = strchr(header, '\t');
    if (!kind) return 0;
    *kind++ = '\0';
    char *hops_field = strchr(kind, '\t');
    int hops = hops_field ? atoi(hops_field + 1) : 0;
    const char *body = nl + 1;
    size_t body_len = len - hlen - 1;

    struct links links = {0};
    int *hops_of = NULL;
    long rc = 0;
    if (kind[0] == PAGE_KIND_PAGE) {
        rc = links_extract(body, body_len, header, &links);
    } else if (kind[0] == PAGE_KIND_REDIRECT) {
        char *target = strndup(body, body_len);
        char *url = target ? url_normalize(header, target) : NULL;
        free(target);
        if (url) {
            links.urls = malloc(sizeof(char *));
            if (links.urls) {
                links.urls[0] = url;
                links.count = links.cap = 1;
            } else {
                free(url);
            }
        }
    }
    if (rc >= 0 && links.count > 0) {
        hops_of = calloc(links.count, sizeof(int));
        if (hops_of) {
            for (size_t i = 0; i < links.count; i++) hops_of[i] = kind[0] == PAGE_KIND_REDIRECT ? hops : 0;
            rc = discover_urls(s, cfg->data_dir, links.urls, hops_of, links.count);
        } else {
            rc = -1;
        }
    }
    free(hops_of);
    links_free(&links);
    return rc < 0 ? -1 : 0;
}

/* Move pages a previous parser with our id left unfinished back to the queue. */
static void parser_restore(struct store *s, const char *processing) {
    for (;;) {
        redisReply *r = store_command(s, "LMOVE %s " STORE_FETCH_QUEUE " LEFT RIGHT", processing);
        int moved = r && r->type == REDIS_REPLY_STRING;
        if (r) freeReplyObject(r);
        if (!moved) break;
        log_msg("requeued a page left by the previous parser %s", processing);
    }
}

int parser_main(const struct crawler_config *cfg) {
    char role[32], processing[64];
    snprintf(role, sizeof(role), "parser-%d", cfg->parser_id);
    snprintf(processing, sizeof(processing), "fetch:processing:%d", cfg->parser_id);
    log_open(cfg->log_file, role);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = parser_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    struct store s;
    if (store_open(&s, cfg->redis_host, cfg->redis_port, 2, cfg->redis_retry_s * 1000) != 0) return 1;
    parser_restore(&s, processing);
    long parsed = 0;
    int attempts = 0;
    while (!parser_stop && !s.failed) {
        if (parser_hup) {
            parser_hup = 0;
            log_reopen();
        }
        /* Retry the page a failed attempt left in processing, else take a new one. */
        redisReply *r = attempts > 0 ? store_command(&s, "LINDEX %s 0", processing)
                                     : store_command(&s, "BLMOVE " STORE_FETCH_QUEUE " %s RIGHT LEFT 1", processing);
        if (!r) break;
        if (r->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            continue;
        }
        int ok = parser_process(&s, cfg, r->str, r->len) == 0;
        if (!ok && ++attempts < 3 && !s.failed) {
            log_msg("page failed (%s), retrying", s.last_error);
            freeReplyObject(r);
            sleep(1);
            continue;
        }
        if (!ok) log_msg("dropped a page after %d attempts: %s", attempts, s.last_error);
        attempts = 0;
        freeReplyObject(r);
        if (store_page_parsed(&s, processing) == 0) parsed++;
    }
    if (s.failed) log_msg("stopping: Redis unreachable (%s)", s.last_error);
    log_msg("parsed %ld pages", parsed);
    store_close(&s);
    return s.failed ? 2 : 0;
}

/* stats.h - the fetcher's counters, and the three ways they leave the
 * process: the JSON file at exit, the periodic status line, the Prometheus
 * endpoint. Each leak the crawler can inject shows in one of these. */
#ifndef CRAWLER_STATS_H
#define CRAWLER_STATS_H

#include "redis_pool.h"

#include <stddef.h>

struct crawl_stats {
    double elapsed_s;
    long pages_fetched;      /* page transfers finished (any outcome), robots.txt excluded */
    long pages_parsed;       /* pages the parsers finished (from Redis) */
    long pages_queued;       /* pages and redirects pushed to fetch:queue */
    long errors;             /* transport failures and HTTP >= 400 */
    long http_4xx;
    long http_5xx;
    long transport_errors;
    long redirects;
    long redirects_dropped;  /* beyond --max-redirects */
    long too_large;          /* aborted at --max-page-bytes */
    long not_html;           /* binary or non-HTML bodies, not parsed */
    long robots_fetched;
    long robots_disallowed;  /* frontier URLs skipped for robots.txt */
    long duplicates_skipped; /* frontier URLs already fetched */
    long bytes_fetched;
    long active_transfers;
    long fetch_queue_length;
    long scheduled_domains;  /* domains with URLs left (ZCARD domains:schedule) */
    long pages_processing;   /* pages the parsers are working on */
    long curl_easy_alive;    /* easy handles created and not cleaned up */
    long http_sockets_open;
    long http_sockets_peak;
    long http_socket_emfile; /* socket() failures for EMFILE/ENFILE */
    long retained_pages;     /* page buffers kept after the push */
    long retained_page_bytes;
    long frontier_files_open;
    long frontier_open_errors;
    long frontier_open_emfile;
    long redis_errors;       /* Redis commands retried after a failure */
    long parser_restarts;
    long fds_open;           /* entries in /proc/self/fd */
    long rss_kb;             /* resident set size */
    long heap_live_bytes;    /* bytes allocated by malloc and not freed (glibc mallinfo2) */
    long backpressure_pauses;
    struct redis_pool_counts pool;
};

/* Count the process's open descriptors; -1 when it cannot (EMFILE). */
long stats_count_fds(void);

/* The process's resident set size in KiB, -1 when unknown. */
long stats_rss_kb(void);

/* Bytes malloc has handed out and not had back: the live heap. */
long stats_heap_live_bytes(void);

int stats_write_json(const char *path, const struct crawl_stats *s);

/* One line for the log: rates, queues, pool and descriptor counts. */
void stats_status_line(const struct crawl_stats *s, double rate, char *buf, size_t len);

/* Prometheus text exposition of s; returns the length written. */
size_t stats_prometheus(const struct crawl_stats *s, char *buf, size_t len);

#endif

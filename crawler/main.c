/* main.c - leakscope-crawler: options, seeding, and the process layout
 * (one fetcher, cfg.parsers parser processes). */
#define _GNU_SOURCE
#include "config.h"
#include "discover.h"
#include "fetcher.h"
#include "inject.h"
#include "log.h"
#include "metrics.h"
#include "parser.h"
#include "parsers.h"
#include "stats.h"
#include "store.h"
#include "url.h"

#include <curl/curl.h>
#include <ftw.h>
#include <getopt.h>
#include <libxml/parser.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: leakscope-crawler --seeds FILE --data-dir DIR [options]\n"
            "  --seeds FILE          start URLs, one a line (# comments, blank lines ignored)\n"
            "  --data-dir DIR        frontier files live in DIR/frontiers\n"
            "  --redis HOST:PORT     Redis (default 127.0.0.1:6379)\n"
            "  --resume              continue the crawl kept in Redis and DIR\n"
            "  --max-pages N         stop after N pages fetched and parsed\n"
            "  --duration S          stop after S seconds\n"
            "  --workers N           concurrent transfers (default 200)\n"
            "  --parsers N           parser processes (default 2)\n"
            "  --delay S             minimum seconds between requests to one host (default 1)\n"
            "  --connect-to HOST:PORT  send every request to this server, keeping Host\n"
            "  --timeout S           transfer timeout (default 20)\n"
            "  --max-page-bytes N    abort bodies larger than N (default 4194304)\n"
            "  --max-redirects N     redirect hops followed from one link (default 5)\n"
            "  --queue-high N        pause fetching while fetch:queue holds N pages (default 500)\n"
            "  --redis-retry S       how long Redis may be unreachable (default 60)\n"
            "  --inject MODE         none, retain-pages, redis-pool-growth, frontier-fd,\n"
            "                        http-unbounded, curl-handle\n"
            "  --stats-json FILE     counters at exit\n"
            "  --log FILE            log file, reopened on SIGHUP (default stderr)\n"
            "  --status-interval S   status line period (default 10)\n"
            "  --metrics-port P      Prometheus endpoint on 127.0.0.1:P\n");
}

static int parse_host_port(const char *arg, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(arg, ':');
    if (!colon || colon == arg || (size_t)(colon - arg) >= hostlen) return -1;
    memcpy(host, arg, (size_t)(colon - arg));
    host[colon - arg] = '\0';
    *port = atoi(colon + 1);
    return *port > 0 && *port < 65536 ? 0 : -1;
}

static void on_stop(int sig) {
    (void)sig;
    fetcher_stop_requested = 1;
}

static void on_hup(int sig) {
    (void)sig;
    fetcher_reopen_log = 1;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

/* Read the seeds file and add its URLs to the crawl. Returns the count of
 * valid seeds, -1 when the file cannot be read or Redis fails. */
static long seed_crawl(const struct crawler_config *cfg, struct store *s) {
    FILE *f = fopen(cfg->seeds_file, "re");
    if (!f) {
        fprintf(stderr, "leakscope-crawler: cannot read seeds file %s: %m\n", cfg->seeds_file);
        return -1;
    }
    char line[URL_MAX_LEN + 2];
    char **urls = NULL;
    size_t n = 0, cap = 0;
    long lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *p = line + strspn(line, " \t\r\n");
        p[strcspn(p, "\r\n")] = '\0';
        if (*p == '\0' || *p == '#') continue;
        char *url = url_normalize(NULL, p);
        if (!url) {
            log_msg("%s:%ld: not a crawlable http(s) URL, skipped: %s", cfg->seeds_file, lineno, p);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(urls, cap * sizeof(*grown));
            if (!grown) break;
            urls = grown;
        }
        urls[n++] = url;
    }
    fclose(f);
    long added = n ? discover_urls(s, cfg->data_dir, urls, NULL, n) : 0;
    for (size_t i = 0; i < n; i++) free(urls[i]);
    free(urls);
    if (added < 0) {
        fprintf(stderr, "leakscope-crawler: cannot queue seeds: %s\n", s->last_error);
        return -1;
    }
    log_msg("seeded %zu URLs (%ld new)", n, added);
    return (long)n;
}

int main(int argc, char **argv) {
    struct crawler_config cfg = {
        .redis_host = "127.0.0.1", .redis_port = 6379, .workers = 200, .parsers = 2, .delay_s = 1,
        .timeout_s = 20, .connect_timeout_s = 5, .max_page_bytes = 4 << 20, .max_redirects = 5,
        .queue_high = 500, .status_interval_s = 10, .redis_retry_s = 60, .parser_id = -1,
    };
    enum { O_SEEDS = 256, O_DATA, O_REDIS, O_MAXP, O_DUR, O_WORKERS, O_PARSERS, O_DELAY, O_CONNECT, O_INJECT,
           O_STATS, O_LOG, O_METRICS, O_RESUME, O_TIMEOUT, O_MAXBYTES, O_MAXREDIR, O_QHIGH, O_STATUS, O_RETRY,
           O_PARSER_ID, O_HELP };
    static const struct option opts[] = {
        {"seeds", 1, 0, O_SEEDS}, {"data-dir", 1, 0, O_DATA}, {"redis", 1, 0, O_REDIS},
        {"max-pages", 1, 0, O_MAXP}, {"duration", 1, 0, O_DUR}, {"workers", 1, 0, O_WORKERS},
        {"parsers", 1, 0, O_PARSERS}, {"delay", 1, 0, O_DELAY}, {"connect-to", 1, 0, O_CONNECT},
        {"inject", 1, 0, O_INJECT}, {"stats-json", 1, 0, O_STATS}, {"log", 1, 0, O_LOG},
        {"metrics-port", 1, 0, O_METRICS}, {"resume", 0, 0, O_RESUME}, {"timeout", 1, 0, O_TIMEOUT},
        {"max-page-bytes", 1, 0, O_MAXBYTES}, {"max-redirects", 1, 0, O_MAXREDIR}, {"queue-high", 1, 0, O_QHIGH},
        {"status-interval", 1, 0, O_STATUS}, {"redis-retry", 1, 0, O_RETRY}, {"parser-id", 1, 0, O_PARSER_ID},
        {"help", 0, 0, O_HELP}, {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_SEEDS: cfg.seeds_file = optarg; break;
        case O_DATA: cfg.data_dir = optarg; break;
        case O_REDIS:
            if (parse_host_port(optarg, cfg.redis_host, sizeof(cfg.redis_host), &cfg.redis_port) != 0) {
                fprintf(stderr, "leakscope-crawler: --redis wants HOST:PORT, got %s\n", optarg);
                return 1;
            }
            break;
        case O_MAXP: cfg.max_pages = atol(optarg); break;
        case O_DUR: cfg.duration_s = atof(optarg); break;
        case O_WORKERS: cfg.workers = atoi(optarg); break;
        case O_PARSERS: cfg.parsers = atoi(optarg); break;
        case O_DELAY: cfg.delay_s = atof(optarg); break;
        case O_CONNECT: snprintf(cfg.connect_to, sizeof(cfg.connect_to), "%s", optarg); break;
        case O_INJECT: {
            int mode = inject_parse(optarg);
            if (mode < 0) {
                fprintf(stderr, "leakscope-crawler: unknown --inject mode %s\n", optarg);
                return 1;
            }
            inject_mode = (enum inject_mode)mode;
            break;
        }
        case O_STATS: cfg.stats_json = optarg; break;
        case O_LOG: cfg.log_file = optarg; break;
        case O_METRICS: cfg.metrics_port = atoi(optarg); break;
        case O_RESUME: cfg.resume = 1; break;
        case O_TIMEOUT: cfg.timeout_s = atof(optarg); break;
        case O_MAXBYTES: cfg.max_page_bytes = atol(optarg); break;
        case O_MAXREDIR: cfg.max_redirects = atoi(optarg); break;
        case O_QHIGH: cfg.queue_high = atol(optarg); break;
        case O_STATUS: cfg.status_interval_s = atof(optarg); break;
        case O_RETRY: cfg.redis_retry_s = atoi(optarg); break;
        case O_PARSER_ID: cfg.parser_id = atoi(optarg); break;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (!cfg.data_dir || (!cfg.seeds_file && !cfg.resume && cfg.parser_id < 0) || cfg.workers < 1 ||
        cfg.parsers < 1 || cfg.delay_s < 0 || cfg.max_page_bytes < 1024 || cfg.queue_high < 2) {
        usage(stderr);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    xmlInitParser();
    if (cfg.parser_id >= 0) return parser_main(&cfg);

    static char self_exe[4096];
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    if (n <= 0) return 1;
    self_exe[n] = '\0';
    cfg.self_exe = self_exe;
    if (log_open(cfg.log_file, "fetcher") != 0) {
        fprintf(stderr, "leakscope-crawler: cannot open log %s: %m\n", cfg.log_file);
        return 1;
    }

    struct store store;
    if (store_open(&store, cfg.redis_host, cfg.redis_port, 8, cfg.redis_retry_s * 1000) != 0) return 1;
    store.retry_ms = 0; /* at start-up, fail fast with a clear message */
    redisReply *pong = store_command(&store, "PING");
    if (!pong) {
        fprintf(stderr, "leakscope-crawler: %s\n", store.last_error);
        return 1;
    }
    freeReplyObject(pong);
    store.retry_ms = cfg.redis_retry_s * 1000;

    char frontiers[4096];
    snprintf(frontiers, sizeof(frontiers), "%s/frontiers", cfg.data_dir);
    if (cfg.resume) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        long recovered = store_recover_leases(&store, now + 600 * 1000, now, NULL, 0);
        log_msg("resuming: %ld domains given back from the previous run", recovered);
    } else {
        if (store_reset(&store) != 0) {
            fprintf(stderr, "leakscope-crawler: cannot clear the previous crawl: %s\n", store.last_error);
            return 1;
        }
        nftw(frontiers, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    if (cfg.seeds_file && seed_crawl(&cfg, &store) < 0) return 1;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);

    if (cfg.metrics_port && metrics_start(cfg.metrics_port) != 0) {
        fprintf(stderr, "leakscope-crawler: cannot serve metrics on 127.0.0.1:%d\n", cfg.metrics_port);
        return 1;
    }
    if (parsers_start(&cfg) != 0) {
        fprintf(stderr, "leakscope-crawler: cannot start parsers: %m\n");
        return 1;
    }
    log_msg("crawling with %d workers, %d parsers, delay %.3fs, inject %s", cfg.workers, cfg.parsers, cfg.delay_s,
            inject_name(inject_mode));

    struct crawl_stats stats;
    memset(&stats, 0, sizeof(stats));
    int rc = fetcher_run(&cfg, &store, &stats);
    parsers_stop();
    metrics_stop();
    if (!store.failed) {
        long parsed = store_counter(&store, "stats:pages_parsed");
        if (parsed >= 0) stats.pages_parsed = parsed;
    }
    stats.pool = redis_pool_counts(store.pool);
    char line[512];
    stats_status_line(&stats, stats.elapsed_s > 0 ? stats.pages_fetched / stats.elapsed_s : 0, line, sizeof(line));
    log_msg("done: %s", line);
    if (cfg.stats_json && stats_write_json(cfg.stats_json, &stats) != 0) {
        fprintf(stderr, "leakscope-crawler: cannot write %s: %m\n", cfg.stats_json);
        rc = rc ? rc : 1;
    }
    store_close(&store);
    curl_global_cleanup();
    return rc;
}

/* config.h - the crawler's command-line settings, shared by its processes. */
#ifndef CRAWLER_CONFIG_H
#define CRAWLER_CONFIG_H

#define CRAWLER_USER_AGENT "leakscope-crawler/1.0 (+https://github.com/leakscope)"
#define CRAWLER_ROBOTS_AGENT "leakscope-crawler"

struct crawler_config {
    const char *seeds_file;
    const char *data_dir;
    char redis_host[256];
    int redis_port;
    long max_pages;          /* 0: no limit */
    double duration_s;       /* 0: no limit */
    int workers;             /* concurrent transfers */
    int parsers;
    double delay_s;          /* minimum interval between requests to one host */
    char connect_to[300];    /* "HOST:PORT" or empty */
    const char *stats_json;
    const char *log_file;    /* NULL: stderr */
    int metrics_port;        /* 0: no Prometheus endpoint */
    int resume;
    double timeout_s;        /* whole transfer */
    double connect_timeout_s;
    long max_page_bytes;
    int max_redirects;       /* redirect hops followed from one link */
    long queue_high;         /* fetch:queue length that pauses fetching */
    double status_interval_s;
    int redis_retry_s;       /* how long Redis may be unreachable */
    const char *self_exe;    /* for re-executing parsers */
    int parser_id;           /* -1 in the fetcher */
};

#endif

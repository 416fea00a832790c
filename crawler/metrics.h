/* metrics.h - the fetcher's Prometheus endpoint (GET /metrics). */
#ifndef CRAWLER_METRICS_H
#define CRAWLER_METRICS_H

#include "stats.h"

/* Serve on 127.0.0.1:port from a thread of libmicrohttpd. Returns 0 or -1. */
int metrics_start(int port);

/* Publish a snapshot for the next scrape (called by the main loop). */
void metrics_publish(const struct crawl_stats *s);

void metrics_stop(void);

#endif

/* fetcher.h - the fetcher: one process, many concurrent transfers. */
#ifndef CRAWLER_FETCHER_H
#define CRAWLER_FETCHER_H

#include "config.h"
#include <signal.h>
#include "stats.h"
#include "store.h"

/* Flags set by the signal handlers of main.c. */
extern volatile sig_atomic_t fetcher_stop_requested;
extern volatile sig_atomic_t fetcher_reopen_log;

/* Crawl until nothing is left, --max-pages or --duration is reached, a
 * stop is requested, or Redis stays unreachable. Fills stats. Returns 0 on
 * a clean end, 2 when Redis was lost. */
int fetcher_run(const struct crawler_config *cfg, struct store *store, struct crawl_stats *stats);

#endif

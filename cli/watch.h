/* watch.h - verdicts for processes that are running now: sample them for a
 * while (series.h), then judge the series (diagnose.h). What `show --watch`
 * uses; a snapshot alone never makes a verdict. */
#ifndef LKS_WATCH_H
#define LKS_WATCH_H

#include <stddef.h>
#include <sys/types.h>

#include "diagnose.h"
#include "history.h"

/* Samples the segments of pids in dir once a second for seconds after the
 * first round (which symbolizes, and may be slow), stopping
 * early when all of them have exited; then judges. h and l are the
 * caller's to free (history_free, diag_list_free). Returns 0, or -1 with a
 * message on stderr. */
int watch_verdicts(const char *dir, const pid_t *pids, size_t npids, double seconds,
                   struct history *h, struct diag_list *l);

#endif

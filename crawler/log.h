/* log.h - the crawler's log: one line per event, reopened on SIGHUP. */
#ifndef CRAWLER_LOG_H
#define CRAWLER_LOG_H

/* Open path in append mode (NULL: stderr) for a process playing role
 * ("fetcher", "parser-0", ...). Returns 0 or -1. */
int log_open(const char *path, const char *role);

/* Reopen the same path, for logrotate's "postrotate kill -HUP". */
void log_reopen(void);

void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

/* parsers.h - the fetcher's supervision of its parser processes. */
#ifndef CRAWLER_PARSERS_H
#define CRAWLER_PARSERS_H

#include "config.h"

/* Start cfg->parsers parser processes (fork + exec of this binary). */
int parsers_start(const struct crawler_config *cfg);

/* Reap dead parsers and start replacements; returns how many restarted. */
int parsers_check(const struct crawler_config *cfg);

/* Forward a signal (SIGHUP for log rotation) to every parser. */
void parsers_signal(int sig);

/* SIGTERM every parser and wait for them to exit. */
void parsers_stop(void);

#endif

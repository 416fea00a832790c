/* parser.h - a parser process: pops fetched pages, extracts and queues links. */
#ifndef CRAWLER_PARSER_H
#define CRAWLER_PARSER_H

#include "config.h"

/* A fetch:queue record: "<url>\t<kind>\t<hops>\n<body>", kind 'p' for a
 * page (body is HTML), 'r' for a redirect (body is the target URL, hops its
 * redirect hop count). */
#define PAGE_KIND_PAGE 'p'
#define PAGE_KIND_REDIRECT 'r'

/* Run parser cfg->parser_id until SIGTERM; returns the exit status. */
int parser_main(const struct crawler_config *cfg);

#endif

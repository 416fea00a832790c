/* discover.h - adding newly found URLs to the crawl (parsers and seeding). */
#ifndef CRAWLER_DISCOVER_H
#define CRAWLER_DISCOVER_H

#include "store.h"

#include <stddef.h>

/* Add the URLs (normalized; hops[i] is the redirect hop count of urls[i])
 * that are not yet in seen:urls to their domains' frontier files, then
 * mark them seen and schedule their domains. The order (file first, seen
 * last) means a crash in between repeats work but never loses a URL.
 * Returns the number of URLs added, or -1 (errno or store->last_error). */
long discover_urls(struct store *s, const char *data_dir, char **urls, const int *hops, size_t n);

#endif

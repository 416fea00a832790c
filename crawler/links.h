/* links.h - link extraction from HTML pages. */
#ifndef CRAWLER_LINKS_H
#define CRAWLER_LINKS_H

#include <stddef.h>

/* The followable links of one page, as normalized absolute URLs (owned). */
struct links {
    char **urls;
    size_t count;
    size_t cap;
    size_t nofollow_skipped; /* links left out for rel=nofollow or meta robots */
};

/* Parse html (any encoding libxml2 detects; malformed input is recovered)
 * and fill out with the page's followable links, resolved against the
 * page's <base href> if any, else page_url. Duplicates are not removed.
 * Returns the number of links, -1 when out of memory. */
long links_extract(const char *html, size_t len, const char *page_url, struct links *out);

void links_free(struct links *l);

#endif

/* domains.h - what the fetcher remembers per domain: robots rules and delay. */
#ifndef CRAWLER_DOMAINS_H
#define CRAWLER_DOMAINS_H

#include "robots.h"

#include <stddef.h>
#include <stdint.h>

struct domain {
    char *name;
    struct robots *robots; /* NULL until robots.txt is known */
    int64_t delay_ms;      /* max(--delay, Crawl-delay) */
    struct domain *next;   /* hash chain */
};

struct domains {
    struct domain **buckets;
    size_t nbuckets;
    size_t count;
};

int domains_init(struct domains *d);

/* The entry for name, created (with delay_ms) when missing. NULL on OOM. */
struct domain *domains_get(struct domains *d, const char *name, int64_t delay_ms);

void domains_free(struct domains *d);

#endif

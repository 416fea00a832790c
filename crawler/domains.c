/* domains.c - a chained hash table of per-domain fetcher state. It holds
 * one small entry per domain ever seen: robots.txt is parsed once per
 * process instead of once per URL. */
#include "domains.h"

#include <stdlib.h>
#include <string.h>

static uint64_t domains_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int domains_init(struct domains *d) {
    d->nbuckets = 1024;
    d->count = 0;
    d->buckets = calloc(d->nbuckets, sizeof(*d->buckets));
    return d->buckets ? 0 : -1;
}

static void domains_grow(struct domains *d) {
    size_t n = d->nbuckets * 2;
    struct domain **buckets = calloc(n, sizeof(*buckets));
    if (!buckets) return;
    for (size_t i = 0; i < d->nbuckets; i++) {
        struct domain *e = d->buckets[i];
        while (e) {
            struct domain *next = e->next;
            size_t b = domains_hash(e->name) & (n - 1);
            e->next = buckets[b];
            buckets[b] = e;
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = buckets;
    d->nbuckets = n;
}

struct domain *domains_get(struct domains *d, const char *name, int64_t delay_ms) {
    size_t b = domains_hash(name) & (d->nbuckets - 1);
    for (struct domain *e = d->buckets[b]; e; e = e->next)
        if (strcmp(e->name, name) == 0) return e;
    struct domain *e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    e->name = strdup(name);
    if (!e->name) {
        free(e);
        return NULL;
    }
    e->delay_ms = delay_ms;
    e->next = d->buckets[b];
    d->buckets[b] = e;
    if (++d->count > d->nbuckets) domains_grow(d);
    return e;
}

void domains_free(struct domains *d) {
    for (size_t i = 0; i < d->nbuckets; i++) {
        struct domain *e = d->buckets[i];
        while (e) {
            struct domain *next = e->next;
            robots_free(e->robots);
            free(e->name);
            free(e);
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = NULL;
}

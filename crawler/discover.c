/* discover.c - deduplicate found URLs and append them to the frontiers. */
#include "discover.h"
#include "frontier.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct found {
    const char *url;
    int hops;
    char domain[256];
};

static int found_by_domain_then_url(const void *a, const void *b) {
    const struct found *x = a, *y = b;
    int c = strcmp(x->domain, y->domain);
    return c ? c : strcmp(x->url, y->url);
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Append one domain's new URLs (f[0..n-1]) to its frontier file and
 * describe them in *d (d->urls is malloc'ed). Returns 0 or -1. */
static int discover_append(struct store *s, const char *data_dir, struct found *f, size_t n, struct discovered *d) {
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) cap += strlen(f[i].url) + 16;
    char *lines = malloc(cap);
    d->urls = malloc(n * sizeof(char *));
    d->domain = f[0].domain;
    d->count = n;
    int rc = -1;
    if (!lines || !d->urls) goto out;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (f[i].hops > 0) len += (size_t)sprintf(lines + len, "%s\t%d\n", f[i].url, f[i].hops);
        else len += (size_t)sprintf(lines + len, "%s\n", f[i].url);
        d->urls[i] = f[i].url;
    }
    if (frontier_append(data_dir, f[0].domain, lines, len, &d->end) != 0) {
        snprintf(s->last_error, sizeof(s->last_error), "frontier append for %.160s: %m", f[0].domain);
        goto out;
    }
    rc = 0;
out:
    free(lines);
    return rc;
}

long discover_urls(struct store *s, const char *data_dir, char **urls, const int *hops, size_t n) {
    if (n == 0) return 0;
    struct found *f = calloc(n, sizeof(*f));
    if (!f) return -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (url_domain(urls[i], f[m].domain, sizeof(f[m].domain)) != 0) continue;
        f[m].url = urls[i];
        f[m].hops = hops ? hops[i] : 0;
        m++;
    }
    qsort(f, m, sizeof(*f), found_by_domain_then_url);
    size_t unique = 0;
    for (size_t i = 0; i < m; i++)
        if (unique == 0 || strcmp(f[i].url, f[unique - 1].url) != 0) f[unique++] = f[i];

    long added = -1;
    const char **argv = malloc((unique + 2) * sizeof(char *));
    if (!argv) goto out;
    argv[0] = "SMISMEMBER";
    argv[1] = "seen:urls";
    for (size_t i = 0; i < unique; i++) argv[i + 2] = f[i].url;
    redisReply *r = unique ? store_command_argv(s, (int)unique + 2, argv, NULL) : NULL;
    free(argv);
    if (unique && (!r || r->type != REDIS_REPLY_ARRAY || r->elements != unique)) {
        if (r) freeReplyObject(r);
        goto out;
    }
    size_t fresh = 0;
    for (size_t i = 0; i < unique; i++)
        if (r->element[i]->integer == 0) f[fresh++] = f[i];
    if (r) freeReplyObject(r);

    /* Append each domain's URLs, then record every appended domain in one
     * round trip; a failed append leaves its URLs unseen for a retry. */
    struct discovered *d = calloc(fresh ? fresh : 1, sizeof(*d));
    size_t nd = 0;
    int append_failed = 0;
    for (size_t start = 0; d && start < fresh;) {
        size_t end = start + 1;
        while (end < fresh && strcmp(f[end].domain, f[start].domain) == 0) end++;
        if (discover_append(s, data_dir, f + start, end - start, &d[nd]) == 0) nd++;
        else {
            free(d[nd].urls);
            append_failed = 1;
        }
        start = end;
    }
    if (d && (nd == 0 || store_discover(s, wall_ms(), d, nd) == 0) && !append_failed) added = (long)fresh;
    for (size_t i = 0; d && i < nd; i++) free(d[i].urls);
    free(d);
out:
    free(f);
    return added;
}

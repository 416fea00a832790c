/* robots.h - robots.txt rules for one host. */
#ifndef CRAWLER_ROBOTS_H
#define CRAWLER_ROBOTS_H

#include <stddef.h>

struct robots_rule {
    char *pattern; /* path pattern, may hold '*' and end with '$' */
    int allow;     /* 1 for Allow, 0 for Disallow */
};

struct robots {
    struct robots_rule *rules;
    size_t count;
    double crawl_delay; /* seconds, 0 when none was given */
    int disallow_all;   /* the file could not be fetched: obey by not crawling */
};

/* Parse a robots.txt body for the given user agent token (e.g.
 * "leakscope-crawler"): the most specific matching group is used, "*"
 * otherwise. Never fails on malformed input; returns a malloc'ed struct
 * the caller releases with robots_free. */
struct robots *robots_parse(const char *text, size_t len, const char *agent);

/* Rules for a host whose robots.txt answered with HTTP status (0 when the
 * transfer failed): 4xx means no rules, 5xx or failure means keep out. */
struct robots *robots_for_status(int status);

/* 1 when the path (with query) may be fetched: the longest matching
 * pattern wins, Allow wins a tie. */
int robots_allowed(const struct robots *r, const char *path);

void robots_free(struct robots *r);

#endif

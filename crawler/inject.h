/* inject.h - the leaks of the seed stories, switched on by --inject MODE. */
#ifndef CRAWLER_INJECT_H
#define CRAWLER_INJECT_H

enum inject_mode {
    INJECT_NONE = 0,
    INJECT_RETAIN_PAGES,      /* seed 000: page bodies kept after the push */
    INJECT_REDIS_POOL_GROWTH, /* seed 001: pool connections dropped, never closed */
    INJECT_FRONTIER_FD,       /* a FILE* not closed on frontier_read_batch's short-read path */
    INJECT_HTTP_UNBOUNDED,    /* seed 002: no cap on concurrent connections */
    INJECT_CURL_HANDLE,       /* easy handles of failed transfers never cleaned up */
};

/* The process-wide mode, set once at start-up. */
extern enum inject_mode inject_mode;

/* Parse a mode name ("none", "retain-pages", ...); -1 when unknown. */
int inject_parse(const char *name);

const char *inject_name(enum inject_mode mode);

#endif

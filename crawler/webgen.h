/* webgen.h - the synthetic web: a deterministic function from (host, path)
 * to an HTTP response, and the ground truth of its link graph.
 *
 * Hosts are h0.example .. h{hosts-1}.example; each has pages 0..pages-1,
 * page 0 at "/". A page's kind (and so its path) is a hash of (seed, host,
 * page): ordinary HTML (/p/<i>.html), disallowed-by-some-robots HTML
 * (/private/<i>.html), slow HTML (/slow/<i>.html), redirects (/r/<i>),
 * redirect loops (/loop/<i>/a <-> b), server errors (/err/<i>.html), huge
 * HTML (/big/<i>.html) and binary files (/img/<i>.png). Some hosts also
 * have an endless redirect chain /chain/<k> linked from "/". */
#ifndef CRAWLER_WEBGEN_H
#define CRAWLER_WEBGEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct webgen {
    unsigned hosts;
    unsigned pages;
    uint64_t seed;
    double crawl_delay;   /* Crawl-delay written for some hosts, 0: none */
};

enum webgen_kind {
    WEB_NORMAL, WEB_PRIVATE, WEB_SLOW, WEB_REDIRECT, WEB_LOOP, WEB_ERROR, WEB_HUGE, WEB_BINARY,
};

#define WEBGEN_HUGE_BYTES (32u << 20)
#define WEBGEN_BINARY_BYTES (200u << 10)

struct webgen_response {
    int status;
    const char *content_type;
    char *body;            /* malloc'ed, NULL when streamed */
    size_t len;
    char location[128];    /* for redirects */
    int slow;              /* the server should delay this response */
    int streamed;          /* WEB_HUGE or WEB_BINARY: generate with webgen_stream */
    uint64_t stream_seed;
};

/* Answer a request; host is the Host header (any case, optional port). */
void webgen_respond(const struct webgen *g, const char *host, const char *path, struct webgen_response *out);

/* Fill buf with bytes [pos, pos+len) of a streamed body. */
void webgen_stream(uint64_t stream_seed, int html, uint64_t pos, char *buf, size_t len);

/* Write the ground truth: per host its robots.txt status, crawl delay and
 * the path prefixes it disallows for leakscope-crawler; per URL its status,
 * kind, redirect target and the links a crawler must follow. */
void webgen_dump(const struct webgen *g, FILE *out);

#endif

/* webgen.c - the synthetic web's content, computed, never stored.
 *
 * Each page's links are produced once, by page_links, as pairs of what the
 * HTML says (the href, spelled in one of many equivalent ways) and what it
 * means (the canonical URL). The server renders the first, the ground-truth
 * dump prints the second; a crawler passes only if it decodes every
 * spelling back to the meaning. */
#include "webgen.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_LINKS 40
#define CHAIN_DUMP_LEN 20

struct link {
    char target[160];  /* canonical absolute URL */
    char href[320];    /* as written in the page */
    int nofollow;      /* rel="nofollow" */
    int unquoted;
};

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t hash3(const struct webgen *g, unsigned h, unsigned i, unsigned salt) {
    return mix(g->seed ^ mix(((uint64_t)h << 32) ^ i ^ mix(salt)));
}

static enum webgen_kind page_kind(const struct webgen *g, unsigned h, unsigned i) {
    if (i == 0) return WEB_NORMAL;
    unsigned r = (unsigned)(hash3(g, h, i, 1) % 1000);
    if (r < 30) return WEB_REDIRECT;
    if (r < 45) return WEB_ERROR;
    if (r < 55) return WEB_SLOW;
    if (r < 58) return WEB_HUGE;
    if (r < 70) return WEB_BINARY;
    if (r < 80) return WEB_LOOP;
    if (r < 130) return WEB_PRIVATE;
    return WEB_NORMAL;
}

static void page_path(const struct webgen *g, unsigned h, unsigned i, char *out, size_t len) {
    switch (page_kind(g, h, i)) {
    case WEB_NORMAL: if (i == 0) snprintf(out, len, "/"); else snprintf(out, len, "/p/%u.html", i); break;
    case WEB_PRIVATE: snprintf(out, len, "/private/%u.html", i); break;
    case WEB_SLOW: snprintf(out, len, "/slow/%u.html", i); break;
    case WEB_REDIRECT: snprintf(out, len, "/r/%u", i); break;
    case WEB_LOOP: snprintf(out, len, "/loop/%u/a", i); break;
    case WEB_ERROR: snprintf(out, len, "/err/%u.html", i); break;
    case WEB_HUGE: snprintf(out, len, "/big/%u.html", i); break;
    case WEB_BINARY: snprintf(out, len, "/img/%u.png", i); break;
    }
}

static int has_chain(unsigned h) { return h % 7 == 3; }

/* Pages at or beyond this index are linked only with rel=nofollow. */
static unsigned linkable(const struct webgen *g) {
    unsigned n = g->pages * 9 / 10;
    return n ? n : 1;
}

/* A page with <meta name=robots content=nofollow>. */
static int page_nofollow(const struct webgen *g, unsigned h, unsigned i) {
    return i != 0 && hash3(g, h, i, 6) % 33 == 0;
}

/* The directory depth against which relative links are written: the
 * page's <base href="/deep/dir/"> if it has one, else its own path. */
static int page_base(const struct webgen *g, unsigned h, unsigned i) {
    return i != 0 && hash3(g, h, i, 3) % 20 == 0;
}

/* Robots rules for leakscope-crawler on host h, as disallowed prefixes. */
static int robots_status(unsigned h) { return h % 5 == 1 ? 404 : 200; }
static int robots_own_group(unsigned h) { return h % 13 == 5; }
static double robots_delay(const struct webgen *g, unsigned h) {
    return h % 11 == 4 && robots_status(h) == 200 && !robots_own_group(h) ? g->crawl_delay : 0;
}

static size_t robots_disallows(unsigned h, const char **out) {
    size_t n = 0;
    if (robots_status(h) != 200) return 0;
    if (robots_own_group(h)) {
        out[n++] = "/slow/";
        return n;
    }
    if (h % 3 == 0) out[n++] = "/private/";
    if (h % 7 == 2) out[n++] = "/p/1";
    return n;
}

static void robots_text(const struct webgen *g, unsigned h, char *buf, size_t len) {
    size_t used = (size_t)snprintf(buf, len, "# robots.txt of h%u.example\nUser-agent: otherbot\nDisallow: /\n\n", h);
    if (robots_own_group(h)) {
        used += (size_t)snprintf(buf + used, len - used,
                                 "User-agent: LeakScope-Crawler\nDisallow: /slow/\n\nUser-agent: *\nDisallow: /private/\n"
                                 "Disallow: /p/\n");
        return;
    }
    used += (size_t)snprintf(buf + used, len - used, "User-agent: *\n");
    if (h % 3 == 0) used += (size_t)snprintf(buf + used, len - used, "Disallow: /private/\n");
    if (h % 7 == 2) used += (size_t)snprintf(buf + used, len - used, "Disallow: /p/1   # prefix: /p/1*.html\n");
    if (robots_delay(g, h) > 0) used += (size_t)snprintf(buf + used, len - used, "Crawl-delay: %g\n", robots_delay(g, h));
    snprintf(buf + used, len - used, "Disallow:\n");
}

static int dir_depth(const char *path) {
    int depth = 0;
    const char *last = strrchr(path, '/');
    for (const char *p = path + 1; p <= last; p++)
        if (*p == '/') depth++;
    return depth;
}

/* Write target path (on the same host) relative to a directory of depth. */
static void relative_href(const char *path, int depth, char *out, size_t len) {
    size_t used = 0;
    out[0] = '\0';
    for (int d = 0; d < depth; d++) used += (size_t)snprintf(out + used, len - used, "../");
    if (depth == 0 && strcmp(path, "/") == 0) snprintf(out, len, "./");
    else snprintf(out + used, len - used, "%s", path + 1);
}

/* Spell a same-host link to path in one of several equivalent ways. */
static void same_host_href(unsigned h, const char *path, int depth, uint64_t x, struct link *l) {
    switch ((x >> 40) % 8) {
    case 0: snprintf(l->href, sizeof(l->href), "http://h%u.example%s", h, path); break;
    case 1: snprintf(l->href, sizeof(l->href), "%s", path); break;
    case 2: relative_href(path, depth, l->href, sizeof(l->href)); break;
    case 3: snprintf(l->href, sizeof(l->href), "/x/./y/../..%s", path); break;
    case 4: snprintf(l->href, sizeof(l->href), "%s#section-%u", path, (unsigned)(x % 97)); break;
    case 5: snprintf(l->href, sizeof(l->href), "HTTP://H%u.Example:80%s", h, path); break;
    case 6: /* entity-encoded slashes, decoded by the HTML parser */
        snprintf(l->href, sizeof(l->href), "http:&#x2F;&#47;h%u.example%s", h, path);
        break;
    default: snprintf(l->href, sizeof(l->href), "%s", path); l->unquoted = 1; break;
    }
}

/* The links of page (h, i): followable ones first, then at most one
 * nofollow link to a page that nothing else links. */
static size_t page_links(const struct webgen *g, unsigned h, unsigned i, struct link *links) {
    size_t n = 0;
    char self[64], path[64];
    page_path(g, h, i, self, sizeof(self));
    int depth = page_base(g, h, i) ? 2 : dir_depth(self);
    unsigned count = 8 + (unsigned)(hash3(g, h, i, 2) % 16);
    for (unsigned k = 0; k < count && n < MAX_LINKS - 4; k++) {
        uint64_t x = hash3(g, h, i, 100 + k);
        int cross = g->hosts > 1 && x % 4 == 0;
        unsigned th = cross ? (unsigned)((x >> 8) % g->hosts) : h;
        unsigned tj = (unsigned)((x >> 24) % linkable(g));
        page_path(g, th, tj, path, sizeof(path));
        struct link *l = &links[n++];
        memset(l, 0, sizeof(*l));
        snprintf(l->target, sizeof(l->target), "http://h%u.example%s", th, path);
        if (th != h) {
            if ((x >> 40) % 2) snprintf(l->href, sizeof(l->href), "//H%u.EXAMPLE:80%s", th, path);
            else snprintf(l->href, sizeof(l->href), "http://h%u.example%s", th, path);
        } else {
            same_host_href(h, path, depth, x, l);
        }
    }
    if (hash3(g, h, i, 4) % 5 == 0) {
        struct link *l = &links[n++];
        memset(l, 0, sizeof(*l));
        unsigned missing = g->pages + (unsigned)(hash3(g, h, i, 41) % 50);
        snprintf(l->target, sizeof(l->target), "http://h%u.example/p/%u.html", h, missing);
        snprintf(l->href, sizeof(l->href), "/p/%u.html", missing);
    }
    if (i == 0 && has_chain(h)) {
        struct link *l = &links[n++];
        memset(l, 0, sizeof(*l));
        snprintf(l->target, sizeof(l->target), "http://h%u.example/chain/0", h);
        snprintf(l->href, sizeof(l->href), "/chain/0");
    }
    if (g->pages > linkable(g) && hash3(g, h, i, 5) % 3 == 0) {
        unsigned orphan = linkable(g) + (unsigned)(hash3(g, h, i, 51) % (g->pages - linkable(g)));
        page_path(g, h, orphan, path, sizeof(path));
        struct link *l = &links[n++];
        memset(l, 0, sizeof(*l));
        snprintf(l->target, sizeof(l->target), "http://h%u.example%s", h, path);
        snprintf(l->href, sizeof(l->href), "%s", path);
        l->nofollow = 1;
    }
    return n;
}

static const char *words[] = {
    "leak", "descriptor", "socket", "frontier", "crawler", "parser", "redis", "queue", "page", "buffer",
    "heap", "allocation", "pool", "connection", "robots", "delay", "host", "fetch", "timeout", "limit",
    "the", "of", "and", "a", "to", "in", "is", "that", "for", "it", "with", "as", "was", "on", "be", "at",
    "by", "this", "had", "not", "are", "but", "from", "or", "have", "an", "they", "which", "one", "you",
    "were", "all", "we", "when", "there", "can", "been", "has", "more", "if", "will", "would", "so", "no",
};

/* Filler text is copied from one pool of words generated once, at an
 * offset chosen per paragraph, so that the server spends its time serving
 * pages rather than drawing words one by one. */
#define FILLER_POOL_BYTES (1u << 20)
static char filler_pool[FILLER_POOL_BYTES];
static pthread_once_t filler_once = PTHREAD_ONCE_INIT;

static void filler_pool_init(void) {
    uint64_t state = 42;
    size_t used = 0;
    while (used + 16 < FILLER_POOL_BYTES) {
        state = mix(state);
        const char *w = words[state % (sizeof(words) / sizeof(words[0]))];
        size_t wl = strlen(w);
        memcpy(filler_pool + used, w, wl);
        used += wl;
        filler_pool[used++] = (state >> 32) % 13 == 0 ? '\n' : ' ';
    }
    memset(filler_pool + used, ' ', FILLER_POOL_BYTES - used);
}

/* Append about want bytes of filler text to buf at *used (cap bytes). */
static void filler(uint64_t *state, char *buf, size_t *used, size_t cap, size_t want) {
    pthread_once(&filler_once, filler_pool_init);
    if (*used + want > cap) want = cap - *used;
    if (want > FILLER_POOL_BYTES / 2) want = FILLER_POOL_BYTES / 2;
    *state = mix(*state);
    memcpy(buf + *used, filler_pool + *state % (FILLER_POOL_BYTES / 2), want);
    *used += want;
}

static size_t page_size(const struct webgen *g, unsigned h, unsigned i) {
    double u = (double)(hash3(g, h, i, 7) % 10000) / 10000.0;
    return 2048 + (size_t)(u * u * u * 240000);
}

static void append(char *buf, size_t *used, size_t cap, const char *s) {
    size_t n = strlen(s);
    if (*used + n > cap) n = cap - *used;
    memcpy(buf + *used, s, n);
    *used += n;
}

static void render_page(const struct webgen *g, unsigned h, unsigned i, struct webgen_response *out) {
    struct link links[MAX_LINKS];
    size_t nlinks = page_links(g, h, i, links);
    size_t target = page_size(g, h, i);
    size_t cap = target + nlinks * 400 + 4096;
    char *buf = malloc(cap);
    if (!buf) {
        out->status = 500;
        return;
    }
    size_t used = 0;
    char tmp[1024];
    snprintf(tmp, sizeof(tmp),
             "<!DOCTYPE html>\n<html lang=en><head><meta charset=\"utf-8\"><title>h%u page %u &amp; friends</title>\n", h, i);
    append(buf, &used, cap, tmp);
    if (page_base(g, h, i)) append(buf, &used, cap, "<base href=\"/deep/dir/\">\n");
    if (page_nofollow(g, h, i)) append(buf, &used, cap, "<meta name=\"robots\" content=\"noindex, nofollow\">\n");
    append(buf, &used, cap, "</head>\n<body><h1>A page of the synthetic web</h1>\n");
    uint64_t state = hash3(g, h, i, 9);
    int malformed = hash3(g, h, i, 10) % 10 == 0;
    size_t per_gap = target / (nlinks + 1);
    for (size_t k = 0; k < nlinks; k++) {
        append(buf, &used, cap, "<p>");
        filler(&state, buf, &used, cap, per_gap);
        if (malformed && k == 1) append(buf, &used, cap, "<b>bold <i>crossed</b></i> 3 < 4 && x <div><table><td>cell");
        const struct link *l = &links[k];
        if (l->unquoted) snprintf(tmp, sizeof(tmp), " <a href=%s>link %zu</a>", l->href, k);
        else snprintf(tmp, sizeof(tmp), " <a class=\"l\" href=\"%s\"%s>link %zu</a>", l->href,
                      l->nofollow ? " rel=\"external nofollow\"" : "", k);
        append(buf, &used, cap, tmp);
        if (k % 5 == 2) append(buf, &used, cap, " <a name=\"anchor\">no href</a> <a href=\"mailto:webmaster@example.invalid\">mail</a>"
                                               " <a href=\"javascript:void(0)\">js</a>");
        append(buf, &used, cap, "</p>\n");
    }
    append(buf, &used, cap, "<p>");
    filler(&state, buf, &used, cap, per_gap);
    append(buf, &used, cap, "</p>\n</body></html>\n");
    out->status = 200;
    out->content_type = "text/html; charset=utf-8";
    out->body = buf;
    out->len = used;
}

/* "h12.example[:port]" -> 12; -1 when not a host of this web. */
static long parse_host(const struct webgen *g, const char *host) {
    if (!host || tolower((unsigned char)host[0]) != 'h' || !isdigit((unsigned char)host[1])) return -1;
    char *end;
    long h = strtol(host + 1, &end, 10);
    if (strncasecmp(end, ".example", 8) != 0 || (end[8] != '\0' && end[8] != ':')) return -1;
    if (host[1] == '0' && end != host + 2) return -1;
    return h < (long)g->hosts ? h : -1;
}

static void respond_text(struct webgen_response *out, int status, const char *text) {
    out->status = status;
    out->content_type = "text/plain";
    out->body = strdup(text);
    out->len = out->body ? strlen(out->body) : 0;
}

void webgen_respond(const struct webgen *g, const char *host, const char *path, struct webgen_response *out) {
    memset(out, 0, sizeof(*out));
    long h = parse_host(g, host);
    if (h < 0) {
        respond_text(out, 404, "no such host\n");
        return;
    }
    if (strcmp(path, "/robots.txt") == 0) {
        if (robots_status((unsigned)h) != 200) {
            respond_text(out, 404, "no robots.txt here\n");
            return;
        }
        char text[1024];
        robots_text(g, (unsigned)h, text, sizeof(text));
        respond_text(out, 200, text);
        return;
    }
    unsigned k;
    char rest[16];
    if (has_chain((unsigned)h) && sscanf(path, "/chain/%u%1s", &k, rest) == 1) {
        out->status = 301;
        snprintf(out->location, sizeof(out->location), "/chain/%u", k + 1);
        return;
    }
    /* Find the page: parse the number, then accept only its canonical path. */
    const char *digits = path;
    while (*digits && !isdigit((unsigned char)*digits)) digits++;
    unsigned i = strcmp(path, "/") == 0 ? 0 : (unsigned)strtoul(digits, NULL, 10);
    if (i >= g->pages || (i == 0 && strcmp(path, "/") != 0)) {
        respond_text(out, 404, "not found\n");
        return;
    }
    char canonical[64];
    page_path(g, (unsigned)h, i, canonical, sizeof(canonical));
    enum webgen_kind kind = page_kind(g, (unsigned)h, i);
    if (kind == WEB_LOOP) {
        char b[64];
        snprintf(b, sizeof(b), "/loop/%u/b", i);
        if (strcmp(path, canonical) == 0 || strcmp(path, b) == 0) {
            out->status = 302;
            snprintf(out->location, sizeof(out->location), "%s", strcmp(path, b) == 0 ? "a" : "b");
            return;
        }
    }
    if (strcmp(path, canonical) != 0) {
        respond_text(out, 404, "not found\n");
        return;
    }
    switch (kind) {
    case WEB_NORMAL:
    case WEB_PRIVATE:
        render_page(g, (unsigned)h, i, out);
        break;
    case WEB_SLOW:
        render_page(g, (unsigned)h, i, out);
        out->slow = 1;
        break;
    case WEB_REDIRECT: {
        uint64_t x = hash3(g, (unsigned)h, i, 8);
        unsigned th = x % 3 == 0 && g->hosts > 1 ? (unsigned)((x >> 8) % g->hosts) : (unsigned)h;
        char target[64];
        page_path(g, th, (unsigned)((x >> 24) % linkable(g)), target, sizeof(target));
        out->status = 301;
        if (th == (unsigned)h) snprintf(out->location, sizeof(out->location), "%s", target);
        else snprintf(out->location, sizeof(out->location), "http://h%u.example%s", th, target);
        break;
    }
    case WEB_ERROR:
        respond_text(out, 500, "internal error (on purpose)\n");
        break;
    case WEB_HUGE:
    case WEB_BINARY:
        out->status = 200;
        out->streamed = 1;
        out->stream_seed = hash3(g, (unsigned)h, i, 11);
        out->content_type = kind == WEB_HUGE ? "text/html" : "image/png";
        out->len = kind == WEB_HUGE ? WEBGEN_HUGE_BYTES : WEBGEN_BINARY_BYTES;
        break;
    case WEB_LOOP:
        break;
    }
}

void webgen_stream(uint64_t stream_seed, int html, uint64_t pos, char *buf, size_t len) {
    for (size_t k = 0; k < len; k++) {
        uint64_t x = mix(stream_seed ^ ((pos + k) >> 3));
        unsigned char c = (unsigned char)(x >> (((pos + k) & 7) * 8));
        buf[k] = html ? (char)('a' + c % 26) : (char)c;
    }
}

void webgen_dump(const struct webgen *g, FILE *out) {
    struct link links[MAX_LINKS];
    char path[64];
    for (unsigned h = 0; h < g->hosts; h++) {
        const char *dis[4];
        size_t nd = robots_disallows(h, dis);
        fprintf(out, "host\th%u.example\t%d\t%g\t", h, robots_status(h), robots_delay(g, h));
        for (size_t k = 0; k < nd; k++) fprintf(out, "%s%s", k ? " " : "", dis[k]);
        fprintf(out, "%s\n", nd ? "" : "-");
        if (has_chain(h))
            for (unsigned k = 0; k < CHAIN_DUMP_LEN; k++)
                fprintf(out, "page\thttp://h%u.example/chain/%u\t301\tredirect\thttp://h%u.example/chain/%u\t\n", h, k, h, k + 1);
        for (unsigned i = 0; i < g->pages; i++) {
            page_path(g, h, i, path, sizeof(path));
            struct webgen_response r;
            char hostname[32];
            snprintf(hostname, sizeof(hostname), "h%u.example", h);
            webgen_respond(g, hostname, path, &r);
            free(r.body);
            enum webgen_kind kind = page_kind(g, h, i);
            const char *kind_name = kind == WEB_REDIRECT || kind == WEB_LOOP ? "redirect"
                                    : kind == WEB_HUGE ? "huge" : kind == WEB_BINARY ? "binary"
                                    : kind == WEB_ERROR ? "error" : "html";
            char location[300] = "-";
            if (kind == WEB_REDIRECT || kind == WEB_LOOP) {
                if (r.location[0] == '/') snprintf(location, sizeof(location), "http://h%u.example%s", h, r.location);
                else if (kind == WEB_LOOP) snprintf(location, sizeof(location), "http://h%u.example/loop/%u/b", h, i);
                else snprintf(location, sizeof(location), "%s", r.location);
            }
            fprintf(out, "page\thttp://h%u.example%s\t%d\t%s\t%s\t", h, path, r.status, kind_name, location);
            if (strcmp(kind_name, "html") == 0 && !page_nofollow(g, h, i)) {
                size_t n = page_links(g, h, i, links);
                int first = 1;
                for (size_t k = 0; k < n; k++) {
                    if (links[k].nofollow) continue;
                    fprintf(out, "%s%s", first ? "" : " ", links[k].target);
                    first = 0;
                }
            }
            fprintf(out, "\n");
            if (kind == WEB_LOOP)
                fprintf(out, "page\thttp://h%u.example/loop/%u/b\t302\tredirect\thttp://h%u.example/loop/%u/a\t\n", h, i, h, i);
        }
    }
}

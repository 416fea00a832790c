/* links.c - link extraction with libxml2's HTML SAX parser.
 *
 * Chosen over gumbo after measuring both on the synthetic web's pages
 * (docs/CRAWLER.md): the SAX parser never builds a tree, so it is several
 * times faster, and it recovers from malformed HTML and decodes entities
 * in attribute values. Raw hrefs are collected during the parse and
 * resolved at the end, because <base href> applies to the whole page. */
#include "links.h"
#include "url.h"

#include <libxml/HTMLparser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct extract_state {
    char **hrefs;
    size_t count, cap;
    char *base;          /* first <base href>, raw */
    int page_nofollow;   /* <meta name=robots content=...nofollow...> */
    size_t nofollow_skipped;
    int oom;
};

/* 1 when the space-separated token list contains token (case-insensitive). */
static int has_token(const char *list, const char *token) {
    size_t tlen = strlen(token);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == ',') p++;
        size_t len = strcspn(p, " \t\n,");
        if (len == tlen && strncasecmp(p, token, tlen) == 0) return 1;
        p += len;
    }
    return 0;
}

static const char *attr(const xmlChar **atts, const char *name) {
    if (!atts) return NULL;
    for (size_t i = 0; atts[i]; i += 2)
        if (strcasecmp((const char *)atts[i], name) == 0)
            return atts[i + 1] ? (const char *)atts[i + 1] : "";
    return NULL;
}

static void push_href(struct extract_state *st, const char *href) {
    if (st->count == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 64;
        char **grown = realloc(st->hrefs, cap * sizeof(*grown));
        if (!grown) { st->oom = 1; return; }
        st->hrefs = grown;
        st->cap = cap;
    }
    char *copy = strdup(href);
    if (!copy) { st->oom = 1; return; }
    st->hrefs[st->count++] = copy;
}

static void on_start_element(void *ctx, const xmlChar *xname, const xmlChar **atts) {
    struct extract_state *st = ctx;
    const char *name = (const char *)xname;
    if (strcmp(name, "a") == 0 || strcmp(name, "area") == 0) {
        const char *href = attr(atts, "href");
        if (!href) return;
        const char *rel = attr(atts, "rel");
        if (rel && has_token(rel, "nofollow")) {
            st->nofollow_skipped++;
            return;
        }
        push_href(st, href);
    } else if (strcmp(name, "base") == 0) {
        const char *href = attr(atts, "href");
        if (href && !st->base) st->base = strdup(href);
    } else if (strcmp(name, "meta") == 0) {
        const char *meta_name = attr(atts, "name");
        const char *content = attr(atts, "content");
        if (meta_name && content && strcasecmp(meta_name, "robots") == 0 &&
            (has_token(content, "nofollow") || has_token(content, "none")))
            st->page_nofollow = 1;
    }
}

static void push_url(struct links *out, char *url, int *oom) {
    if (out->count == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 64;
        char **grown = realloc(out->urls, cap * sizeof(*grown));
        if (!grown) { free(url); *oom = 1; return; }
        out->urls = grown;
        out->cap = cap;
    }
    out->urls[out->count++] = url;
}

long links_extract(const char *html, size_t len, const char *page_url, struct links *out) {
    struct extract_state st = {0};
    htmlSAXHandler sax;
    memset(&sax, 0, sizeof(sax));
    sax.startElement = on_start_element;

    htmlParserCtxtPtr ctxt = htmlCreatePushParserCtxt(&sax, &st, NULL, 0, NULL, XML_CHAR_ENCODING_NONE);
    if (!ctxt) return -1;
    htmlCtxtUseOptions(ctxt, HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                             HTML_PARSE_NONET | HTML_PARSE_NOBLANKS);
    /* libxml2 takes the length as int: feed huge pages in chunks. */
    const size_t chunk = 1 << 20;
    size_t done = 0;
    while (done < len) {
        size_t n = len - done < chunk ? len - done : chunk;
        htmlParseChunk(ctxt, html + done, (int)n, 0);
        done += n;
    }
    htmlParseChunk(ctxt, NULL, 0, 1);
    htmlFreeParserCtxt(ctxt);

    int oom = st.oom;
    char *base_url = st.base ? url_normalize(page_url, st.base) : NULL;
    CURLU *base = url_base_parse(base_url ? base_url : page_url);
    out->nofollow_skipped += st.nofollow_skipped;
    for (size_t i = 0; i < st.count; i++) {
        if (st.page_nofollow) {
            out->nofollow_skipped++;
        } else if (!oom && base) {
            char *url = url_resolve(base, st.hrefs[i]);
            if (url) push_url(out, url, &oom);
        }
        free(st.hrefs[i]);
    }
    curl_url_cleanup(base);
    free(st.hrefs);
    free(st.base);
    free(base_url);
    return oom ? -1 : (long)out->count;
}

void links_free(struct links *l) {
    for (size_t i = 0; i < l->count; i++) free(l->urls[i]);
    free(l->urls);
    memset(l, 0, sizeof(*l));
}

/* parser_mbps.c - HTML link extraction speed, in MB/s of HTML, on the
 * synthetic web's pages: libxml2's HTML SAX parser (as links.c uses it, and
 * raw) against gumbo (tree parser). Built and run by parser_mbps.sh. */
#include <gumbo.h>
#include <libxml/HTMLparser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "links.h"
#include "webgen.h"

struct page {
    char url[128];
    char *html;
    size_t len;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long hrefs_seen;

static void sax_start(void *ctx, const xmlChar *name, const xmlChar **atts) {
    (void)ctx;
    if (strcmp((const char *)name, "a") != 0 || !atts) return;
    for (size_t i = 0; atts[i]; i += 2)
        if (strcmp((const char *)atts[i], "href") == 0) hrefs_seen++;
}

static void libxml2_raw(const struct page *p, int encoding) {
    htmlSAXHandler sax;
    memset(&sax, 0, sizeof(sax));
    sax.startElement = sax_start;
    htmlParserCtxtPtr ctxt = htmlCreatePushParserCtxt(&sax, NULL, NULL, 0, NULL, encoding);
    htmlCtxtUseOptions(ctxt, HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET);
    htmlParseChunk(ctxt, p->html, (int)p->len, 1);
    htmlFreeParserCtxt(ctxt);
}

static void gumbo_walk(const GumboNode *n) {
    if (n->type != GUMBO_NODE_ELEMENT) return;
    if (n->v.element.tag == GUMBO_TAG_A && gumbo_get_attribute(&n->v.element.attributes, "href")) hrefs_seen++;
    const GumboVector *c = &n->v.element.children;
    for (unsigned i = 0; i < c->length; i++) gumbo_walk(c->data[i]);
}

static void gumbo_raw(const struct page *p) {
    GumboOutput *out = gumbo_parse_with_options(&kGumboDefaultOptions, p->html, p->len);
    gumbo_walk(out->root);
    gumbo_destroy_output(&kGumboDefaultOptions, out);
}

static void links_full(const struct page *p) {
    struct links l = {0};
    links_extract(p->html, p->len, p->url, &l);
    hrefs_seen += (long)l.count;
    links_free(&l);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    struct webgen g = {.hosts = 20, .pages = 100, .seed = 1, .crawl_delay = 0};
    struct page *pages = calloc(g.hosts * g.pages, sizeof(*pages));
    size_t n = 0, bytes = 0;
    for (unsigned h = 0; h < g.hosts; h++) {
        for (unsigned i = 0; i < g.pages; i++) {
            char host[32], path[32];
            snprintf(host, sizeof(host), "h%u.example", h);
            if (i == 0) snprintf(path, sizeof(path), "/");
            else snprintf(path, sizeof(path), "/p/%u.html", i);
            struct webgen_response r;
            webgen_respond(&g, host, path, &r);
            if (r.status != 200 || !r.body) {
                free(r.body);
                continue;
            }
            snprintf(pages[n].url, sizeof(pages[n].url), "http://%s%s", host, path);
            pages[n].html = r.body;
            pages[n].len = r.len;
            bytes += r.len;
            n++;
        }
    }
    printf("%zu pages, %.1f MB, mean page %.1f KB\n", n, bytes / 1e6, bytes / 1e3 / (double)n);
    const char *names[] = {"libxml2 SAX, encoding detected (raw hrefs)", "libxml2 SAX, UTF-8 declared (raw hrefs)",
                           "gumbo tree + walk (raw hrefs)", "links_extract (libxml2 SAX + base + normalize)"};
    for (int m = 0; m < 4; m++) {
        double best = 1e9;
        long found = 0;
        for (int r = 0; r < rounds; r++) {
            hrefs_seen = 0;
            double t0 = now_s();
            for (size_t k = 0; k < n; k++) {
                if (m == 0) libxml2_raw(&pages[k], XML_CHAR_ENCODING_NONE);
                else if (m == 1) libxml2_raw(&pages[k], XML_CHAR_ENCODING_UTF8);
                else if (m == 2) gumbo_raw(&pages[k]);
                else links_full(&pages[k]);
            }
            double t = now_s() - t0;
            if (t < best) best = t;
            found = hrefs_seen;
        }
        printf("%-50s %8.1f MB/s %8.0f pages/s  (%ld links)\n", names[m], bytes / 1e6 / best, n / best, found);
    }
    return 0;
}

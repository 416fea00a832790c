/* Unit tests of link extraction: base href, relative links, entities,
 * nofollow, malformed HTML; and every page of a synthetic web must yield
 * exactly the links its ground truth lists. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "links.h"
#include "webgen.h"

static struct links extract(const char *html, const char *url) {
    struct links l = {0};
    cr_assert_geq(links_extract(html, strlen(html), url, &l), 0);
    return l;
}

Test(links, base_entities_nofollow) {
    struct links l = extract("<html><head><base href=\"/deep/dir/\"></head><body>"
                             "<a href=\"../../p/1.html\">1</a>"
                             "<a href=\"http:&#x2F;&#47;h2.example/p/2.html#x\">2</a>"
                             "<a rel=\"external nofollow\" href=\"/p/3.html\">3</a>"
                             "<a href=x.html?a=1&amp;b=2>4</a>"
                             "<a name=top>no href</a><a href=\"mailto:x@y.z\">m</a>"
                             "<area href=\"/map\">",
                             "http://h1.example/p/9.html");
    cr_assert_eq(l.count, 4);
    cr_expect_str_eq(l.urls[0], "http://h1.example/p/1.html");
    cr_expect_str_eq(l.urls[1], "http://h2.example/p/2.html");
    cr_expect_str_eq(l.urls[2], "http://h1.example/deep/dir/x.html?a=1&b=2");
    cr_expect_str_eq(l.urls[3], "http://h1.example/map");
    cr_expect_eq(l.nofollow_skipped, 1);
    links_free(&l);
}

Test(links, meta_nofollow) {
    struct links l = extract("<meta name=ROBOTS content=\"noindex, NOFOLLOW\"><a href=/a>a</a><a href=/b>b</a>",
                             "http://h1.example/");
    cr_expect_eq(l.count, 0);
    cr_expect_eq(l.nofollow_skipped, 2);
    links_free(&l);
}

Test(links, malformed_and_binary) {
    struct links l = extract("<p><b>x<i>y</b></i> 3 < 4 && <div><table><td><a href='/ok'>ok</a><a href=\"/unterminated",
                             "http://h1.example/");
    cr_expect_geq(l.count, 1);
    cr_expect_str_eq(l.urls[0], "http://h1.example/ok");
    links_free(&l);
    char junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++) junk[i] = (char)(i * 131 + 7);
    struct links b = {0};
    cr_expect_geq(links_extract(junk, sizeof(junk), "http://h1.example/", &b), 0);
    links_free(&b);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The dump's ground truth against what the parser reads in the HTML. */
Test(links, synthetic_web_ground_truth) {
    struct webgen g = {.hosts = 12, .pages = 120, .seed = 7, .crawl_delay = 0.2};
    char *dump = NULL;
    size_t dump_len = 0;
    FILE *f = open_memstream(&dump, &dump_len);
    webgen_dump(&g, f);
    fclose(f);
    size_t pages = 0;
    for (char *line = strtok(dump, "\n"); line; line = strtok(NULL, "\n")) {
        char url[256], kind[16], location[256], linkbuf[16384] = "";
        int status;
        if (sscanf(line, "page\t%255s\t%d\t%15s\t%255s\t%16383[^\n]", url, &status, kind, location, linkbuf) < 4) continue;
        if (strcmp(kind, "html") != 0) continue;
        char host[64];
        const char *path = strchr(url + 7, '/');
        snprintf(host, sizeof(host), "%.*s", (int)(path - url - 7), url + 7);
        struct webgen_response r;
        webgen_respond(&g, host, path, &r);
        cr_assert_eq(r.status, 200, "%s", url);
        struct links l = {0};
        cr_assert_geq(links_extract(r.body, r.len, url, &l), 0);
        free(r.body);
        char *want[64];
        size_t nwant = 0;
        char *save = NULL;
        for (char *t = strtok_r(linkbuf, " ", &save); t && nwant < 64; t = strtok_r(NULL, " ", &save)) want[nwant++] = t;
        qsort(want, nwant, sizeof(char *), cmp_str);
        qsort(l.urls, l.count, sizeof(char *), cmp_str);
        cr_assert_eq(l.count, nwant, "%s: %zu links extracted, ground truth has %zu", url, l.count, nwant);
        for (size_t i = 0; i < nwant; i++) cr_assert_str_eq(l.urls[i], want[i], "%s", url);
        links_free(&l);
        pages++;
    }
    cr_expect_gt(pages, 1000);
    free(dump);
}

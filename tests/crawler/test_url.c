/* Unit tests of URL normalization (RFC 3986 section 6). */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "url.h"

static void expect(const char *base, const char *href, const char *want) {
    char *got = url_normalize(base, href);
    if (!want) {
        cr_expect_null(got, "%s + %s gave %s, wanted nothing", base ? base : "-", href, got);
    } else {
        cr_expect_not_null(got, "%s + %s gave nothing", base ? base : "-", href);
        if (got) cr_expect_str_eq(got, want, "%s + %s", base ? base : "-", href);
    }
    free(got);
}

Test(url, case_port_fragment) {
    expect(NULL, "HTTP://H3.Example:80/a#frag", "http://h3.example/a");
    expect(NULL, "https://Example.COM:443/", "https://example.com/");
    expect(NULL, "http://example.com:8080/x", "http://example.com:8080/x");
    expect(NULL, "http://example.com", "http://example.com/");
    expect(NULL, "http://example.com./a", "http://example.com/a");
}

Test(url, dot_segments_and_relative) {
    const char *base = "http://h1.example/a/b/c.html";
    expect(base, "../p/./x.html", "http://h1.example/a/p/x.html");
    expect(base, "../../../../x", "http://h1.example/x");
    expect(base, "/x/./y/../../p/1.html", "http://h1.example/p/1.html");
    expect(base, "d.html?q=1#f", "http://h1.example/a/b/d.html?q=1");
    expect(base, "//H2.EXAMPLE:80/z", "http://h2.example/z");
    expect(base, "  /spaced  ", "http://h1.example/spaced");
    expect(base, "?only=query", "http://h1.example/a/b/c.html?only=query");
}

Test(url, percent_encoding) {
    expect(NULL, "http://e.com/%7euser/%2fslash/%c3%a9", "http://e.com/~user/%2Fslash/%C3%A9");
    expect(NULL, "http://e.com/a b", "http://e.com/a%20b");
}

Test(url, not_crawlable) {
    const char *base = "http://h1.example/";
    expect(base, "mailto:a@b.c", NULL);
    expect(base, "javascript:void(0)", NULL);
    expect(base, "ftp://h1.example/file", NULL);
    expect(base, "", NULL);
    expect(NULL, "relative/only", NULL);
}

Test(url, domain_and_path) {
    char d[64];
    cr_assert_eq(url_domain("http://h1.example/p/1.html", d, sizeof(d)), 0);
    cr_expect_str_eq(d, "h1.example");
    cr_assert_eq(url_domain("http://h1.example:8080/", d, sizeof(d)), 0);
    cr_expect_str_eq(d, "h1.example:8080");
    cr_expect_eq(url_domain("no-scheme", d, sizeof(d)), -1);
    cr_expect_str_eq(url_path("http://h1.example/p/1.html?x=1"), "/p/1.html?x=1");
    cr_expect_str_eq(url_path("http://h1.example/"), "/");
}

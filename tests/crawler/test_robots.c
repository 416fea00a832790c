/* Unit tests of robots.txt parsing and matching (RFC 9309). */
#include <criterion/criterion.h>
#include <string.h>

#include "robots.h"

static struct robots *parse(const char *text) {
    return robots_parse(text, strlen(text), "leakscope-crawler");
}

Test(robots, star_group_and_prefixes) {
    struct robots *r = parse("User-agent: otherbot\nDisallow: /\n\nUser-agent: *\nDisallow: /private/\n"
                             "Disallow: /p/1   # prefix\nCrawl-delay: 0.5\n");
    cr_expect(robots_allowed(r, "/"));
    cr_expect(robots_allowed(r, "/p/2.html"));
    cr_expect_not(robots_allowed(r, "/p/1.html"));
    cr_expect_not(robots_allowed(r, "/p/17.html"));
    cr_expect_not(robots_allowed(r, "/private/x"));
    cr_expect(robots_allowed(r, "/robots.txt"));
    cr_expect_float_eq(r->crawl_delay, 0.5, 1e-9);
    robots_free(r);
}

Test(robots, own_group_replaces_star) {
    struct robots *r = parse("User-agent: *\nDisallow: /p/\n\nUser-agent: LeakScope-Crawler\nDisallow: /slow/\n");
    cr_expect(robots_allowed(r, "/p/1.html"));
    cr_expect_not(robots_allowed(r, "/slow/3.html"));
    robots_free(r);
}

Test(robots, grouped_agents_and_longest_match) {
    struct robots *r = parse("User-agent: a\nUser-agent: leakscope-crawler\nDisallow: /shop\nAllow: /shop/public\n"
                             "Disallow: /*.pdf$\nDisallow: /tmp/*/x\n");
    cr_expect_not(robots_allowed(r, "/shop/cart"));
    cr_expect(robots_allowed(r, "/shop/public/item"));
    cr_expect_not(robots_allowed(r, "/docs/a.pdf"));
    cr_expect(robots_allowed(r, "/docs/a.pdf.html"));
    cr_expect_not(robots_allowed(r, "/tmp/1/2/x"));
    cr_expect(robots_allowed(r, "/tmp/1/2/y"));
    robots_free(r);
}

Test(robots, empty_disallow_and_garbage) {
    struct robots *r = parse("garbage line\n\x01\x02:::\nUser-agent: *\nDisallow:\n");
    cr_expect(robots_allowed(r, "/anything"));
    robots_free(r);
    r = parse("");
    cr_expect(robots_allowed(r, "/"));
    robots_free(r);
}

Test(robots, status_rules) {
    struct robots *r = robots_for_status(404);
    cr_expect(robots_allowed(r, "/x"));
    robots_free(r);
    r = robots_for_status(503);
    cr_expect_not(robots_allowed(r, "/x"));
    robots_free(r);
    r = robots_for_status(0);
    cr_expect_not(robots_allowed(r, "/x"));
    robots_free(r);
}

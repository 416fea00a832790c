/* robots.c - robots.txt parsing and matching (RFC 9309).
 *
 * The crawler fetches robots.txt once per host, caches the text in Redis,
 * and asks robots_allowed before each fetch; Crawl-delay (non-standard but
 * widely used) raises the host's delay. */
#include "robots.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct robots *robots_new(void) {
    return calloc(1, sizeof(struct robots));
}

static void add_rule(struct robots *r, const char *pattern, size_t len, int allow) {
    struct robots_rule *grown = realloc(r->rules, (r->count + 1) * sizeof(*grown));
    if (!grown) return;
    r->rules = grown;
    char *copy = malloc(len + 1);
    if (!copy) return;
    memcpy(copy, pattern, len);
    copy[len] = '\0';
    r->rules[r->count].pattern = copy;
    r->rules[r->count].allow = allow;
    r->count++;
}

static void clear_rules(struct robots *r) {
    for (size_t i = 0; i < r->count; i++) free(r->rules[i].pattern);
    r->count = 0;
    r->crawl_delay = 0;
}

/* How well a User-agent line value names our agent: 0 no match, 1 for "*",
 * 2 + length for a product token that is a prefix of ours. */
static int agent_match(const char *value, size_t len, const char *agent) {
    if (len == 1 && value[0] == '*') return 1;
    if (len > 0 && len <= strlen(agent) && strncasecmp(value, agent, len) == 0)
        return 2 + (int)len;
    return 0;
}

struct robots *robots_parse(const char *text, size_t len, const char *agent) {
    struct robots *r = robots_new();
    if (!r) return NULL;
    int best = 0;          /* match quality of the group whose rules we keep */
    int group_match = 0;   /* match quality of the group being read */
    int in_agents = 0;     /* reading the User-agent lines of a group */
    const char *end = text + len;
    const char *line = text;
    while (line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) eol = end;
        const char *stop = memchr(line, '#', (size_t)(eol - line));
        if (!stop) stop = eol;
        const char *colon = memchr(line, ':', (size_t)(stop - line));
        if (colon) {
            const char *k = line, *kend = colon;
            while (k < kend && isspace((unsigned char)*k)) k++;
            while (kend > k && isspace((unsigned char)kend[-1])) kend--;
            const char *v = colon + 1, *vend = stop;
            while (v < vend && isspace((unsigned char)*v)) v++;
            while (vend > v && isspace((unsigned char)vend[-1])) vend--;
            size_t klen = (size_t)(kend - k), vlen = (size_t)(vend - v);
            if (klen == 10 && strncasecmp(k, "user-agent", 10) == 0) {
                if (!in_agents) group_match = 0;
                in_agents = 1;
                int m = agent_match(v, vlen, agent);
                if (m > group_match) group_match = m;
                if (group_match > best) {
                    best = group_match;
                    clear_rules(r);
                }
            } else {
                in_agents = 0;
                int ours = group_match > 0 && group_match == best;
                if (!ours) {
                    /* a rule of a group we do not follow */
                } else if (klen == 8 && strncasecmp(k, "disallow", 8) == 0) {
                    if (vlen > 0) add_rule(r, v, vlen, 0);
                } else if (klen == 5 && strncasecmp(k, "allow", 5) == 0) {
                    if (vlen > 0) add_rule(r, v, vlen, 1);
                } else if (klen == 11 && strncasecmp(k, "crawl-delay", 11) == 0) {
                    char buf[32];
                    size_t n = vlen < sizeof(buf) - 1 ? vlen : sizeof(buf) - 1;
                    memcpy(buf, v, n);
                    buf[n] = '\0';
                    double d = strtod(buf, NULL);
                    if (d > 0 && d < 3600) r->crawl_delay = d;
                }
            }
        }
        line = eol + 1;
    }
    return r;
}

struct robots *robots_for_status(int status) {
    struct robots *r = robots_new();
    if (r && !(status >= 400 && status < 500)) r->disallow_all = 1;
    return r;
}

/* Match pattern against path: '*' matches any run, a final '$' anchors
 * the end, otherwise the pattern is a prefix. */
static int pattern_matches(const char *pat, const char *path) {
    while (*pat) {
        if (*pat == '*') {
            pat++;
            if (*pat == '\0') return 1;
            for (const char *p = path; *p; p++)
                if (pattern_matches(pat, p)) return 1;
            return pattern_matches(pat, path + strlen(path));
        }
        if (*pat == '$' && pat[1] == '\0') return *path == '\0';
        if (*pat != *path) return 0;
        pat++;
        path++;
    }
    return 1;
}

int robots_allowed(const struct robots *r, const char *path) {
    if (!r) return 1;
    if (r->disallow_all) return 0;
    if (strcmp(path, "/robots.txt") == 0) return 1;
    size_t best_len = 0;
    int verdict = 1;
    for (size_t i = 0; i < r->count; i++) {
        const struct robots_rule *rule = &r->rules[i];
        size_t len = strlen(rule->pattern);
        if (!pattern_matches(rule->pattern, path)) continue;
        if (len > best_len || (len == best_len && rule->allow)) {
            best_len = len;
            verdict = rule->allow;
        }
    }
    return verdict;
}

void robots_free(struct robots *r) {
    if (!r) return;
    clear_rules(r);
    free(r->rules);
    free(r);
}

/* rules.c - parse classification rules and match descriptors and stacks
 * against them (contract in rules.h). Matching runs on the shims' hot path:
 * no allocation, no locale, no lock.
 */
#define _GNU_SOURCE
#include "rules.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The built-in defaults, in the user's syntax. SQLite is whoever has
 * SQLite on the creating stack, not a file name: prometheus_client's *.db
 * files are plain mmapped files. */
static const char default_rules[] =
    "stdio     kind    stdio\n"
    "redis     port    6379\n"
    "https     port    443\n"
    "http      port    80,8080\n"
    "metrics   path    */prometheus_multiproc*/*.db,*/counter_*.db,*/gauge_*.db\n"
    "metrics   path    */histogram_*.db,*/summary_*.db\n"
    "redis     pyfile  */redis/*,*/redis-py/*\n"
    "http      pyfile  */aiohttp/*,*/requests/*,*/urllib3/*,*/httpx/*,*/httpcore/*\n"
    "http      pyfile  */http/client.py,*/urllib/request.py\n"
    "sqlite    pyfile  */sqlite3/*\n"
    "postgres  pyfile  */psycopg/*,*/psycopg2/*,*/psycopg_pool/*\n"
    "metrics   pyfile  */prometheus_client/*\n"
    "frontier  path    */frontier*/*,*.frontier\n"
    "log       path    *.log,*.log.[0-9]*\n"
    "sqlite    module  libsqlite3.so*\n"
    "sqlite    func    sqlite3_*\n"
    "redis     module  libhiredis.so*\n"
    "http      module  libcurl.so*,libcurl-*.so*,libnghttp2.so*\n"
    "http      module  libssl.so*,libcrypto.so*,libgnutls.so*\n"
    "frontier  func    frontier_*\n"
    "parse     module  libgumbo.so*,libxml2.so*\n"
    "pipe      kind    pipe\n"
    "epoll     kind    epoll\n"
    "eventfd   kind    eventfd\n"
    "timerfd   kind    timerfd\n"
    "signalfd  kind    signalfd\n"
    "inotify   kind    inotify\n"
    "memfd     kind    memfd\n"
    "dir       kind    dir\n"
    "device    kind    device\n"
    "file      kind    file\n"
    "socket    kind    socket,other-socket\n"
    "unix      kind    unix\n";

int lks_rules_subsys_id(const struct lks_rules *r, const char *name) {
    for (int i = 0; i < r->nnames; i++)
        if (strcmp(r->names[i], name) == 0) return i;
    return -1;
}

static int subsys_id_add(struct lks_rules *r, const char *name) {
    int id = lks_rules_subsys_id(r, name);
    if (id >= 0) return id;
    if (r->nnames >= LKS_MAX_SUBSYS) return -1;
    snprintf(r->names[r->nnames], LKS_SUBSYS_NAME, "%s", name);
    return r->nnames++;
}

/* Rule entries are written whole when added; only the counts and names
 * need clearing (all 40 KiB would cost every traced process 10 page faults). */
static void rules_reset(struct lks_rules *r) {
    r->nrules = 0;
    r->nstack = 0;
    r->nnames = 0;
    memset(r->names, 0, sizeof r->names);
    subsys_id_add(r, "unattributed");
    subsys_id_add(r, "other");
}

static int valid_name(const char *s) {
    if (!*s || strlen(s) >= LKS_SUBSYS_NAME) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-') return 0;
    return 1;
}

/* Compiles a port list (numbers or ranges 1..65535, comma-separated).
 * Returns 0 if it is malformed. */
static int compile_ports(struct lks_rule *rule, const char *s) {
    rule->nports = 0;
    while (*s) {
        char *end;
        long lo = strtol(s, &end, 10), hi = lo;
        if (end == s || lo < 1 || lo > 65535) return 0;
        s = end;
        if (*s == '-') {
            hi = strtol(s + 1, &end, 10);
            if (end == s + 1 || hi < lo || hi > 65535) return 0;
            s = end;
        }
        if (*s == ',') s++;
        else if (*s) return 0;
        if (rule->nports >= LKS_RULE_PORT_RANGES) return 0;
        rule->port_lo[rule->nports] = (uint16_t)lo;
        rule->port_hi[rule->nports] = (uint16_t)hi;
        rule->nports++;
    }
    return rule->nports > 0;
}

/* Compiles a kind list into a bit mask. Returns 0 on an unknown kind. */
static int compile_kinds(struct lks_rule *rule, const char *s) {
    char one[32];
    rule->kinds = 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        if (n == 0 || n >= sizeof one) return 0;
        memcpy(one, s, n);
        one[n] = 0;
        int k = lks_kind_from_name(one);
        if (k < 0) return 0;
        rule->kinds |= 1u << k;
        s += n;
        if (*s == ',') s++;
    }
    return 1;
}

static int is_plain(const char *p) { return p[strcspn(p, "*?[")] == 0; }

/* Splits a comma list of globs into alts and notes which are suffixes. */
static int compile_globs(struct lks_rule *rule, const char *s) {
    size_t len = strlen(s);
    memcpy(rule->alts, s, len + 1);
    rule->nalts = 1;
    for (size_t i = 0; i < len; i++)
        if (rule->alts[i] == ',') {
            rule->alts[i] = 0;
            rule->nalts++;
        }
    if (rule->nalts > 8) return 0;
    const char *p = rule->alts;
    for (int i = 0; i < rule->nalts; i++, p += strlen(p) + 1) {
        if (p[0] == '*' && is_plain(p + 1)) rule->suffix_alts |= (uint8_t)(1u << i);
        /* Longest run outside brackets with no wildcard in it. */
        size_t best = 0, best_len = 0, run = 0, run_len = 0;
        int in_bracket = 0;
        for (size_t k = 0;; k++) {
            char ch = p[k];
            int literal = ch && !in_bracket && ch != '*' && ch != '?' && ch != '[';
            if (ch == '[') in_bracket = 1;
            else if (ch == ']') in_bracket = 0;
            if (literal) {
                if (!run_len) run = k;
                run_len++;
            } else {
                if (run_len > best_len) best = run, best_len = run_len;
                run_len = 0;
            }
            if (!ch) break;
        }
        rule->lit_off[i] = (uint8_t)(p - rule->alts + (ptrdiff_t)best);
        rule->lit_len[i] = (uint8_t)best_len;
    }
    return 1;
}

/* Parses one set of lines and appends its rules. Returns -1 with err set. */
static int parse_lines(struct lks_rules *r, const char *text, const char *fname, char *err,
                       size_t errlen) {
    static const char *const matchers[] = {"port", "path", "module", "func", "kind", "pyfile",
                                           "pyfunc"};
    int lineno = 0;
    const char *p = text;
    while (*p) {
        char line[512];
        size_t n = strcspn(p, "\n");
        lineno++;
        if (n >= sizeof line) {
            lks_set_err(err, errlen, "%s:%d: line too long", fname, lineno);
            return -1;
        }
        memcpy(line, p, n);
        line[n] = 0;
        p += n;
        if (*p == '\n') p++;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;

        char f[4][512];
        int nf = sscanf(line, "%511s %511s %511s %511s", f[0], f[1], f[2], f[3]);
        if (nf <= 0) continue;
        if (nf != 3) {
            lks_set_err(err, errlen, "%s:%d: expected 'SUBSYSTEM MATCHER PATTERN', got %d field%s",
                    fname, lineno, nf, nf == 1 ? "" : "s");
            return -1;
        }
        if (!valid_name(f[0])) {
            lks_set_err(err, errlen, "%s:%d: bad subsystem name '%s' (letters, digits, _ and -, < %d chars)",
                    fname, lineno, f[0], LKS_SUBSYS_NAME);
            return -1;
        }
        int m = -1;
        for (int i = 0; i < LKS_MATCH_COUNT; i++)
            if (strcmp(f[1], matchers[i]) == 0) m = i;
        if (m < 0) {
            lks_set_err(err, errlen, "%s:%d: unknown matcher '%s' (port, path, module, func, kind, pyfile, pyfunc)",
                    fname, lineno, f[1]);
            return -1;
        }
        if (strlen(f[2]) >= LKS_RULE_PATTERN) {
            lks_set_err(err, errlen, "%s:%d: pattern longer than %d characters", fname, lineno,
                    LKS_RULE_PATTERN - 1);
            return -1;
        }
        struct lks_rule compiled;
        memset(&compiled, 0, sizeof compiled);
        if (m == LKS_MATCH_PORT && !compile_ports(&compiled, f[2])) {
            lks_set_err(err, errlen, "%s:%d: bad port list '%s' (e.g. 80,8080 or 9000-9100, at most %d)",
                    fname, lineno, f[2], LKS_RULE_PORT_RANGES);
            return -1;
        }
        if (m == LKS_MATCH_KIND && !compile_kinds(&compiled, f[2])) {
            lks_set_err(err, errlen, "%s:%d: unknown descriptor kind in '%s'", fname, lineno, f[2]);
            return -1;
        }
        int is_stack = (m == LKS_MATCH_MODULE || m == LKS_MATCH_FUNC || m == LKS_MATCH_PYFILE ||
                        m == LKS_MATCH_PYFUNC);
        if ((m == LKS_MATCH_PATH || is_stack) &&
            !compile_globs(&compiled, f[2])) {
            lks_set_err(err, errlen, "%s:%d: more than 8 globs in '%s'", fname, lineno, f[2]);
            return -1;
        }
        if (r->nrules >= LKS_MAX_RULES) {
            lks_set_err(err, errlen, "%s:%d: more than %d rules", fname, lineno, LKS_MAX_RULES);
            return -1;
        }
        if (is_stack && r->nstack >= LKS_MAX_STACK_RULES) {
            lks_set_err(err, errlen, "%s:%d: more than %d module/func rules (pyfile/pyfunc included)", fname, lineno,
                    LKS_MAX_STACK_RULES);
            return -1;
        }
        int id = subsys_id_add(r, f[0]);
        if (id < 0) {
            lks_set_err(err, errlen, "%s:%d: more than %d subsystems", fname, lineno, LKS_MAX_SUBSYS);
            return -1;
        }
        struct lks_rule *rule = &r->rule[r->nrules++];
        *rule = compiled;
        rule->subsys = (uint16_t)id;
        rule->matcher = (uint8_t)m;
        rule->stack_bit = is_stack ? (uint8_t)r->nstack++ : 0;
        memcpy(rule->pattern, f[2], strlen(f[2]) + 1); /* length checked above */
    }
    return 0;
}

void lks_rules_defaults(struct lks_rules *r) {
    rules_reset(r);
    parse_lines(r, default_rules, "<built-in>", NULL, 0);
}

int lks_rules_parse(struct lks_rules *r, const char *text, const char *fname, char *err,
                    size_t errlen) {
    rules_reset(r);
    if (parse_lines(r, text, fname, err, errlen) != 0 ||
        parse_lines(r, default_rules, "<built-in>", err, errlen) != 0) {
        lks_rules_defaults(r);
        return -1;
    }
    return 0;
}

int lks_rules_load_file(struct lks_rules *r, const char *path, char *err, size_t errlen) {
    /* The path comes from the user or the environment and is opened inside
     * every traced process: only a regular file, never a blocking open, and
     * never the program's own input (/dev/stdin on a pipe or terminal). */
    struct stat st;
    int fd = lks_open_regular(path, 0, &st, err, errlen);
    if (fd < 0) {
        lks_rules_defaults(r);
        return -1;
    }
    static char text[64 * 1024];
    if (st.st_size > (off_t)sizeof text - 1) {
        close(fd);
        lks_set_err(err, errlen, "%s: larger than %zu bytes", path, sizeof text - 1);
        lks_rules_defaults(r);
        return -1;
    }
    size_t n = 0;
    for (;;) {
        ssize_t got = read(fd, text + n, sizeof text - 1 - n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        n += (size_t)got;
        if (n == sizeof text - 1) break;
    }
    close(fd);
    text[n] = 0;
    if (memchr(text, 0, n)) {
        lks_set_err(err, errlen, "%s: binary data in a rules file", path);
        lks_rules_defaults(r);
        return -1;
    }
    return lks_rules_parse(r, text, path, err, errlen);
}

/* Glob with '*', '?' and '[...]' (with '!' or '^' negation and ranges). */
int lks_glob_match(const char *p, const char *s) {
    const char *star_p = NULL, *star_s = NULL;
    while (*s) {
        if (*p == '*') {
            star_p = ++p;
            star_s = s;
            continue;
        }
        if (*p == '?') {
            p++, s++;
            continue;
        }
        if (*p == '[') {
            const char *q = p + 1;
            int neg = (*q == '!' || *q == '^');
            if (neg) q++;
            int hit = 0;
            const char *start = q;
            while (*q && (*q != ']' || q == start)) {
                if (q[1] == '-' && q[2] && q[2] != ']') {
                    if ((unsigned char)*s >= (unsigned char)q[0] &&
                        (unsigned char)*s <= (unsigned char)q[2])
                        hit = 1;
                    q += 3;
                } else {
                    if (*q == *s) hit = 1;
                    q++;
                }
            }
            if (*q == ']' && hit != neg) {
                p = q + 1, s++;
                continue;
            }
            if (*q != ']' && *p == *s) { /* unterminated '[': literal */
                p++, s++;
                continue;
            }
        } else if (*p == *s) {
            p++, s++;
            continue;
        }
        if (!star_p) return 0;
        p = star_p;
        s = ++star_s;
    }
    while (*p == '*') p++;
    return *p == 0;
}

/* Does s (of length sl) contain lit (of length ll)? Haystacks are short
 * paths, where a plain scan beats a two-way search. */
static int contains(const char *s, size_t sl, const char *lit, size_t ll) {
    for (const char *p = s, *end = s + sl - ll; p <= end && sl >= ll; p++) {
        p = memchr(p, lit[0], (size_t)(end - p) + 1);
        if (!p) return 0;
        if (memcmp(p, lit, ll) == 0) return 1;
    }
    return 0;
}

/* Compared from the end: most paths differ in their last byte. */
static inline int ends_with(const char *s, size_t sl, const char *suf, size_t n) {
    if (n > sl) return 0;
    s += sl - n;
    while (n--)
        if (s[n] != suf[n]) return 0;
    return 1;
}

/* Matches s (of length sl) against a rule's pre-split globs; '*.log'-like
 * ones are a suffix compare, the common case. */
static int alts_match(const struct lks_rule *rule, const char *s, size_t sl) {
    const char *p = rule->alts;
    for (int i = 0; i < rule->nalts; i++) {
        size_t pl = strlen(p);
        if ((rule->suffix_alts >> i) & 1) {
            if (ends_with(s, sl, p + 1, pl - 1)) return 1;
        } else if ((!rule->lit_len[i] ||
                    contains(s, sl, rule->alts + rule->lit_off[i], rule->lit_len[i])) &&
                   lks_glob_match(p, s)) {
            return 1;
        }
        p += pl + 1;
    }
    return 0;
}

static int ports_match(const struct lks_rule *rule, unsigned port) {
    for (int i = 0; i < rule->nports; i++)
        if (port >= rule->port_lo[i] && port <= rule->port_hi[i]) return 1;
    return 0;
}

int lks_rules_classify(const struct lks_rules *r, const struct lks_subject *subj) {
    size_t path_len = subj->path ? strlen(subj->path) : 0;
    for (int i = 0; i < r->nrules; i++) {
        const struct lks_rule *rule = &r->rule[i];
        int hit = 0;
        switch (rule->matcher) {
        case LKS_MATCH_PORT:
            hit = subj->port && ports_match(rule, subj->port);
            break;
        case LKS_MATCH_PATH:
            hit = subj->path && alts_match(rule, subj->path, path_len);
            break;
        case LKS_MATCH_MODULE:
        case LKS_MATCH_FUNC:
        case LKS_MATCH_PYFILE:
        case LKS_MATCH_PYFUNC:
            hit = (subj->stack_bits >> rule->stack_bit) & 1;
            break;
        case LKS_MATCH_KIND:
            hit = subj->kind > LKS_KIND_UNKNOWN && subj->kind < LKS_KIND_COUNT &&
                  ((rule->kinds >> subj->kind) & 1);
            break;
        }
        if (hit) return rule->subsys;
    }
    return LKS_SUBSYS_OTHER;
}

int lks_rules_func_first_bytes(const struct lks_rules *r, uint64_t set[4]) {
    memset(set, 0, sizeof(uint64_t) * 4);
    for (int i = 0; i < r->nrules; i++) {
        const struct lks_rule *rule = &r->rule[i];
        if (rule->matcher != LKS_MATCH_FUNC) continue;
        const char *p = rule->alts;
        for (int a = 0; a < rule->nalts; a++, p += strlen(p) + 1) {
            unsigned char c = (unsigned char)p[0];
            if (c == '*' || c == '?' || c == '[' || c == '\\' || c == 0) {
                memset(set, 0xff, sizeof(uint64_t) * 4);
                return 0;
            }
            set[c >> 6] |= (uint64_t)1 << (c & 63);
        }
    }
    return 1;
}

uint64_t lks_rules_stack_bits(const struct lks_rules *r, int nframes,
                              const char *const *modules, const char *const *funcs) {
    uint64_t bits = 0;
    for (int i = 0; i < r->nrules; i++) {
        const struct lks_rule *rule = &r->rule[i];
        if (rule->matcher != LKS_MATCH_MODULE && rule->matcher != LKS_MATCH_FUNC) continue;
        for (int f = 0; f < nframes; f++) {
            const char *name = NULL;
            if (rule->matcher == LKS_MATCH_MODULE && modules && modules[f]) {
                name = strrchr(modules[f], '/');
                name = name ? name + 1 : modules[f];
            } else if (rule->matcher == LKS_MATCH_FUNC && funcs) {
                name = funcs[f];
            }
            if (name && alts_match(rule, name, strlen(name))) {
                bits |= (uint64_t)1 << rule->stack_bit;
                break;
            }
        }
    }
    return bits;
}

uint64_t lks_rules_pyframe_bits(const struct lks_rules *r, const char *file, const char *func) {
    uint64_t bits = 0;
    size_t file_len = file ? strlen(file) : 0, func_len = func ? strlen(func) : 0;
    for (int i = 0; i < r->nrules; i++) {
        const struct lks_rule *rule = &r->rule[i];
        if ((rule->matcher == LKS_MATCH_PYFILE && file && alts_match(rule, file, file_len)) ||
            (rule->matcher == LKS_MATCH_PYFUNC && func && alts_match(rule, func, func_len)))
            bits |= (uint64_t)1 << rule->stack_bit;
    }
    return bits;
}

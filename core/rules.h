/* rules.h - how descriptors and allocations are given a subsystem.
 *
 * A rules file has one rule a line: `SUBSYSTEM MATCHER PATTERN`, '#' starts a
 * comment. Matchers:
 *   port    TCP/UDP peer port (local port for listeners and accepted
 *           sockets); a comma list of numbers or ranges (80,8080,9000-9100)
 *   path    glob on the absolute path of a file (comma list of globs)
 *   module  glob on the file name of a shared object on the creating stack
 *   func    glob on a function name on the creating stack (dynamic symbols)
 *   kind    descriptor kind: file dir pipe socket unix other-socket epoll
 *           eventfd timerfd signalfd inotify memfd stdio device
 *   pyfile  glob on the source path of a Python frame on the creating stack
 *   pyfunc  glob on the qualified name of a Python function on that stack
 * The user's rules come first, then the built-in defaults; the first rule
 * that matches wins. Matching needs no allocation and no lock: the shims call
 * it on their hot path. Stack rules (module, func, pyfile, pyfunc) are evaluated
 * once per frame or call site and cached as a bit mask (at most
 * LKS_MAX_STACK_RULES of them); a stack's bits are the OR of its frames'.
 */
#ifndef LKS_RULES_H
#define LKS_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "segment.h"

#define LKS_MAX_RULES 128
#define LKS_MAX_STACK_RULES 64
#define LKS_RULE_PATTERN 128

enum lks_matcher {
    LKS_MATCH_PORT,
    LKS_MATCH_PATH,
    LKS_MATCH_MODULE,
    LKS_MATCH_FUNC,
    LKS_MATCH_KIND,
    LKS_MATCH_PYFILE,
    LKS_MATCH_PYFUNC,
    LKS_MATCH_COUNT
};

#define LKS_RULE_PORT_RANGES 16

/* One rule, pre-compiled at parse time so matching does no parsing. */
struct lks_rule {
    uint16_t subsys;     /* index into lks_rules.names */
    uint8_t matcher;     /* enum lks_matcher */
    uint8_t stack_bit;   /* for module/func: bit in a site's stack_rule_bits */
    uint8_t nalts;       /* path and stack matchers: globs in alts, '\0'-separated */
    uint8_t nports;      /* port: ranges in port_lo/port_hi */
    uint8_t suffix_alts; /* bit i: alt i is '*' + plain text, matched as a suffix */
    uint32_t kinds;      /* kind: bit per enum lks_fd_kind */
    uint16_t port_lo[LKS_RULE_PORT_RANGES], port_hi[LKS_RULE_PORT_RANGES];
    char pattern[LKS_RULE_PATTERN]; /* as written, for messages */
    char alts[LKS_RULE_PATTERN];
    /* Per alt: the longest literal run a match must contain (offset into
     * alts, length), checked with memmem before the full glob. */
    uint8_t lit_off[8], lit_len[8];
};

struct lks_rules {
    int nrules;
    int nstack; /* stack rules, numbered by stack_bit */
    struct lks_rule rule[LKS_MAX_RULES];
    int nnames;
    char names[LKS_MAX_SUBSYS][LKS_SUBSYS_NAME]; /* subsystem names; see fixed ids below */
};

/* What a rule is matched against. Unknown fields: port 0, path NULL, kind
 * LKS_KIND_UNKNOWN, stack_bits 0. */
struct lks_subject {
    int kind;
    unsigned port;
    const char *path;
    uint64_t stack_bits;
};

/* Fills r with the built-in defaults only. */
void lks_rules_defaults(struct lks_rules *r);

/* Parses text (user rules) in front of the defaults. On a bad line, writes
 * "FILE:LINE: why" into err, leaves r with the defaults only, returns -1. */
int lks_rules_parse(struct lks_rules *r, const char *text, const char *fname, char *err,
                    size_t errlen);

/* Reads and parses a rules file; same error contract as lks_rules_parse. */
int lks_rules_load_file(struct lks_rules *r, const char *path, char *err, size_t errlen);

/* Index of the first matching rule's subsystem, or the kind's default
 * subsystem, or LKS_SUBSYS_OTHER. */
int lks_rules_classify(const struct lks_rules *r, const struct lks_subject *s);

/* Computes a stack's rule bits from its module file names and function names
 * (either may be NULL per frame). */
uint64_t lks_rules_stack_bits(const struct lks_rules *r, int nframes,
                              const char *const *modules, const char *const *funcs);

/* The bytes a function name must start with to match some func rule, as a
 * 256-bit set: a symbol scan skips the rest without matching. Returns 0 and
 * sets every bit when some func rule starts with a wildcard. */
int lks_rules_func_first_bytes(const struct lks_rules *r, uint64_t set[4]);

/* Stack-rule bits of one Python frame: pyfile rules against its source path,
 * pyfunc rules against its qualified name (either may be NULL). */
uint64_t lks_rules_pyframe_bits(const struct lks_rules *r, const char *file, const char *func);

/* Looks a subsystem name up; returns its id or -1. */
int lks_rules_subsys_id(const struct lks_rules *r, const char *name);

/* Shell-style glob: '*', '?', '[...]'. No allocation. Returns 1 on match. */
int lks_glob_match(const char *pattern, const char *s);

#endif

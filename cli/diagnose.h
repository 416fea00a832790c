/* diagnose.h - the verdicts: what is leaking, in which process, how fast, how
 * sure, since when and where, decided from series (history.h) by the growth
 * detector (detect.h), never from one snapshot.
 *
 * Kinds:
 *   fd-growth      a subsystem's open descriptors grow steadily
 *   pool-growth    the same for sockets of which most are idle (a pool that
 *                  keeps creating connections it does not reuse)
 *   retained-heap  a subsystem's live heap grows and one call site holds most
 *                  of the growth (buffers kept after their use)
 *   heap-growth    a subsystem's live heap grows, spread over its sites
 *   emfile         opens failed with EMFILE/ENFILE: the subsystem holding the
 *                  most descriptors then, which subsystems failed, the
 *                  headroom left
 *
 * The verdicts point into the history they came from: keep it alive until
 * diag_list_free.
 */
#ifndef LKS_DIAGNOSE_H
#define LKS_DIAGNOSE_H

#include <stdio.h>

#include "history.h"

enum diag_kind { DIAG_FD_GROWTH, DIAG_POOL_GROWTH, DIAG_RETAINED_HEAP, DIAG_HEAP_GROWTH, DIAG_EMFILE };

#define DIAG_MAX_SITES 3

struct diag_site {
    double share;               /* of what the subsystem holds now */
    const struct hist_site *site;
};

struct diagnosis {
    const struct hist_proc *proc;
    enum diag_kind kind;
    const char *subsystem;
    double rate_per_min;        /* descriptors or bytes; failures for emfile */
    double confidence;          /* 0..1 */
    double since_s;             /* growth (or the first failure) began this long ago */
    double over_s;              /* the window judged */
    double idle_fraction;       /* of the subsystem's sockets, NAN if unknown */
    double now;                 /* open descriptors or live bytes at the end */
    double opened_per_min;      /* opens or allocations per minute: the churn */
    /* emfile only: subsystem is the one holding the most descriptors at the
     * first failure (the cause); failed[] the ones whose opens failed. */
    double failures;            /* in the window, all subsystems */
    size_t nfailed;
    struct {
        const char *subsystem;
        double count;
    } failed[4];                /* most first */
    const char *holder;
    double held, open_total, limit;
    size_t nsites;
    struct diag_site sites[DIAG_MAX_SITES];
};

struct diag_list {
    struct diagnosis *v;
    size_t n;
    double idle_after_s;
};

/* Judges every process of h over its last window_s seconds (0: all).
 * Strongest first: emfile, then descriptors, then heap; then by confidence. Returns 0, or -1
 * when out of memory. */
int diagnose(const struct history *h, double window_s, struct diag_list *out);
void diag_list_free(struct diag_list *l);

const char *diag_kind_name(enum diag_kind k);

/* The JSON array of verdicts: [{pid, process, role, kind, subsystem,
 * rate_per_min, confidence, since_s, idle_fraction, sites[].{share, frames[]},
 * ...}]. */
void diag_json(FILE *out, const struct diag_list *l);

/* One line per verdict ("kind: " + diag_line), or a line saying nothing
 * grows. */
void diag_text(FILE *out, const struct diag_list *l);

/* One verdict as a sentence, without its kind or a newline. */
void diag_line(FILE *out, const struct diag_list *l, const struct diagnosis *d);

#endif

/* top.h - the rows of `leakscope top`: one per live process and subsystem,
 * computed from a history and its verdicts (also used by `demo`). */
#ifndef LKS_TOP_H
#define LKS_TOP_H

#include <stdio.h>

#include "diagnose.h"
#include "history.h"

struct top_row {
    const struct hist_proc *proc;
    const char *subsystem;
    double open, opened_per_min, idle, heap; /* idle NAN if unknown */
    double fd_growth, heap_growth;           /* per minute, Theil-Sen */
    double seconds;                          /* of history behind the row */
    const char *verdict;                     /* kind, or NULL */
};

/* The rows of every process still present in h's last tick, unsorted.
 * Returns their number (*out malloc'ed, caller frees) or -1. */
int top_rows(const struct history *h, const struct diag_list *l, struct top_row **out);

/* One round's table: a header naming where, then at most max_rows rows
 * sorted by growth, each line ending with eol ("\n", or "\033[K\n" to clear
 * what an earlier frame left on a terminal). */
void top_draw(FILE *out, const struct history *h, const struct diag_list *l, size_t max_rows,
              const char *eol, const char *where);

int cmd_top(int argc, char **argv);

#endif

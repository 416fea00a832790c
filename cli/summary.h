/* summary.h - per-process summaries of a list of segments. */
#ifndef LKS_SUMMARY_H
#define LKS_SUMMARY_H

#include <stdio.h>

#include "segdir.h"

/* {"exit_status":S,"processes":[...],"leaks":[...]}; status < 0 omits
 * exit_status. "leaks" are facts at exit (verdict.h). */
void summary_json(FILE *out, struct seg_list *l, int want_fd, int want_heap, int status);

/* The same with "verdicts": the growth verdicts of the run (diagnose.h),
 * omitted if NULL. */
struct diag_list;
void summary_json_verdicts(FILE *out, struct seg_list *l, int want_fd, int want_heap, int status,
                           const struct diag_list *verdicts);

/* A block per process: subsystems, then the call sites holding the most. */
void summary_text(FILE *out, struct seg_list *l, int want_fd, int want_heap);

/* "call sites: table full ..." when a process's site or frame tables lost
 * detail (coarse sites, events without a site, frames); else NULL. */
const char *summary_sites_lost(struct lks_header *h, char *buf, size_t len);

#endif

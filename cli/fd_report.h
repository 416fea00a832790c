/* fd_report.h - the descriptor part of a process summary, from a segment. */
#ifndef LKS_FD_REPORT_H
#define LKS_FD_REPORT_H

#include <stdio.h>

#include "segment.h"
#include "symbolize.h"

/* Writes the JSON value of "fd" for one process: by_subsystem, open_failed,
 * sites of the descriptors still open (and of failures), reconciliation. */
void fd_report_json(FILE *out, struct lks_header *seg, struct lks_symbolizer *sym);

/* Human-readable: a line per subsystem with descriptors, then the call sites
 * holding the most open descriptors. */
void fd_report_text(FILE *out, struct lks_header *seg, struct lks_symbolizer *sym);

/* Age in seconds of the oldest descriptor a site still holds, at exit (or
 * now, for a live process); -1 if none. */
double fd_site_oldest_age(struct lks_header *seg, const struct lks_site *site);

#endif

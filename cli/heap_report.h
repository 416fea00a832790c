/* heap_report.h - the heap part of leakscope's reports (from libmemtrack's
 * segment data: core heap_* counters and the heap area, memtrack/heapseg.h),
 * and the `mark` / `diff` subcommands.
 *
 * Readers only: they work on a validated private copy of a segment, except
 * cmd_mark/cmd_diff which map the live segment read-write to post a mark or a
 * refresh request (the only fields a reader writes).
 */
#ifndef LKS_HEAP_REPORT_H
#define LKS_HEAP_REPORT_H

#include <stdio.h>

#include "segment.h"
#include "symbolize.h"

/* Writes the JSON value of "heap" for one process: {"by_subsystem":{...},
 * "sites":[...], ...}. Sites = what is live at exit/now, largest first, each
 * {subsystem, live_bytes, live_allocs, alloc_bytes, allocs, oldest_age_s,
 * frames[]} with frames from lks_symbolize_frame. Also age buckets per
 * subsystem, the largest live allocations ("retained") and double frees. */
void heap_report_json(FILE *out, struct lks_header *seg, struct lks_symbolizer *sym);

/* Human-readable heap part of the summary (a few lines per subsystem, top
 * sites, largest live allocations). */
void heap_report_text(FILE *out, struct lks_header *seg, struct lks_symbolizer *sym);

/* `leakscope mark PID` and `leakscope diff PID [--json]`: argv[0] is the
 * subcommand name. Return the process exit code; bad input (no such pid, no
 * segment, not traced with the heap shim) gives a clear message on stderr and
 * non-zero. */
int cmd_mark(int argc, char **argv);
int cmd_diff(int argc, char **argv);

#endif

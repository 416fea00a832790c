/* summary.h - per-process summaries of a list of segments. */
#ifndef LKS_SUMMARY_H
#define LKS_SUMMARY_H

#include <stdio.h>

#include "segdir.h"

/* {"exit_status":S,"processes":[...]}; status < 0 omits exit_status. */
void summary_json(FILE *out, struct seg_list *l, int want_fd, int want_heap, int status);

/* A block per process: subsystems, then the call sites holding the most. */
void summary_text(FILE *out, struct seg_list *l, int want_fd, int want_heap);

#endif

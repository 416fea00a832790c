/* verdict.h - what a run concludes: the descriptor leaks it suspects. */
#ifndef LKS_VERDICT_H
#define LKS_VERDICT_H

#include <stdio.h>

#include "segdir.h"

/* A call site is a suspected leak when LKS_LEAK_MIN_OPEN or more of its
 * calls still hold descriptors when its process exited (or now, for a live
 * one): one long-lived descriptor per site (a log, a listener, one pipe or
 * socketpair, which is two descriptors from one call) is normal, a pile is
 * not. Descriptors a forked child inherited are its parent's. Heap growth needs a reference point instead: see mark/diff. */
#define LKS_LEAK_MIN_OPEN 2

/* "leaks":[{pid, comm, resource, subsystem, open, opened, oldest_open_age_s,
 * site, frames[]}], most descriptors first; the value only, no key. */
void verdict_json(FILE *out, struct seg_list *l);

/* A closing block naming each suspected leak on one line, or saying that
 * none was found. */
void verdict_text(FILE *out, struct seg_list *l);

#endif

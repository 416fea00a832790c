/* mtrun.h - running a program under libmemtrack.so for a test and reading
 * the segment it leaves. */
#ifndef MT_RUN_H
#define MT_RUN_H

#include <sys/types.h>

#include "segment.h"

struct mt_run {
    int status;     /* exit code, or 128 + signal */
    pid_t pid;
    char *out, *err; /* whole stdout and stderr, NUL-terminated */
    char dir[256];   /* private directory: segs/ and rules */
    char io[300];    /* where stdin/stdout/stderr files are kept */
};

/* heapprobe MODE under the shim, with the test rules. */
struct mt_run mt_run_probe(const char *mode, const char *stdin_text);

/* Any command, with (preload = 1) or without the shim; 2: both shims. */
struct mt_run mt_run_cmd(const char *const *argv, int preload);

/* A command without the shim, in the segment directory of target (for the
 * leakscope CLI). */
struct mt_run mt_run_in(const struct mt_run *target, const char *const *argv);

/* Starts a command under the shim with pipes to its stdin and stdout. */
struct mt_run mt_start(const char *const *argv, int *to_child, int *from_child);
void mt_wait(struct mt_run *r);

void mt_run_free(struct mt_run *r);

/* The validated segment the process pid left in r's directory. */
struct lks_header *mt_segment(struct mt_run *r, pid_t pid);

struct lks_subsys *mt_subsys(struct lks_header *h, const char *name);

/* Does site (index + 1) have a frame in function func? */
int mt_site_has_func(struct lks_header *h, uint32_t site, const char *func);

#endif

/* history.h - the series of a recording (or of a live watch) in memory, in
 * the shape the verdicts, the report and `top` read: one time axis, and per
 * process, per subsystem and per call site one array of values over it.
 *
 * Every array has h->nt values, NAN where nothing was sampled (the process
 * did not exist yet or any more, a view was off, a site was not in the top K
 * at that tick). A process's own samples are the ticks first..last.
 *
 * Ownership: history_load_db and history_add_round allocate; history_free
 * releases everything, strings included.
 */
#ifndef LKS_HISTORY_H
#define LKS_HISTORY_H

#include <stddef.h>
#include <stdint.h>

enum hist_metric {
    H_FDS_OPEN,
    H_FDS_OPENED,
    H_FD_FAILURES,     /* all errnos */
    H_FD_EMFILE,       /* EMFILE + ENFILE */
    H_SOCKETS_IDLE,
    H_HEAP_LIVE,
    H_HEAP_ALLOCS,     /* counter */
    H_HEAP_OLDER_10S,
    H_HEAP_OLDER_1M,
    H_HEAP_OLDER_10M,
    H_METRICS
};

struct hist_sub {
    char *name;
    double *v[H_METRICS];
};

struct hist_site {
    uint64_t key;
    char *subsystem;
    char *headline; /* "func (file:line) [module]" */
    char *frames;   /* one frame per line */
    double *fds_open;
    double *heap_live;
};

struct hist_proc {
    long pid, ppid;
    uint64_t start_ticks;
    char *comm, *role, *exe;
    double start_time, exit_time; /* Unix s; exit_time 0 if unknown */
    double fds_limit;
    size_t first, last;           /* tick indexes */
    double *rss, *fds_open, *heap_live;
    size_t nsub;
    struct hist_sub *sub;
    size_t nsites;
    struct hist_site *sites;
};

struct history {
    size_t nt;      /* ticks */
    double *t;      /* Unix s */
    double idle_after_s;
    size_t nproc;
    struct hist_proc *proc;
    size_t cap;     /* allocated length of every array */
};

/* Reads a recording (docs/RECORDING.md) read-only. Returns 0, or -1 with a
 * message in err (missing file, not a recording, unknown schema version,
 * inconsistent rows). A recording being written is read as of its last
 * committed tick. */
int history_load_db(const char *path, struct history *h, char *err, size_t errlen);

/* Appends a round of series_scan sampled at t (Unix s), matching processes
 * by pid and start time and sites by key; with max_ticks >= 2, the oldest
 * half is dropped when max_ticks are held (a live watch stays bounded).
 * Start from a zeroed struct history. Returns 0, or -1 when out of memory. */
struct series_round;
int history_add_round(struct history *h, const struct series_round *r, double t, size_t max_ticks);

/* Ends every process's samples at time t_end (Unix s): what came after is
 * not judged (the demo's crawler draining after its crawl). */
void history_clip(struct history *h, double t_end);

void history_free(struct history *h);

/* The series of p's subsystem named name, or NULL. */
struct hist_sub *history_sub(struct hist_proc *p, const char *name);

/* Label for a process: its role if it has one, else its comm. */
const char *history_proc_name(const struct hist_proc *p);

#endif

/* series.h - a traced process as a set of samples: the numbers `serve`
 * exports, `record` stores and `top` shows, computed in one place so every
 * view agrees.
 *
 * A reader keeps what is worth keeping between rounds (the names of call
 * sites, which are costly to symbolize) and asks the kernel once per round
 * which TCP sockets are idle (sockidle.h). A round (series_scan) loads every
 * segment of a directory, whatever its producer, and turns each into a
 * struct series_proc. Per-process label cardinality is bounded: at most
 * LKS_MAX_SUBSYS subsystems, LKS_ERR_SLOTS errno values, SERIES_AGES ages and
 * 2 * top_sites sites.
 *
 * Ownership: the reader owns its caches (site names stay valid until the
 * next round); a round owns its processes and their sites until
 * series_round_free. Segment copies are freed as soon as they are sampled.
 * Not thread-safe: one round at a time per reader.
 */
#ifndef LKS_SERIES_H
#define LKS_SERIES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "segment.h"
#include "sockidle.h"

#define SERIES_AGES 4 /* heap live bytes older than 10 s, 1 min, 10 min, 1 h */
extern const char *const series_age_labels[SERIES_AGES]; /* "10s", "1m", "10m", "1h" */

/* Why a segment file was left out of a round. */
enum series_skip { SERIES_SKIP_INVALID, SERIES_SKIP_FOREIGN, SERIES_SKIP_REASONS };
extern const char *const series_skip_names[SERIES_SKIP_REASONS]; /* "invalid", "foreign" */

struct series_subsys {
    char name[LKS_SUBSYS_NAME];
    int has_fd;   /* descriptor series exist: the fd view is on and it saw activity */
    int has_heap; /* heap series exist */
    int64_t fds_open;
    uint64_t fds_opened, fds_closed;
    uint64_t fd_failed[LKS_ERR_SLOTS]; /* by lks_errno_slot */
    int64_t sockets_idle;              /* -1: unknown (no sock_diag) */
    int64_t heap_live_bytes, heap_live_allocs;
    uint64_t heap_alloc_bytes, heap_allocs, heap_frees;
    int64_t heap_older[SERIES_AGES]; /* -1: unknown (no heap area, or torn) */
};

/* A call site among a process's top K by open descriptors or live bytes. */
struct series_site {
    uint64_t key;   /* the producer's stack hash: stable for the process */
    uint32_t index; /* in the segment's site table (for series_site_frames) */
    char subsystem[LKS_SUBSYS_NAME];
    const char *headline; /* "func (file:line) [module]"; owned by the reader */
    const char *frames;   /* the whole stack, one frame per line; owned by the reader */
    int64_t fds_open;
    int64_t heap_live_bytes, heap_live_allocs;
};

struct series_proc {
    pid_t pid, ppid;
    uint64_t start_ticks; /* tells a reused pid apart */
    double start_time;    /* Unix seconds */
    char comm[16], role[32], session[40], exe[256];
    const char *producer; /* "preload", "ebpf" or "unknown" */
    uint32_t features;    /* LKS_FEATURE_* */
    int alive;            /* the writing process is still running */
    double exit_time;     /* Unix seconds when the producer recorded an exit, else 0 */
    int64_t rss_bytes;    /* -1 when not running */
    int64_t fds_limit;    /* soft RLIMIT_NOFILE */
    uint32_t sites_dropped;
    size_t nsubsys;
    struct series_subsys subsys[LKS_MAX_SUBSYS];
    size_t nsites;
    struct series_site *sites; /* owned by the round */
    char path[600];            /* the segment file */
};

struct series_round {
    struct series_proc *procs; /* sorted by pid */
    size_t n;
    uint64_t skipped[SERIES_SKIP_REASONS];
    int sockdiag_ok;          /* 0: idle sockets unknown this round */
    char sockdiag_err[200];
};

struct series_reader;

/* top_sites: K per process and per view (default 10); idle_ms: how long a
 * socket must be silent to count as idle. NULL only when out of memory. */
struct series_reader *series_reader_new(unsigned top_sites, uint32_t idle_ms);
void series_reader_free(struct series_reader *r);

/* Loads every segment in dir (pids in only[] if n_only > 0) and samples it.
 * Returns 0, or -1 if dir cannot be read (errno set). */
int series_scan(struct series_reader *r, const char *dir, const pid_t *only, size_t n_only,
                struct series_round *out);
void series_round_free(struct series_round *round);

/* Samples one validated segment copy (what series_scan does per file); the
 * caller keeps ownership of seg. Returns 0, or -1 when out of memory. */
int series_sample(struct series_reader *r, struct lks_header *seg, const struct sockidle *idle,
                  struct series_proc *out);
void series_proc_free(struct series_proc *p);

#endif

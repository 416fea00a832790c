/* target.h - one process traced from outside (by `leakscope attach`): its
 * segment, written by the loader with the same layout, rules and meaning as
 * the preload shims' (producer LKS_PRODUCER_EBPF), its module table from
 * /proc/PID/maps, and call-site interning for stacks unwound elsewhere.
 *
 * The loader is the only writer of the segment; it is single-threaded, so
 * nothing here locks. Counters are still written with atomics because readers
 * map the file concurrently.
 */
#ifndef LKS_TARGET_H
#define LKS_TARGET_H

#include <stdint.h>
#include <sys/types.h>

#include "rules.h"
#include "segment.h"
#include "symbolize.h"

/* An executable mapping of the target and the module it belongs to. */
struct target_map {
    uint64_t start, end;
    uint16_t module;
};

struct lks_target {
    pid_t pid;
    struct target_map *maps; /* owned */
    size_t nmaps;
    struct lks_header *seg;   /* owned mapping */
    char path[600];           /* the segment file */
    const struct lks_rules *rules; /* borrowed */
    struct lks_symbolizer *sym;    /* function names for stack rules */
    uint64_t maps_gen;        /* module table reloads */
    int gone;                 /* the process exited */
    int64_t event_ns;         /* when the event being replayed happened (CLOCK_MONOTONIC):
                                 set by the loader before each target_fd_* call */
    int64_t snapshot_ns;      /* when target_fd_snapshot finished reading /proc */
};

/* Creates pid's segment in dir for the given features (LKS_FEATURE_*),
 * labelled with session. Refuses (returns -1 with a message) if a live
 * segment for pid already exists there, e.g. the process runs under the
 * shims. */
int target_open(struct lks_target *t, pid_t pid, const char *dir, const char *session,
                const struct lks_rules *rules, uint32_t features, char *err, size_t errlen);

/* Marks the segment final (the process exited if it did) and unmaps it. */
void target_close(struct lks_target *t);

/* Module index of a code address in the target, reading /proc/PID/maps again
 * when the address is in no known module (dlopen). LKS_NO_MODULE if none. */
uint16_t target_module(struct lks_target *t, uint64_t addr);

/* Stack-rule bits of frames (return addresses). */
uint64_t target_stack_bits(struct lks_target *t, const uint64_t *frames, int n);

/* Finds or creates the site (stack, subsys); returns index + 1, or 0 when
 * the table is full (counted in sites_dropped). */
uint32_t target_site(struct lks_target *t, const uint64_t *frames, int n, uint64_t bits,
                     int subsys);

/* The site for index + 1, or NULL. */
struct lks_site *target_site_get(struct lks_target *t, uint32_t site);

/* Descriptor bookkeeping, mirroring fdtrack's (fdtrack/fdtable.c). */
void target_fd_created(struct lks_target *t, int fd, int err, int kind, const char *path,
                       unsigned port, const uint64_t *frames, int n);
void target_fd_dup(struct lks_target *t, int oldfd, int newfd, int err, const uint64_t *frames,
                   int n);
void target_fd_accepted(struct lks_target *t, int listener, int fd, int err,
                        const uint64_t *frames, int n);
void target_fd_closed(struct lks_target *t, int fd);
void target_fd_close_range(struct lks_target *t, unsigned first, unsigned last);
void target_fd_set_port(struct lks_target *t, int fd, unsigned port, int listener);

/* Records every descriptor open now (from /proc/PID/fd) as "before attach"
 * (LKS_FD_INHERITED, no site). Returns how many. */
int target_fd_snapshot(struct lks_target *t);

/* A child forked by parent while traced (c just opened): its table is the
 * parent's as replayed up to the fork, which is the kernel's copy at that
 * moment; each entry is inherited (LKS_FD_FORKED), keeps the parent's call
 * site and counts in no site of the child's, as with the shims. Its
 * identity and modules are the parent's until it execs. Reading
 * /proc/CHILD/fd instead would see the child later than the fork, and its
 * first creations twice. */
void target_fork_from(struct lks_target *c, struct lks_target *parent);

/* After exec: drops entries the kernel no longer has (close-on-exec):
 * those whose bit is clear in open (nbits descriptors, from the exec
 * event), beyond that those /proc no longer lists. */
void target_fd_reconcile(struct lks_target *t, const unsigned char *open, unsigned nbits);

#endif

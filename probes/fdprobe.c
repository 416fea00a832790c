/* fdprobe.c - loader of the descriptor probe: attaches fdprobe.bpf.c for
 * the target, unwinds the stacks of creations and replays every event into
 * the target's segment with fdtrack's bookkeeping (target.c).
 *
 * Order at attach: programs first, then the snapshot of /proc/PID/fd, then
 * the queued events. An event for a descriptor already in the snapshot
 * replaces (create) or removes (close) it, so the result is exact whatever
 * happened between attaching and reading /proc.
 */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdprobe.h"
#include "fdprobe.skel.h"
#include "probes.h"
#include "unwind.h"

static int target_index(struct probes *p, pid_t pid) {
    for (int i = 0; i < p->ntargets; i++)
        if (p->targets[i].pid == pid) return i;
    return -1;
}

/* Refines a file's kind from its mode and path, as fdtrack does. */
static int file_kind(unsigned mode, const char *path) {
    if (S_ISDIR(mode)) return LKS_KIND_DIR;
    if (S_ISCHR(mode) || S_ISBLK(mode)) return LKS_KIND_DEVICE;
    if (S_ISFIFO(mode)) return LKS_KIND_PIPE;
    if (path && strncmp(path, "/dev/", 5) == 0 && strncmp(path, "/dev/shm/", 9) != 0)
        return LKS_KIND_DEVICE;
    return LKS_KIND_FILE;
}

/* Absolute form of an open's path: relative ones against the target's cwd
 * (dirfd-relative opens resolve through the new descriptor's link). */
static const char *absolute_path(pid_t pid, int fd, const char *path, char *buf, size_t len) {
    if (!path[0] || path[0] == '/') return path;
    char link[64];
    snprintf(link, sizeof link, "/proc/%d/fd/%d", (int)pid, fd);
    ssize_t n = fd >= 0 ? readlink(link, buf, len - 1) : -1;
    if (n <= 0) {
        snprintf(link, sizeof link, "/proc/%d/cwd", (int)pid);
        n = readlink(link, buf, len - 1);
        if (n <= 0) return path;
        buf[n] = 0;
        size_t used = (size_t)n;
        snprintf(buf + used, len - used, "/%s", path);
        return buf;
    }
    buf[n] = 0;
    return buf;
}

static int add_target(struct probes *p, pid_t pid, uint32_t features) {
    if (p->ntargets >= PROBES_MAX_TARGETS) return -1;
    char err[300];
    struct lks_target *t = &p->targets[p->ntargets];
    if (target_open(t, pid, p->opts.dir, p->opts.session, p->opts.rules, features, err,
                    sizeof err) != 0) {
        fprintf(stderr, "leakscope attach: pid %d: %s\n", (int)pid, err);
        return -1;
    }
    p->unwinders[p->ntargets] = NULL;
    return p->ntargets++;
}

/* A child forked while traced: followed from the parent's table as
 * replayed so far (target_fork_from). Past PROBES_MAX_TARGETS live ones,
 * the kernel is told to drop it and the output says how many. */
static void follow_child(struct probes *p, struct lks_target *parent, pid_t child) {
    int c = add_target(p, child, LKS_FEATURE_FD);
    if (c >= 0) {
        target_fork_from(&p->targets[c], parent);
        return;
    }
    uint32_t key = (uint32_t)child;
    bpf_map__delete_elem(p->fd_skel->maps.targets, &key, sizeof key, 0);
    p->children_missed++;
}

/* A child's last thread exited: its segment is final, its slot is free for
 * the next child (a server forking one per job runs many more than fit). */
static void drop_child(struct probes *p, int i) {
    target_close(&p->targets[i]);
    unwinder_free(p->unwinders[i]);
    p->ntargets--;
    if (i != p->ntargets) {
        p->targets[i] = p->targets[p->ntargets];
        p->unwinders[i] = p->unwinders[p->ntargets];
    }
    memset(&p->targets[p->ntargets], 0, sizeof p->targets[p->ntargets]);
    p->unwinders[p->ntargets] = NULL;
}

/* A successful exec: the descriptors it left (nbits of them in the event's
 * bitmap), the new program's name and image. It is no longer a fork
 * without exec. */
static void exec_done(struct probes *p, int i, const struct fdp_event *e, unsigned nbits) {
    struct lks_target *t = &p->targets[i];
    char link[64], exe[sizeof t->seg->exe];
    target_fd_reconcile(t, e->stack, nbits);
    if (p->unwinders[i]) unwinder_refresh(p->unwinders[i]);
    t->seg->forked_from = 0;
    snprintf(t->seg->comm, sizeof t->seg->comm, "%.*s", (int)sizeof t->seg->comm - 1, e->path);
    snprintf(link, sizeof link, "/proc/%d/exe", (int)t->pid);
    ssize_t n = readlink(link, exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        memcpy(t->seg->exe, exe, (size_t)n + 1);
    }
}

static int on_event(void *ctx, void *data, size_t size) {
    struct probes *p = ctx;
    const struct fdp_event *e = data;
    if (size < sizeof *e) return 0;
    int i = target_index(p, e->tgid);
    if (i < 0) return 0;
    struct lks_target *t = &p->targets[i];
    t->event_ns = (int64_t)e->ts_ns;

    uint64_t frames[LKS_MAX_FRAMES];
    int n = 0;
    if (e->type == FDP_CREATE || e->type == FDP_DUP || e->type == FDP_ACCEPT) {
        p->stacks++;
        if (e->stack_len == 0 || e->stack_len > FDP_STACK_MAX ||
            size < sizeof *e + e->stack_len) {
            p->stacks_missing++;
        } else {
            if (!p->unwinders[i]) p->unwinders[i] = unwinder_new(t->pid);
            if (p->unwinders[i]) {
                n = unwind_stack(p->unwinders[i], (const uint64_t *)e->regs, e->stack, e->stack_len, frames,
                                 LKS_MAX_FRAMES);
                if (n == 0) { /* new modules since the last report (dlopen)? */
                    unwinder_refresh(p->unwinders[i]);
                    n = unwind_stack(p->unwinders[i], (const uint64_t *)e->regs, e->stack, e->stack_len, frames,
                                     LKS_MAX_FRAMES);
                }
            }
            if (n > 0) p->stacks_unwound++;
        }
        if (n == 0 && e->regs[16]) frames[n++] = e->regs[16] + 1; /* at least where it was */
    }

    switch (e->type) {
    case FDP_CREATE: {
        int kind = (int)e->kind;
        char abs[600];
        const char *path = NULL;
        if (kind == LKS_KIND_FILE) {
            path = absolute_path(t->pid, e->fd, e->path, abs, sizeof abs);
            kind = file_kind(e->mode, path);
        }
        target_fd_created(t, e->fd, e->err, kind, path, 0, frames, n);
        if (e->fd2 >= 0) target_fd_created(t, e->fd2, 0, kind, NULL, 0, frames, n);
        break;
    }
    case FDP_DUP:
        target_fd_dup(t, e->fd2, e->fd, e->err, frames, n);
        break;
    case FDP_ACCEPT:
        target_fd_accepted(t, e->fd2, e->fd, e->err, frames, n);
        break;
    case FDP_CLOSE:
        target_fd_closed(t, e->fd);
        break;
    case FDP_CLOSE_RANGE:
        target_fd_close_range(t, (unsigned)e->fd, (unsigned)e->fd2);
        break;
    case FDP_PORT:
        target_fd_set_port(t, e->fd, e->port, (int)e->listener);
        break;
    case FDP_EXEC:
        exec_done(p, i, e, size >= sizeof *e + e->stack_len ? e->stack_len * 8 : 0);
        break;
    case FDP_FORK:
        follow_child(p, t, (pid_t)e->fd);
        break;
    case FDP_EXIT:
        t->gone = 1;
        if (i > 0) drop_child(p, i);
        break;
    }
    return 0;
}

int fdprobe_attach(struct probes *p, char *err, size_t errlen) {
    struct fdprobe_bpf *skel = fdprobe_bpf__open();
    if (!skel) {
        lks_set_err(err, errlen, "cannot open the descriptor probe: %s", strerror(errno));
        return -1;
    }
    p->fd_skel = skel;
    if (fdprobe_bpf__load(skel) != 0) {
        lks_set_err(err, errlen, "cannot load the descriptor probe: %s", strerror(errno));
        return -1;
    }
    uint32_t pid = (uint32_t)p->opts.pid, one = 1;
    if (bpf_map__update_elem(skel->maps.targets, &pid, sizeof pid, &one, sizeof one, BPF_ANY)) {
        lks_set_err(err, errlen, "cannot set the target: %s", strerror(errno));
        return -1;
    }
    if (fdprobe_bpf__attach(skel) != 0) {
        lks_set_err(err, errlen, "cannot attach the descriptor probe: %s", strerror(errno));
        return -1;
    }
    p->ring = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, p, NULL);
    if (!p->ring) {
        lks_set_err(err, errlen, "cannot read the probe's events: %s", strerror(errno));
        return -1;
    }
    target_fd_snapshot(&p->targets[0]);
    return 0;
}

/* Counters the kernel side kept (summed over CPUs). */
static uint64_t stat_sum(struct fdprobe_bpf *skel, uint32_t which) {
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0 || ncpu > 4096) return 0;
    uint64_t vals[ncpu], sum = 0;
    if (bpf_map__lookup_elem(skel->maps.fdp_stats, &which, sizeof which, vals,
                             sizeof(uint64_t) * (size_t)ncpu, 0) != 0)
        return 0;
    for (int i = 0; i < ncpu; i++) sum += vals[i];
    return sum;
}

void fdprobe_detach(struct probes *p) {
    if (p->fd_skel) {
        fdprobe_bpf__detach(p->fd_skel);
        if (p->ring) ring_buffer__consume(p->ring); /* what was queued before detaching */
        p->events_lost += stat_sum(p->fd_skel, FDP_STAT_LOST);
    }
    if (p->ring) ring_buffer__free(p->ring);
    p->ring = NULL;
    if (p->fd_skel) fdprobe_bpf__destroy(p->fd_skel);
    p->fd_skel = NULL;
    for (int i = 0; i < p->ntargets; i++) {
        unwinder_free(p->unwinders[i]);
        p->unwinders[i] = NULL;
    }
}

int probes_poll(struct probes *p, int timeout_ms) {
    if (p->ring) ring_buffer__poll(p->ring, timeout_ms);
    else usleep((useconds_t)timeout_ms * 1000);
    if (!p->ring && kill(p->opts.pid, 0) != 0) p->targets[0].gone = 1;
    return p->targets[0].gone;
}

/* trace.c - the runtime inside a traced process (contract in trace.h):
 * one segment per process, the rules, call-site interning, fork and exit.
 *
 * Built as libleakscope-trace.so so that libfdtrack.so and libmemtrack.so,
 * preloaded together, share one segment and one set of counters.
 */
#define _GNU_SOURCE
#include "trace.h"

#include "modmap.h"
#include "pyframes.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

LKS_EXPORT __thread int lks_in_hook __attribute__((tls_model("initial-exec")));

enum { ST_NONE, ST_BUSY, ST_READY, ST_OFF };
static _Atomic int g_state;
/* The segment pointer lives in a page the kernel zeroes in the child of any
 * fork (MADV_WIPEONFORK): a child made by a raw fork/clone syscall runs no
 * atfork handler, finds it NULL and gets a segment of its own instead of
 * writing into its parent's. g_mapped, in ordinary memory, is the segment
 * this image has mapped (the parent's, in such a child). */
struct live {
    _Atomic(struct lks_header *) seg;
};
static struct live g_live_static;
static struct live *g_live = &g_live_static;
static struct lks_header *g_mapped;
static struct lks_rules g_rules;
static char g_dir[400];
static void (*g_fork_hooks[4])(void);
static _Atomic int g_nfork_hooks;
/* The descriptor table as it was at the fork (private memory, so the child
 * has it exactly): see fork_prepare. */
static struct lks_fd *g_fork_fds;
static uint32_t g_fork_nfd;

/* Stack hash -> stack-rule bits: a known stack costs one look-up. */
#define BITS_CACHE 16384
static struct {
    _Atomic uint64_t hash;
    _Atomic uint64_t bits;
} g_bits_cache[BITS_CACHE];

static void say(const char *msg) {
    char line[600];
    int n = snprintf(line, sizeof line, "leakscope: %s\n", msg);
    if (n > 0) {
        ssize_t w = write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        (void)w;
    }
}

static void read_small_file(const char *path, char *buf, size_t len) {
    buf[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0) n = 0;
    buf[n] = 0;
    char *nl = strchr(buf, '\n');
    if (nl) *nl = 0;
}

/* Fills the identity part of the header for the current process. */
static void fill_identity(struct lks_header *h) {
    struct timespec ts;
    struct rlimit rl;
    h->producer = LKS_PRODUCER_PRELOAD;
    h->pid = getpid();
    h->ppid = getppid();
    h->proc_start_ticks = lks_proc_start_ticks(h->pid);
    clock_gettime(CLOCK_REALTIME, &ts);
    h->start_realtime_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    h->start_mono_ns = lks_now_ns();
    read_small_file("/proc/self/comm", h->comm, sizeof h->comm);
    int py_major = 0, py_minor = 0;
    int py = lks_py_init(&py_major, &py_minor);
    h->py_version = py != LKS_PY_ABSENT ? (uint32_t)(py_major << 8 | py_minor) : 0;
    h->py_frames = py == LKS_PY_ACTIVE ? LKS_PYFRAMES_READ
                   : py == LKS_PY_UNKNOWN ? LKS_PYFRAMES_UNKNOWN : 0;
    ssize_t n = readlink("/proc/self/exe", h->exe, sizeof h->exe - 1);
    h->exe[n > 0 ? n : 0] = 0;
    const char *role = getenv("LEAKSCOPE_ROLE");
    const char *session = getenv("LEAKSCOPE_SESSION");
    snprintf(h->role, sizeof h->role, "%s", role ? role : "");
    snprintf(h->session, sizeof h->session, "%s", session ? session : "");
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        h->rlimit_nofile_cur = rl.rlim_cur;
        h->rlimit_nofile_max = rl.rlim_max;
    }
}

static uint32_t fds_capacity(void) {
    const char *env = getenv("LEAKSCOPE_FD_CAP");
    struct rlimit rl;
    uint64_t cap = LKS_DEFAULT_FDS;
    if (env && *env) cap = strtoull(env, NULL, 10);
    else if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max < cap)
        cap = rl.rlim_max;
    if (cap < LKS_MIN_FDS) cap = LKS_MIN_FDS;
    if (cap > (1u << 20)) cap = 1u << 20;
    return (uint32_t)cap;
}

static uint64_t heap_area_size(void) {
    const char *env = getenv("LEAKSCOPE_HEAP_AREA");
    return env && *env ? strtoull(env, NULL, 10) : (uint64_t)1 << 20;
}

/* A CPython process has a site per Python call path that allocates
 * (imports alone make thousands): four times the table. The file is
 * sparse, so unused slots cost nothing. */
static uint32_t sites_capacity(void) {
    return lks_py_init(NULL, NULL) == LKS_PY_ACTIVE ? 4 * LKS_DEFAULT_SITES : LKS_DEFAULT_SITES;
}

static struct lks_header *new_segment(char *err, size_t errlen) {
    return lks_segment_create(g_dir, getpid(), fds_capacity(), sites_capacity(),
                              heap_area_size(), err, errlen);
}

static void write_subsys_names(struct lks_header *h) {
    struct lks_subsys *ss = lks_subsys_table(h);
    for (int i = 0; i < g_rules.nnames; i++) {
        memcpy(ss[i].name, g_rules.names[i], LKS_SUBSYS_NAME);
        atomic_store(&ss[i].used, 1);
    }
    atomic_store(&h->subsys_used, (uint32_t)g_rules.nnames);
}

static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);
static void fork_child_segment(int raw);
static void fork_fds_release(void);
static struct lks_header *fork_materialize(void);
/* Sites and frames are claimed in order (see claim_slot). */
struct claim_index {
    _Atomic(_Atomic uint64_t *) map; /* 2 * cap entries */
    _Atomic uint32_t next;           /* rows claimed so far */
};
static struct claim_index g_sites_ix, g_frames_ix;
static uint32_t claimed_prefix(struct claim_index *ix, uint32_t cap);
static uint32_t frame_slot(struct lks_header *h, uint64_t key, struct lks_frame **fresh);

/* A traced parent already said why tracing is off; its children stay quiet.
 * Reads /proc/<ppid>/maps for our runtime (failure path only). */
static int parent_is_traced(void) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)getppid());
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    int found = 0;
    size_t keep = 0;
    ssize_t n;
    while (!found && (n = read(fd, buf + keep, sizeof buf - 1 - keep)) > 0) {
        buf[keep + (size_t)n] = 0;
        found = strstr(buf, "libleakscope-trace") != NULL;
        /* Keep a tail so a name split across reads is still found. */
        size_t len = keep + (size_t)n;
        keep = len > 64 ? 64 : len;
        memmove(buf, buf + len - keep, keep);
    }
    close(fd);
    return found;
}

static void say_tracing_off(const char *why) {
    if (parent_is_traced()) return;
    char msg[700];
    snprintf(msg, sizeof msg, "tracing off, program runs untouched: %s", why);
    say(msg);
}

static void init_locked(void) {
    char err[600];
    const char *off = getenv("LEAKSCOPE_OFF");
    if (off && *off && strcmp(off, "0") != 0) {
        atomic_store(&g_state, ST_OFF);
        return;
    }
    const char *rules = getenv("LEAKSCOPE_RULES");
    if (rules && *rules) {
        if (lks_rules_load_file(&g_rules, rules, err, sizeof err) != 0) {
            char msg[700];
            snprintf(msg, sizeof msg, "rules: %s; using the built-in defaults", err);
            say(msg);
        }
    } else {
        lks_rules_defaults(&g_rules);
    }
    if (lks_segment_dir(g_dir, sizeof g_dir) != 0) {
        say_tracing_off("segment directory path too long");
        atomic_store(&g_state, ST_OFF);
        return;
    }
    struct lks_header *h = NULL;
    if (lks_segment_dir_prepare(g_dir, err, sizeof err) == 0) h = new_segment(err, sizeof err);
    if (!h) {
        say_tracing_off(err);
        atomic_store(&g_state, ST_OFF);
        return;
    }
    fill_identity(h);
    write_subsys_names(h);
    lks_segment_dir_sweep_maybe(g_dir); /* dead segments of this user (docs/SEGMENTS.md) */
    lks_modmap_init(&g_rules);
    lks_stack_init();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    struct live *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page != MAP_FAILED && madvise(page, 4096, MADV_WIPEONFORK) == 0) g_live = page;
    else if (page != MAP_FAILED) munmap(page, 4096);
    g_mapped = h;
    atomic_store(&g_live->seg, h);
    atomic_store(&g_state, ST_READY);
}

/* A fork child's segment is made at its first own event, not at the fork:
 * most children exec at once, and making a segment, copying the parent's
 * into it and having the exec'd image replace it was most of the cost of a
 * fork + exec. Until then the child writes nothing shared: the sites it
 * finds are its parent's fork-time prefix (read through the parent's
 * mapping, never changed), its descriptors the snapshot of fork_prepare,
 * and its heap counters private (libmemtrack's first tick, 50 ms, makes the
 * segment of a child that allocates only at known sites). g_pending_pid is
 * that child's pid: a vfork child sharing its memory, or a raw clone of it,
 * is not it. */
static _Atomic pid_t g_pending_pid;
static _Atomic int g_materializing;
static __thread int t_materializing __attribute__((tls_model("initial-exec")));

/* Makes the pending child's segment now. Another thread doing it is waited
 * for; this thread doing it (a signal handler that interrupted it) gets NULL. */
static struct lks_header *fork_materialize(void) {
    pid_t me = atomic_load(&g_pending_pid);
    if (!me || t_materializing || (lks_in_hook & LKS_IN_VFORK_CHILD) || getpid() != me)
        return NULL;
    int zero = 0;
    if (!atomic_compare_exchange_strong(&g_materializing, &zero, 1)) {
        while (atomic_load(&g_pending_pid) && !atomic_load(&g_live->seg)) sched_yield();
        return atomic_load(&g_live->seg);
    }
    t_materializing = 1;
    if (!atomic_load(&g_live->seg)) fork_child_segment(0);
    fork_fds_release();
    atomic_store(&g_pending_pid, 0);
    t_materializing = 0;
    atomic_store(&g_materializing, 0);
    return atomic_load(&g_live->seg);
}

/* A child of a fork that ran no atfork handler (raw fork/clone syscall), or
 * one whose other atfork handlers call us before ours ran: give it its own
 * segment now; or a pending fork child at its first event. NULL if this is
 * neither. */
static struct lks_header *forked_unseen(void) {
    if (atomic_load(&g_pending_pid)) return fork_materialize();
    if (!g_mapped || g_mapped->pid == getpid()) return NULL;
    fork_child_segment(1);
    return atomic_load(&g_live->seg);
}

LKS_EXPORT struct lks_header *lks_trace_init(void) {
    int st = atomic_load_explicit(&g_state, memory_order_acquire);
    if (st == ST_READY) {
        struct lks_header *h = atomic_load_explicit(&g_live->seg, memory_order_relaxed);
        return h ? h : forked_unseen();
    }
    if (st != ST_NONE) return NULL;
    int expected = ST_NONE;
    if (!atomic_compare_exchange_strong(&g_state, &expected, ST_BUSY)) return NULL;
    lks_in_hook++;
    init_locked();
    lks_in_hook--;
    return atomic_load(&g_live->seg);
}

LKS_EXPORT struct lks_header *lks_trace_seg(void) {
    struct lks_header *h = atomic_load_explicit(&g_live->seg, memory_order_acquire);
    if (__builtin_expect(h != NULL, 1) || !atomic_load_explicit(&g_pending_pid, memory_order_relaxed))
        return h;
    return fork_materialize();
}

LKS_EXPORT int lks_trace_pending_fork(void) {
    return atomic_load_explicit(&g_pending_pid, memory_order_relaxed) != 0 &&
           !atomic_load_explicit(&g_live->seg, memory_order_relaxed);
}

LKS_EXPORT const struct lks_rules *lks_trace_rules(void) { return &g_rules; }

LKS_EXPORT void lks_trace_feature(uint32_t feature) {
    struct lks_header *h = lks_trace_seg();
    if (h) atomic_fetch_or(&h->features, feature);
}

LKS_EXPORT void lks_trace_on_fork_child(void (*fn)(void)) {
    int i = atomic_fetch_add(&g_nfork_hooks, 1);
    if (i < 4) g_fork_hooks[i] = fn;
}

/* The pages of the parent's segment file that hold data (tmpfs keeps
 * holes): a fork copies those and nothing else, so a child of a small
 * process stays small. Past PRESENT_MAX ranges the rest counts as data; if
 * the file cannot be opened, everything does. The copy goes file to file in
 * the kernel (copy_file_range) when both files can be opened: a CPython
 * parent has megabytes of sites, and copying them through two mappings
 * cost a page fault per page (25 ms per fork). */
#define PRESENT_MAX 128
struct present {
    int n;
    int parent_fd, child_fd; /* -1: copy through the mappings */
    uint64_t lo[PRESENT_MAX], hi[PRESENT_MAX];
};

static int open_segment_file(pid_t pid, int flags) {
    char path[512];
    snprintf(path, sizeof path, "%s/%d.seg", g_dir, (int)pid);
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags | O_CLOEXEC | O_NOFOLLOW);
}

static void present_ranges(struct lks_header *parent, struct present *pr) {
    pr->n = 0;
    int fd = open_segment_file(parent->pid, O_RDONLY);
    struct stat st;
    /* The file must be the one mapped (same size): a parent that exited and
     * left its name to a new process must not be copied from. */
    if (fd >= 0 && (fstat(fd, &st) != 0 || (uint64_t)st.st_size != parent->total_size)) {
        syscall(SYS_close, fd);
        fd = -1;
    }
    pr->parent_fd = fd;
    off_t off = 0, size = (off_t)parent->total_size;
    while (fd >= 0 && off < size && pr->n < PRESENT_MAX - 1) {
        off_t data = lseek(fd, off, SEEK_DATA);
        if (data < 0) break;
        off_t hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0) hole = size;
        pr->lo[pr->n] = (uint64_t)data;
        pr->hi[pr->n++] = (uint64_t)hole;
        off = hole;
    }
    if (fd < 0 || (off < size && pr->n == PRESENT_MAX - 1)) {
        pr->lo[pr->n] = fd < 0 ? 0 : (uint64_t)off;
        pr->hi[pr->n++] = (uint64_t)size;
    }
}

/* Copies [lo, hi) of the parent's file into the child's; 0 when the
 * kernel did it all. */
static int copy_in_kernel(const struct present *pr, uint64_t lo, uint64_t hi) {
    if (pr->parent_fd < 0 || pr->child_fd < 0) return -1;
    loff_t in = (loff_t)lo, out = (loff_t)lo;
    while ((uint64_t)in < hi) {
        ssize_t n = copy_file_range(pr->parent_fd, &in, pr->child_fd, &out, hi - (uint64_t)in, 0);
        if (n <= 0) return -1;
    }
    return 0;
}

/* Copies [off, off + len) of parent into h where the parent has data. */
static void copy_present(struct lks_header *h, struct lks_header *parent,
                         const struct present *pr, uint64_t off, uint64_t len) {
    for (int r = 0; r < pr->n; r++) {
        uint64_t lo = pr->lo[r] > off ? pr->lo[r] : off;
        uint64_t hi = pr->hi[r] < off + len ? pr->hi[r] : off + len;
        if (hi > parent->total_size) hi = parent->total_size;
        if (hi > h->total_size) hi = h->total_size;
        if (lo < hi && copy_in_kernel(pr, lo, hi) != 0)
            memcpy((char *)h + lo, (char *)parent + lo, hi - lo);
    }
}

/* Runs in the parent just before fork (atfork prepare): the parent keeps
 * changing its table in the shared segment right after fork returns
 * (multiprocessing closes the child's pipe ends at once), before the child's
 * handler has copied it; so the child copies its inherited descriptors from
 * this private snapshot, which fork gives it exactly as it was. glibc holds
 * its atfork lock from here to the parent or child handler: one fork at a
 * time. Without memory for it the child copies the live table. */
static void fork_prepare(void) {
    struct lks_header *h = lks_trace_seg();
    if (!h) return;
    uint32_t nfd = (uint32_t)atomic_load(&h->fd_hiwater);
    if (nfd > h->fds_cap) nfd = h->fds_cap;
    if (nfd == 0) return;
    size_t len = sizeof(struct lks_fd) * nfd;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    memcpy(p, lks_fd_table(h), len);
    g_fork_fds = p;
    g_fork_nfd = nfd;
}

/* Drops the snapshot of fork_prepare, in the parent and in the child, after
 * the fork. */
static void fork_fds_release(void) {
    if (!g_fork_fds) return;
    munmap(g_fork_fds, sizeof(struct lks_fd) * g_fork_nfd);
    g_fork_fds = NULL;
    g_fork_nfd = 0;
}

static void fork_parent(void) { fork_fds_release(); }

/* After fork, the child gets a segment of its own that starts from the
 * parent's state: its live descriptors, live allocations and call sites.
 * Totals restart so that opened - closed == open still holds. The parent's
 * descriptors are marked inherited (LKS_FD_FORKED, keeping the parent's
 * site) and count in the subsystems but in no site: the child did not
 * create them, so they are never its leak. Runs from the atfork handler, or
 * (raw) from the first hook of a child made by a raw fork/clone syscall,
 * where memtrack's handler did not run either and may still point into the
 * parent's mapping: that one stays mapped. */
static void fork_child_segment(int raw) {
    struct lks_header *parent = g_mapped;
    if (!parent || atomic_load(&g_live->seg)) return; /* none, or done already */
    if (raw) lks_modmap_after_fork();
    lks_in_hook++;
    char err[600];
    /* The parent's capacities, not a fresh look at the environment: the
     * tables are copied offset for offset. Published only when complete: a
     * child killed while copying (a pool terminating a worker that never
     * got to run) ran none of its own code and must not show its parent's
     * half-copied counts as its own. */
    struct lks_header *h = lks_segment_create_unpublished(
        g_dir, getpid(), parent->fds_cap, parent->sites_cap, parent->heap_size, err, sizeof err);
    if (!h) {
        char msg[700];
        snprintf(msg, sizeof msg, "forked child %d untraced: %s", (int)getpid(), err);
        say(msg);
        g_mapped = NULL;
        if (!raw) munmap(parent, parent->total_size);
        atomic_store(&g_state, ST_OFF);
        lks_in_hook--;
        return;
    }
    fill_identity(h);
    h->forked_from = parent->pid;
    /* The parent's, not the environment's: the child may have changed it
     * since the fork (nginx's workers keep only what they need). */
    snprintf(h->role, sizeof h->role, "%s", parent->role);
    snprintf(h->session, sizeof h->session, "%s", parent->session);
    h->features = parent->features;
    h->py_alloc = parent->py_alloc;
    h->fd_untracked = 0;
    h->fd_own = parent->fd_own; /* the shim's descriptors came along */
    h->fd_hiwater = parent->fd_hiwater;
    h->modules_used = parent->modules_used;
    h->sites_used = parent->sites_used;
    h->subsys_used = parent->subsys_used;
    memcpy(lks_module_table(h), lks_module_table(parent),
           sizeof(struct lks_module) * LKS_MAX_MODULES);
    memcpy(lks_subsys_table(h), lks_subsys_table(parent),
           sizeof(struct lks_subsys) * LKS_MAX_SUBSYS);
    h->frames_used = parent->frames_used;
    h->strings_used = parent->strings_used;
    struct present pr;
    present_ranges(parent, &pr);
    pr.child_fd = open_segment_file(getpid(), O_RDWR);
    uint32_t nsites = claimed_prefix(&g_sites_ix, parent->sites_cap);
    h->sites_claimed = nsites;
    copy_present(h, parent, &pr, parent->sites_off, sizeof(struct lks_site) * nsites);
    /* Same capacities (same code, same environment), so ids stay valid. */
    if (parent->frames_cap == h->frames_cap && parent->strkeys_cap == h->strkeys_cap &&
        parent->strings_size == h->strings_size && parent->frames_off == h->frames_off &&
        parent->strings_off == h->strings_off) {
        copy_present(h, parent, &pr, parent->frames_off,
                     sizeof(struct lks_frame) * claimed_prefix(&g_frames_ix, parent->frames_cap));
        copy_present(h, parent, &pr, parent->strkeys_off,
                     sizeof(struct lks_strkey) * h->strkeys_cap);
        copy_present(h, parent, &pr, parent->strings_off, h->strings_size);
    }
    uint32_t nfd = g_fork_fds ? g_fork_nfd : (uint32_t)parent->fd_hiwater;
    if (nfd > h->fds_cap) nfd = h->fds_cap;
    if (nfd > parent->fds_cap) nfd = parent->fds_cap;
    memcpy(lks_fd_table(h), g_fork_fds ? g_fork_fds : lks_fd_table(parent),
           sizeof(struct lks_fd) * nfd);
    uint64_t heap = parent->heap_size < h->heap_size ? parent->heap_size : h->heap_size;
    if (parent->heap_off == h->heap_off) copy_present(h, parent, &pr, parent->heap_off, heap);
    if (pr.parent_fd >= 0) syscall(SYS_close, pr.parent_fd);
    if (pr.child_fd >= 0) syscall(SYS_close, pr.child_fd);

    /* The parent's other threads may have been changing the table while it
     * was copied: the child's open counts are what its copy holds. Entries
     * caught mid-write are dropped. */
    struct lks_subsys *ss = lks_subsys_table(h);
    for (int i = 0; i < LKS_MAX_SUBSYS; i++) ss[i].fd_open = 0;
    struct lks_fd *fds = lks_fd_table(h);
    for (uint32_t fd = 0; fd < nfd; fd++) {
        if (fds[fd].seq & 1) {
            fds[fd].seq = 0;
            fds[fd].in_use = 0;
        }
        if (!fds[fd].in_use) continue;
        fds[fd].flags |= LKS_FD_INHERITED | LKS_FD_FORKED;
        if (fds[fd].subsys < LKS_MAX_SUBSYS) ss[fds[fd].subsys].fd_open++;
    }
    for (int i = 0; i < LKS_MAX_SUBSYS; i++) {
        ss[i].fd_opened = (uint64_t)ss[i].fd_open;
        ss[i].fd_closed = 0;
        for (int e = 0; e < LKS_ERR_SLOTS; e++) ss[i].fd_failed[e] = 0;
        ss[i].heap_alloc_bytes = (uint64_t)ss[i].heap_live_bytes;
        ss[i].heap_allocs = (uint64_t)ss[i].heap_live_allocs;
        ss[i].heap_frees = 0;
    }
    /* Inherited descriptors count in no site: never the child's leak. */
    struct lks_site *sites = lks_site_table(h);
    uint32_t nframes = claimed_prefix(&g_frames_ix, h->frames_cap);
    for (uint32_t i = 0; i < nsites; i++) {
        if (!atomic_load_explicit(&sites[i].key, memory_order_relaxed)) continue;
        /* A site the parent was still filling at the fork may name frames
         * it claimed after: the child's copy stops before them. */
        for (uint16_t f = 0; f < sites[i].nframes && f < LKS_MAX_FRAMES; f++)
            if (sites[i].frame[f] > nframes) sites[i].nframes = f;
        sites[i].fd_open = 0;
        sites[i].fd_opened = 0;
        sites[i].fd_failed = 0;
        sites[i].heap_alloc_bytes = (uint64_t)sites[i].heap_live_bytes;
        sites[i].heap_allocs = (uint64_t)sites[i].heap_live_allocs;
    }
    lks_segment_publish(h);
    g_mapped = h;
    atomic_store(&g_live->seg, h);
    if (!raw) munmap(parent, parent->total_size);
    int n = atomic_load(&g_nfork_hooks);
    for (int i = 0; i < n && i < 4; i++)
        if (g_fork_hooks[i]) g_fork_hooks[i]();
    lks_in_hook--;
}

/* The atfork child handler: the segment waits for the child's first event
 * (fork_materialize). */
static void fork_child(void) {
    if (!g_mapped) return;
    /* A compile in progress belonged to a thread the child does not have. */
    lks_modmap_after_fork();
    atomic_store(&g_live->seg, NULL); /* already so unless WIPEONFORK failed */
    atomic_store(&g_materializing, 0);
    atomic_store(&g_pending_pid, getpid());
}

__attribute__((destructor)) static void trace_exit(void) {
    struct lks_header *h = lks_trace_seg();
    if (!h || h->pid != getpid()) return; /* a vfork child must not end its parent */
    /* The program may have named itself since (prctl PR_SET_NAME). */
    char comm[sizeof h->comm];
    lks_in_hook++;
    read_small_file("/proc/self/comm", comm, sizeof comm);
    lks_in_hook--;
    if (comm[0]) memcpy(h->comm, comm, sizeof comm);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    atomic_store(&h->exit_realtime_ns, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
    atomic_store(&h->exited, 1);
}

LKS_EXPORT uint64_t lks_stack_hash(const uint64_t *frames, int n) {
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)n;
    for (int i = 0; i < n; i++) {
        h ^= frames[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h ? h : 1;
}

/* Index of the module holding a return address in the segment's module
 * table, added on first sight. Cold path (new frames only). */
static uint16_t module_index(struct lks_header *h, uint64_t ra) {
    const char *path;
    uint64_t bias, base;
    if (!lks_modmap_module(ra, &path, &bias, &base)) return LKS_NO_MODULE;
    struct lks_module *mods = lks_module_table(h);
    uint32_t used = atomic_load(&h->modules_used);
    for (uint32_t i = 0; i < used && i < LKS_MAX_MODULES; i++)
        if (mods[i].base == base) return (uint16_t)i;
    uint32_t i = atomic_fetch_add(&h->modules_used, 1);
    if (i >= LKS_MAX_MODULES) {
        atomic_store(&h->modules_used, LKS_MAX_MODULES);
        return LKS_NO_MODULE;
    }
    mods[i].bias = bias;
    mods[i].base = base;
    snprintf(mods[i].path, LKS_MODULE_PATH, "%.*s", LKS_MODULE_PATH - 1, path);
    return (uint16_t)i;
}

LKS_EXPORT uint64_t lks_stack_rule_bits(uint64_t hash, const uint64_t *frames, int n) {
    for (int probe = 0; probe < 8; probe++) {
        uint32_t i = (uint32_t)(hash + (uint64_t)probe) & (BITS_CACHE - 1);
        uint64_t k = atomic_load_explicit(&g_bits_cache[i].hash, memory_order_acquire);
        if (k == hash) return atomic_load_explicit(&g_bits_cache[i].bits, memory_order_relaxed);
        if (k == 0) break;
    }
    uint64_t bits = 0;
    lks_in_hook++;
    for (int f = 0; f < n && f < LKS_MAX_FRAMES; f++) bits |= lks_frame_rule_bits(frames[f]);
    lks_in_hook--;
    for (int probe = 0; probe < 8; probe++) {
        uint32_t i = (uint32_t)(hash + (uint64_t)probe) & (BITS_CACHE - 1);
        uint64_t zero = 0;
        if (atomic_load(&g_bits_cache[i].hash) == 0) {
            atomic_store_explicit(&g_bits_cache[i].bits, bits, memory_order_relaxed);
            if (atomic_compare_exchange_strong(&g_bits_cache[i].hash, &zero, hash)) break;
        }
    }
    return bits;
}

LKS_EXPORT uint64_t lks_frame_rule_bits(uint64_t ra) { return lks_modmap_bits(ra); }

LKS_EXPORT uint32_t lks_frame_intern_native(uint64_t ra) {
    struct lks_header *h = lks_trace_seg();
    if (!h || ra == 0 || (ra & LKS_FRAME_INTERP_BIT)) return 0;
    struct lks_frame *f;
    uint32_t id = frame_slot(h, ra, &f);
    if (f) {
        f->kind = LKS_FRAME_NATIVE;
        f->addr = ra;
        lks_in_hook++;
        f->module = module_index(h, ra);
        lks_in_hook--;
        atomic_store_explicit(&f->ready, 1, memory_order_release);
    }
    return id;
}

LKS_EXPORT uint32_t lks_frame_intern_interp(int kind, uint64_t key, uint64_t code,
                                            uint32_t line, const char *func, const char *file) {
    struct lks_header *h = lks_trace_seg();
    if (!h) return 0;
    key |= LKS_FRAME_INTERP_BIT;
    struct lks_frame *f;
    uint32_t id = frame_slot(h, key, &f);
    if (f) {
        f->kind = (uint8_t)kind;
        f->addr = code;
        f->line = line;
        f->module = LKS_NO_MODULE;
        f->func = func ? lks_string_intern(func) : 0;
        f->file = file ? lks_string_intern(file) : 0;
        atomic_store_explicit(&f->ready, 1, memory_order_release);
    }
    return id;
}

LKS_EXPORT uint32_t lks_string_intern(const char *str) {
    struct lks_header *h = lks_trace_seg();
    if (!h || !str || !*str) return 0;
    size_t len = strlen(str);
    uint64_t hash = 0xcbf29ce484222325ull ^ len;
    for (size_t i = 0; i < len; i++) hash = (hash ^ (unsigned char)str[i]) * 0x100000001b3ull;
    if (!hash) hash = 1;
    struct lks_strkey *keys = lks_strkey_table(h);
    uint32_t mask = h->strkeys_cap - 1;
    for (uint32_t probe = 0; probe < 32 && probe <= mask; probe++) {
        struct lks_strkey *k = &keys[(uint32_t)(hash + probe) & mask];
        uint64_t cur = atomic_load_explicit(&k->hash, memory_order_acquire);
        if (cur == 0) {
            uint64_t zero = 0;
            if (!atomic_compare_exchange_strong(&k->hash, &zero, hash)) {
                if (zero != hash) continue;
                cur = hash;
            } else {
                uint32_t off = atomic_fetch_add(&h->strings_used, (uint32_t)len + 1);
                if ((uint64_t)off + len + 1 > h->strings_size) {
                    atomic_fetch_add(&h->strings_dropped, 1);
                    return 0; /* the key stays claimed with off 0: "" from now on */
                }
                memcpy(lks_string_area(h) + off, str, len + 1);
                k->len = (uint32_t)len;
                atomic_store_explicit(&k->off, off, memory_order_release);
                return off;
            }
        }
        if (cur != hash) continue;
        /* Same hash: the string is (being) written by someone; a loser of
         * the race takes "" rather than wait. */
        uint32_t off = atomic_load_explicit(&k->off, memory_order_acquire);
        if (off && k->len == len && memcmp(lks_string_area(h) + off, str, len) == 0) return off;
        if (off) continue;
        return 0;
    }
    atomic_fetch_add(&h->strings_dropped, 1);
    return 0;
}

/* Site key of (stack, subsys); never 0. */
static uint64_t site_key(uint64_t hash, int subsys) {
    uint64_t key = hash ^ ((uint64_t)(subsys + 1) * 0x9E3779B97F4A7C15ull);
    return key ? key : 1;
}

/* Sites and frames are claimed in order, so the claimed ones form a dense
 * prefix of their table: a fork child copies that prefix (a CPython parent's
 * sites were 16 MB spread over the whole table when placed by hash, 25 ms
 * per fork; its frames 5 MB), and a small process touches few pages. The
 * key -> index map that finds them is private memory, inherited by a fork
 * child as it was at the fork, consistent with the prefix the child copies.
 * A map entry holds the key's top half and the index + 1; the row's own key
 * (the first field of a site or a frame) decides. */
static _Atomic uint64_t *claim_map(struct claim_index *ix, uint32_t cap) {
    _Atomic uint64_t *map = atomic_load_explicit(&ix->map, memory_order_acquire);
    if (map) return map;
    size_t bytes = sizeof(uint64_t) * 2 * (size_t)cap;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return NULL;
    _Atomic uint64_t *expected = NULL;
    if (atomic_compare_exchange_strong(&ix->map, &expected, (_Atomic uint64_t *)p)) return p;
    munmap(p, bytes);
    return expected;
}

static inline _Atomic uint64_t *row_key(void *rows, size_t stride, uint32_t i) {
    return (_Atomic uint64_t *)((char *)rows + (size_t)i * stride);
}

/* Finds the row of key (returns index + 1), or claims the next row below
 * limit for it (also sets *claimed; the caller fills the row). 0 when the
 * rows up to limit are taken, limit is 0 (find only), or the map gives up.
 * cap (a power of two) is the table's size. */
static uint32_t claim_slot(struct claim_index *ix, void *rows, size_t stride, uint32_t cap,
                           uint32_t limit, uint64_t key, int *claimed) {
    _Atomic uint64_t *map = claim_map(ix, cap);
    *claimed = 0;
    if (!map) return 0;
    uint32_t mask = 2 * cap - 1;
    uint64_t tag = key & 0xffffffff00000000ull;
    uint32_t start = (uint32_t)(key * 0x9E3779B97F4A7C15ull >> 32);
    for (uint32_t probe = 0; probe <= mask && probe < 256; probe++) {
        _Atomic uint64_t *slot = &map[(start + probe) & mask];
        uint64_t v = atomic_load_explicit(slot, memory_order_acquire);
        if (v) {
            uint32_t id = (uint32_t)v;
            if ((v & 0xffffffff00000000ull) == tag && id <= cap &&
                atomic_load_explicit(row_key(rows, stride, id - 1), memory_order_acquire) == key)
                return id;
            continue;
        }
        if (atomic_load_explicit(&ix->next, memory_order_relaxed) >= limit) return 0;
        uint32_t i = atomic_fetch_add(&ix->next, 1);
        if (i >= cap) return 0;
        atomic_store_explicit(row_key(rows, stride, i), key, memory_order_release);
        uint64_t zero = 0;
        if (!atomic_compare_exchange_strong(slot, &zero, tag | (i + 1))) {
            /* Another thread took this map slot: row i stays a hole. */
            atomic_store_explicit(row_key(rows, stride, i), 0, memory_order_relaxed);
            probe--; /* look at the slot again: it may be our key */
            continue;
        }
        *claimed = 1;
        return i + 1;
    }
    return 0;
}

/* Finds or claims the site of key. Returns index + 1 and sets *fresh when
 * the caller must fill it; 0 when the table is full (the last eighth is
 * kept for coarse keys, so that a stack seen after the table filled still
 * gets a site) or the map gives up. coarse < 0: find only. */
static uint32_t site_slot(struct lks_header *h, uint64_t key, int coarse,
                          struct lks_site **fresh) {
    uint32_t limit = coarse < 0 ? 0 : coarse ? h->sites_cap : h->sites_cap - h->sites_cap / 8;
    int claimed;
    struct lks_site *sites = lks_site_table(h);
    uint32_t id = claim_slot(&g_sites_ix, sites, sizeof *sites, h->sites_cap, limit, key, &claimed);
    *fresh = claimed ? &sites[id - 1] : NULL;
    if (claimed) {
        uint32_t n = atomic_load_explicit(&h->sites_claimed, memory_order_relaxed);
        while (n < id && !atomic_compare_exchange_weak_explicit(&h->sites_claimed, &n, id,
                                                                memory_order_release,
                                                                memory_order_relaxed))
            ;
    }
    return id;
}

/* Finds or claims the frame of key (index + 1; 0 when the table is full). */
static uint32_t frame_slot(struct lks_header *h, uint64_t key, struct lks_frame **fresh) {
    int claimed;
    struct lks_frame *frames = lks_frame_table(h);
    uint32_t id = claim_slot(&g_frames_ix, frames, sizeof *frames, h->frames_cap,
                             h->frames_cap, key, &claimed);
    *fresh = claimed ? &frames[id - 1] : NULL;
    if (claimed) atomic_fetch_add_explicit(&h->frames_used, 1, memory_order_relaxed);
    else if (!id) atomic_fetch_add_explicit(&h->frames_dropped, 1, memory_order_relaxed);
    return id;
}

LKS_EXPORT uint32_t lks_sites_claimed(void) { return atomic_load(&g_sites_ix.next); }

/* Rows claimed so far, clamped to a table of cap rows (for the fork copy). */
static uint32_t claimed_prefix(struct claim_index *ix, uint32_t cap) {
    uint32_t n = atomic_load(&ix->next);
    return n < cap ? n : cap;
}

/* A pending fork child finds the sites it inherited in its parent's
 * mapping (their rows never change) without making its segment. */
LKS_EXPORT uint32_t lks_site_inherited(uint64_t hash, int subsys) {
    struct lks_site *unused;
    if (!lks_trace_pending_fork() || !g_mapped) return 0;
    return site_slot(g_mapped, site_key(hash, subsys), -1, &unused);
}

LKS_EXPORT uint32_t lks_site_intern_frames(uint64_t hash, const uint32_t *frame_ids, int n,
                                           uint64_t rule_bits, int subsys, uint32_t flags) {
    uint32_t known = lks_site_inherited(hash, subsys);
    if (known) return known;
    struct lks_header *h = lks_trace_seg();
    if (!h) return 0;
    if (n > LKS_MAX_FRAMES) n = LKS_MAX_FRAMES;
    struct lks_site *s;
    uint32_t id = site_slot(h, site_key(hash, subsys), (flags & LKS_SITE_COARSE) != 0, &s);
    if (!s) return id;
    s->subsys = (uint16_t)subsys;
    s->stack_rule_bits = rule_bits;
    s->flags = flags;
    memcpy(s->frame, frame_ids, sizeof(uint32_t) * (size_t)n);
    s->nframes = (uint16_t)n;
    atomic_store_explicit(&s->ready, 1, memory_order_release);
    atomic_fetch_add(&h->sites_used, 1);
    if (flags & LKS_SITE_COARSE) atomic_fetch_add(&h->sites_coarse, 1);
    return id;
}

/* Coarse keys: when the full stack finds no slot, its innermost frames
 * (the allocating or opening code) still name the site. */
static const int coarse_depths[] = {6, 3, 1};

LKS_EXPORT uint32_t lks_site_intern(uint64_t hash, const uint64_t *frames, int n,
                                    uint64_t rule_bits, int subsys) {
    uint32_t known = lks_site_inherited(hash, subsys);
    if (known) return known;
    struct lks_header *h = lks_trace_seg();
    if (!h) return 0;
    if (n > LKS_MAX_FRAMES) n = LKS_MAX_FRAMES;
    /* Known sites are found without touching the frame table. */
    struct lks_site *s;
    uint32_t id = site_slot(h, site_key(hash, subsys), 0, &s);
    uint32_t flags = 0;
    for (size_t c = 0; !id && c < sizeof coarse_depths / sizeof coarse_depths[0]; c++) {
        if (coarse_depths[c] >= n) continue;
        int depth = coarse_depths[c];
        hash = lks_stack_hash(frames, depth) ^ 0x5bd1e995ull * (uint64_t)(c + 1);
        id = site_slot(h, site_key(hash, subsys), 1, &s);
        n = depth;
        flags = LKS_SITE_COARSE;
    }
    if (!id) {
        atomic_fetch_add_explicit(&h->sites_dropped_events, 1, memory_order_relaxed);
        atomic_store(&h->sites_dropped, 1);
        return 0;
    }
    if (!s) return id;
    uint32_t ids[LKS_MAX_FRAMES];
    for (int f = 0; f < n; f++) ids[f] = lks_frame_intern_native(frames[f]);
    s->subsys = (uint16_t)subsys;
    s->stack_rule_bits = rule_bits;
    s->flags = flags;
    memcpy(s->frame, ids, sizeof(uint32_t) * (size_t)n);
    s->nframes = (uint16_t)n;
    atomic_store_explicit(&s->ready, 1, memory_order_release);
    atomic_fetch_add(&h->sites_used, 1);
    if (flags) atomic_fetch_add(&h->sites_coarse, 1);
    return id;
}

LKS_EXPORT uint32_t lks_site_resubsys(uint32_t site, int subsys) {
    struct lks_site *s = lks_site_get(site);
    struct lks_header *h = lks_trace_seg();
    if (!s || !h || !atomic_load_explicit(&s->ready, memory_order_acquire)) return 0;
    /* A native stack gets the key it would have had if classified so at
     * creation; other stacks are keyed on their frame ids. */
    uint64_t addrs[LKS_MAX_FRAMES];
    int native = !(s->flags & LKS_SITE_COARSE);
    for (int f = 0; native && f < s->nframes && f < LKS_MAX_FRAMES; f++) {
        const struct lks_frame *fr = lks_site_frame(h, s, f);
        native = fr && fr->kind == LKS_FRAME_NATIVE;
        if (native) addrs[f] = fr->addr;
    }
    if (native)
        return lks_site_intern(lks_stack_hash(addrs, s->nframes), addrs, s->nframes,
                               s->stack_rule_bits, subsys);
    uint64_t hash = 0xcbf29ce484222325ull;
    for (int f = 0; f < s->nframes; f++) hash = (hash ^ s->frame[f]) * 0x100000001b3ull;
    return lks_site_intern_frames(hash, s->frame, s->nframes, s->stack_rule_bits, subsys,
                                  s->flags);
}

LKS_EXPORT struct lks_site *lks_site_get(uint32_t site) {
    struct lks_header *h = lks_trace_seg();
    if (!h || site == 0 || site > h->sites_cap) return NULL;
    return &lks_site_table(h)[site - 1];
}

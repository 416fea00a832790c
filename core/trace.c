/* trace.c - the runtime inside a traced process (contract in trace.h):
 * one segment per process, the rules, call-site interning, fork and exit.
 *
 * Built as libleakscope-trace.so so that libfdtrack.so and libmemtrack.so,
 * preloaded together, share one segment and one set of counters.
 */
#define _GNU_SOURCE
#include "trace.h"

#include "pyframes.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

LKS_EXPORT __thread int lks_in_hook __attribute__((tls_model("initial-exec")));

enum { ST_NONE, ST_BUSY, ST_READY, ST_OFF };
static _Atomic int g_state;
static _Atomic(struct lks_header *) g_seg;
static struct lks_rules g_rules;
static char g_dir[400];
static void (*g_fork_hooks[4])(void);
static _Atomic int g_nfork_hooks;

/* Stack hash -> stack-rule bits, so dladdr() runs once per stack. */
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

static struct lks_header *new_segment(char *err, size_t errlen) {
    return lks_segment_create(g_dir, getpid(), fds_capacity(), LKS_DEFAULT_SITES,
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

static void fork_child(void);

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
    pthread_atfork(NULL, NULL, fork_child);
    atomic_store(&g_seg, h);
    atomic_store(&g_state, ST_READY);
}

LKS_EXPORT struct lks_header *lks_trace_init(void) {
    int st = atomic_load_explicit(&g_state, memory_order_acquire);
    if (st == ST_READY) return atomic_load_explicit(&g_seg, memory_order_relaxed);
    if (st != ST_NONE) return NULL;
    int expected = ST_NONE;
    if (!atomic_compare_exchange_strong(&g_state, &expected, ST_BUSY)) return NULL;
    lks_in_hook++;
    init_locked();
    lks_in_hook--;
    return atomic_load(&g_seg);
}

LKS_EXPORT struct lks_header *lks_trace_seg(void) {
    return atomic_load_explicit(&g_seg, memory_order_acquire);
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

/* After fork, the child gets a segment of its own that starts from the
 * parent's state: its live descriptors, live allocations and call sites.
 * Totals restart so that opened - closed == open still holds. */
static void fork_child(void) {
    struct lks_header *parent = atomic_load(&g_seg);
    if (!parent) return;
    lks_in_hook++;
    char err[600];
    struct lks_header *h = new_segment(err, sizeof err);
    if (!h) {
        char msg[700];
        snprintf(msg, sizeof msg, "forked child %d untraced: %s", (int)getpid(), err);
        say(msg);
        atomic_store(&g_seg, NULL);
        atomic_store(&g_state, ST_OFF);
        lks_in_hook--;
        return;
    }
    fill_identity(h);
    h->features = parent->features;
    h->py_alloc = parent->py_alloc;
    h->fd_untracked = 0;
    h->fd_hiwater = parent->fd_hiwater;
    h->modules_used = parent->modules_used;
    h->sites_used = parent->sites_used;
    h->subsys_used = parent->subsys_used;
    memcpy(lks_module_table(h), lks_module_table(parent),
           sizeof(struct lks_module) * LKS_MAX_MODULES);
    memcpy(lks_subsys_table(h), lks_subsys_table(parent),
           sizeof(struct lks_subsys) * LKS_MAX_SUBSYS);
    uint32_t sites_cap = parent->sites_cap < h->sites_cap ? parent->sites_cap : h->sites_cap;
    memcpy(lks_site_table(h), lks_site_table(parent), sizeof(struct lks_site) * sites_cap);
    uint32_t nfd = (uint32_t)parent->fd_hiwater;
    if (nfd > h->fds_cap) nfd = h->fds_cap;
    if (nfd > parent->fds_cap) nfd = parent->fds_cap;
    memcpy(lks_fd_table(h), lks_fd_table(parent), sizeof(struct lks_fd) * nfd);
    uint64_t heap = parent->heap_size < h->heap_size ? parent->heap_size : h->heap_size;
    memcpy(lks_heap_area(h), lks_heap_area(parent), heap);

    struct lks_subsys *ss = lks_subsys_table(h);
    for (int i = 0; i < LKS_MAX_SUBSYS; i++) {
        ss[i].fd_opened = (uint64_t)ss[i].fd_open;
        ss[i].fd_closed = 0;
        for (int e = 0; e < LKS_ERR_SLOTS; e++) ss[i].fd_failed[e] = 0;
        ss[i].heap_alloc_bytes = (uint64_t)ss[i].heap_live_bytes;
        ss[i].heap_allocs = (uint64_t)ss[i].heap_live_allocs;
        ss[i].heap_frees = 0;
    }
    struct lks_site *sites = lks_site_table(h);
    for (uint32_t i = 0; i < sites_cap; i++) {
        sites[i].fd_opened = (uint64_t)sites[i].fd_open;
        sites[i].fd_failed = 0;
        sites[i].heap_alloc_bytes = (uint64_t)sites[i].heap_live_bytes;
        sites[i].heap_allocs = (uint64_t)sites[i].heap_live_allocs;
    }
    atomic_store(&g_seg, h);
    munmap(parent, parent->total_size);
    int n = atomic_load(&g_nfork_hooks);
    for (int i = 0; i < n && i < 4; i++)
        if (g_fork_hooks[i]) g_fork_hooks[i]();
    lks_in_hook--;
}

__attribute__((destructor)) static void trace_exit(void) {
    struct lks_header *h = lks_trace_seg();
    if (!h) return;
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

LKS_EXPORT __attribute__((noinline)) int lks_stack_capture(uint64_t *frames, int max, int skip) {
    void *buf[LKS_MAX_FRAMES + 8];
    int want = max + skip + 1;
    if (want > (int)(sizeof buf / sizeof buf[0])) want = (int)(sizeof buf / sizeof buf[0]);
    int n = unw_backtrace(buf, want);
    int first = skip + 1; /* buf[0] is this function */
    int out = 0;
    for (int i = first; i < n && out < max; i++) frames[out++] = (uint64_t)(uintptr_t)buf[i];
    return out;
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

/* Index of the module holding addr, adding it on first sight (when h is
 * set), and the file and function names the rules match on. One dladdr1 per
 * frame. Cold path. */
static uint16_t module_of(struct lks_header *h, uintptr_t addr, const char **path_out,
                          const char **func_out) {
    Dl_info info;
    struct link_map *lm = NULL;
    *path_out = *func_out = NULL;
    if (!dladdr1((void *)addr, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm) return LKS_NO_MODULE;
    const char *path = lm->l_name && lm->l_name[0] ? lm->l_name : h ? h->exe : info.dli_fname;
    *path_out = path;
    *func_out = info.dli_sname;
    if (!h) return LKS_NO_MODULE;
    struct lks_module *mods = lks_module_table(h);
    uint32_t used = atomic_load(&h->modules_used);
    for (uint32_t i = 0; i < used && i < LKS_MAX_MODULES; i++)
        if (mods[i].base == (uint64_t)(uintptr_t)info.dli_fbase) return (uint16_t)i;
    uint32_t i = atomic_fetch_add(&h->modules_used, 1);
    if (i >= LKS_MAX_MODULES) {
        atomic_store(&h->modules_used, LKS_MAX_MODULES);
        return LKS_NO_MODULE;
    }
    mods[i].bias = (uint64_t)lm->l_addr;
    mods[i].base = (uint64_t)(uintptr_t)info.dli_fbase;
    snprintf(mods[i].path, LKS_MODULE_PATH, "%.*s", LKS_MODULE_PATH - 1, path);
    return (uint16_t)i;
}

/* Evaluates the module/func rules on a stack. Return addresses point after
 * the call, hence addr - 1. */
static uint64_t compute_stack_bits(const uint64_t *frames, int n) {
    struct lks_header *h = lks_trace_seg();
    const char *mods[LKS_MAX_FRAMES], *funcs[LKS_MAX_FRAMES];
    if (n > LKS_MAX_FRAMES) n = LKS_MAX_FRAMES;
    for (int i = 0; i < n; i++) module_of(h, (uintptr_t)frames[i] - 1, &mods[i], &funcs[i]);
    return lks_rules_stack_bits(&g_rules, n, mods, funcs);
}

LKS_EXPORT uint64_t lks_stack_rule_bits(uint64_t hash, const uint64_t *frames, int n) {
    for (int probe = 0; probe < 8; probe++) {
        uint32_t i = (uint32_t)(hash + (uint64_t)probe) & (BITS_CACHE - 1);
        uint64_t k = atomic_load_explicit(&g_bits_cache[i].hash, memory_order_acquire);
        if (k == hash) return atomic_load_explicit(&g_bits_cache[i].bits, memory_order_relaxed);
        if (k == 0) break;
    }
    lks_in_hook++;
    uint64_t bits = compute_stack_bits(frames, n);
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

LKS_EXPORT uint32_t lks_site_intern(uint64_t hash, const uint64_t *frames, int n,
                                    uint64_t rule_bits, int subsys) {
    struct lks_header *h = lks_trace_seg();
    if (!h) return 0;
    uint64_t key = hash ^ ((uint64_t)(subsys + 1) * 0x9E3779B97F4A7C15ull);
    if (!key) key = 1;
    struct lks_site *sites = lks_site_table(h);
    uint32_t mask = h->sites_cap - 1;
    /* A full table: only existing sites can match, and they are found within
     * a few probes; stop early instead of scanning for a free slot. */
    uint32_t limit = atomic_load_explicit(&h->sites_dropped, memory_order_relaxed) ? 16 : 256;
    for (uint32_t probe = 0; probe <= mask && probe < limit; probe++) {
        uint32_t i = (uint32_t)(key + probe) & mask;
        uint64_t k = atomic_load_explicit(&sites[i].key, memory_order_acquire);
        if (k == key) return i + 1;
        if (k != 0) continue;
        uint64_t zero = 0;
        if (!atomic_compare_exchange_strong(&sites[i].key, &zero, key)) {
            if (zero == key) return i + 1;
            continue;
        }
        struct lks_site *s = &sites[i];
        if (n > LKS_MAX_FRAMES) n = LKS_MAX_FRAMES;
        s->subsys = (uint16_t)subsys;
        s->stack_rule_bits = rule_bits;
        memcpy(s->frames, frames, sizeof(uint64_t) * (size_t)n);
        lks_in_hook++;
        for (int f = 0; f < n; f++) {
            const char *path, *func;
            s->frame_module[f] = module_of(h, (uintptr_t)frames[f] - 1, &path, &func);
        }
        lks_in_hook--;
        s->nframes = (uint16_t)n;
        atomic_store_explicit(&s->ready, 1, memory_order_release);
        atomic_fetch_add(&h->sites_used, 1);
        return i + 1;
    }
    atomic_fetch_add(&h->sites_dropped_events, 1);
    atomic_store(&h->sites_dropped, 1);
    return 0;
}

LKS_EXPORT struct lks_site *lks_site_get(uint32_t site) {
    struct lks_header *h = lks_trace_seg();
    if (!h || site == 0 || site > h->sites_cap) return NULL;
    return &lks_site_table(h)[site - 1];
}

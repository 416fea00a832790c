/* series.c - segments to samples (contract in series.h). Reads the core
 * counters of the segment and, for heap ages, the heap area; symbolizes a
 * site only the first time it enters a top K and caches the name. */
#define _GNU_SOURCE
#include "series.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../memtrack/heapseg.h"
#include "symbolize.h"

const char *const series_age_labels[SERIES_AGES] = {"10s", "1m", "10m", "1h"};
/* First heap age bucket (heapseg.h edges 1, 10, 60, 600, 3600 s) counted in
 * each "older than" value. */
static const int age_first_bucket[SERIES_AGES] = {2, 3, 4, 5};
const char *const series_skip_names[SERIES_SKIP_REASONS] = {"invalid", "foreign"};

#define SWEEP_ROUNDS 64 /* names unused for this many rounds are dropped */
#define TORN_RETRIES 3
#define FRAMES_TEXT 4096

/* A cached site name: one per (process, site key). */
struct name_entry {
    pid_t pid;
    uint64_t start_ticks;
    uint64_t key; /* 0: empty slot */
    uint64_t last_round;
    char *headline;
    char *frames;
};

struct series_reader {
    unsigned top_sites;
    uint32_t idle_ms;
    uint64_t round;
    struct name_entry *names;
    size_t names_cap, names_used; /* cap: power of two */
};

struct series_reader *series_reader_new(unsigned top_sites, uint32_t idle_ms) {
    struct series_reader *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->top_sites = top_sites ? top_sites : 10;
    r->idle_ms = idle_ms;
    return r;
}

static void names_clear(struct name_entry *v, size_t cap) {
    for (size_t i = 0; i < cap; i++) {
        free(v[i].headline);
        free(v[i].frames);
    }
    free(v);
}

void series_reader_free(struct series_reader *r) {
    if (!r) return;
    names_clear(r->names, r->names_cap);
    free(r);
}

static size_t name_slot(pid_t pid, uint64_t start, uint64_t key, size_t cap) {
    uint64_t h = key ^ ((uint64_t)(uint32_t)pid * 0x9E3779B97F4A7C15ull) ^ (start << 17);
    return (size_t)(h * 0xff51afd7ed558ccdull >> 20) & (cap - 1);
}

/* Rebuilds the table into ncap slots, keeping entries used since min_round. */
static int names_rehash(struct series_reader *r, size_t ncap, uint64_t min_round) {
    struct name_entry *n = calloc(ncap, sizeof *n);
    if (!n) return -1;
    size_t used = 0;
    for (size_t i = 0; i < r->names_cap; i++) {
        struct name_entry *e = &r->names[i];
        if (!e->key) continue;
        if (e->last_round < min_round) {
            free(e->headline);
            free(e->frames);
            continue;
        }
        size_t j = name_slot(e->pid, e->start_ticks, e->key, ncap);
        while (n[j].key) j = (j + 1) & (ncap - 1);
        n[j] = *e;
        used++;
    }
    free(r->names);
    r->names = n;
    r->names_cap = ncap;
    r->names_used = used;
    return 0;
}

/* The cached names of a site, symbolizing it (with *sym, created on first
 * need) when new. NULL only when out of memory. */
static struct name_entry *site_names(struct series_reader *r, struct lks_header *seg,
                                     struct lks_symbolizer **sym, const struct lks_site *site) {
    if ((r->names_used + 1) * 2 > r->names_cap &&
        names_rehash(r, r->names_cap ? r->names_cap * 2 : 1024, 0) != 0)
        return NULL;
    size_t j = name_slot(seg->pid, seg->proc_start_ticks, site->key, r->names_cap);
    while (r->names[j].key) {
        struct name_entry *e = &r->names[j];
        if (e->key == site->key && e->pid == seg->pid && e->start_ticks == seg->proc_start_ticks) {
            e->last_round = r->round;
            return e;
        }
        j = (j + 1) & (r->names_cap - 1);
    }
    if (!*sym && !(*sym = lks_symbolizer_new(seg))) return NULL;
    char head[512], frames[FRAMES_TEXT];
    lks_symbolize_headline(*sym, site, head, sizeof head);
    size_t used = 0;
    frames[0] = 0;
    for (int f = 0; f < site->nframes && f < LKS_MAX_FRAMES; f++) {
        char one[512];
        lks_symbolize_site_frame(*sym, site, f, one, sizeof one);
        int w = snprintf(frames + used, sizeof frames - used, "%s%s", f ? "\n" : "", one);
        if (w < 0 || (size_t)w >= sizeof frames - used) break;
        used += (size_t)w;
    }
    struct name_entry *e = &r->names[j];
    e->headline = strdup(head);
    e->frames = strdup(frames);
    if (!e->headline || !e->frames) {
        free(e->headline);
        free(e->frames);
        e->headline = e->frames = NULL;
        return NULL;
    }
    e->pid = seg->pid;
    e->start_ticks = seg->proc_start_ticks;
    e->key = site->key;
    e->last_round = r->round;
    r->names_used++;
    return e;
}

static const char *producer_name(uint32_t p) {
    return p == LKS_PRODUCER_PRELOAD ? "preload" : p == LKS_PRODUCER_EBPF ? "ebpf" : "unknown";
}

static int64_t rss_bytes(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    unsigned long long size, resident;
    int ok = fscanf(f, "%llu %llu", &size, &resident) == 2;
    fclose(f);
    return ok ? (int64_t)resident * sysconf(_SC_PAGESIZE) : -1;
}

static void copy_text(char *dst, size_t len, const char *src, size_t srclen) {
    size_t n = strnlen(src, srclen < len ? srclen : len - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* Keeps the k largest (by value) site indices in top[], sorted descending. */
static void top_insert(uint32_t *top, int64_t *vals, unsigned *n, unsigned k, uint32_t idx,
                       int64_t v) {
    if (*n == k && v <= vals[k - 1]) return;
    unsigned i = *n < k ? (*n)++ : k - 1;
    while (i > 0 && vals[i - 1] < v) {
        top[i] = top[i - 1];
        vals[i] = vals[i - 1];
        i--;
    }
    top[i] = idx;
    vals[i] = v;
}

int series_sample(struct series_reader *r, struct lks_header *seg, const struct sockidle *idle,
                  struct series_proc *out) {
    memset(out, 0, sizeof *out);
    out->pid = seg->pid;
    out->ppid = seg->ppid;
    out->start_ticks = seg->proc_start_ticks;
    out->start_time = (double)seg->start_realtime_ns / 1e9;
    copy_text(out->comm, sizeof out->comm, seg->comm, sizeof seg->comm);
    copy_text(out->role, sizeof out->role, seg->role, sizeof seg->role);
    copy_text(out->session, sizeof out->session, seg->session, sizeof seg->session);
    copy_text(out->exe, sizeof out->exe, seg->exe, sizeof seg->exe);
    out->producer = producer_name(seg->producer);
    out->features = atomic_load(&seg->features);
    out->alive = lks_segment_process_alive(seg);
    out->exit_time = seg->exited && seg->exit_realtime_ns > 0 ? (double)seg->exit_realtime_ns / 1e9 : 0;
    out->rss_bytes = out->alive ? rss_bytes(seg->pid) : -1;
    out->fds_limit = seg->rlimit_nofile_cur > INT64_MAX ? INT64_MAX : (int64_t)seg->rlimit_nofile_cur;
    out->sites_dropped = atomic_load(&seg->sites_dropped);

    int want_fd = (out->features & LKS_FEATURE_FD) != 0;
    const char *why;
    struct lks_heapseg *hs = lks_heapseg_check(seg, &why);
    uint32_t used = atomic_load(&seg->subsys_used);
    if (used > LKS_MAX_SUBSYS) used = LKS_MAX_SUBSYS;
    out->nsubsys = used;
    struct lks_subsys *ss = lks_subsys_table(seg);
    for (uint32_t i = 0; i < used; i++) {
        struct series_subsys *d = &out->subsys[i];
        copy_text(d->name, sizeof d->name, ss[i].name, sizeof ss[i].name);
        if (!d->name[0]) snprintf(d->name, sizeof d->name, "subsys%u", i);
        d->fds_open = ss[i].fd_open;
        d->fds_opened = ss[i].fd_opened;
        d->fds_closed = ss[i].fd_closed;
        int failed = 0;
        for (int e = 0; e < LKS_ERR_SLOTS; e++) failed |= (d->fd_failed[e] = ss[i].fd_failed[e]) != 0;
        d->has_fd = want_fd && (d->fds_open || d->fds_opened || d->fds_closed || failed);
        d->sockets_idle = idle ? 0 : -1;
        d->heap_live_bytes = ss[i].heap_live_bytes;
        d->heap_live_allocs = ss[i].heap_live_allocs;
        d->heap_alloc_bytes = ss[i].heap_alloc_bytes;
        d->heap_allocs = ss[i].heap_allocs;
        d->heap_frees = ss[i].heap_frees;
        d->has_heap = (out->features & LKS_FEATURE_HEAP) && (d->heap_allocs || d->heap_live_allocs);
        for (int a = 0; a < SERIES_AGES; a++) {
            d->heap_older[a] = hs ? 0 : -1;
            for (int b = age_first_bucket[a]; hs && b < LKS_HEAP_AGES; b++)
                d->heap_older[a] = lks_sat_add(d->heap_older[a], hs->age_bytes[i][b]);
        }
    }

    /* Idle sockets: the process's TCP descriptors whose inode the kernel
     * reports idle. */
    if (want_fd && idle) {
        struct lks_fd *fds = lks_fd_table(seg);
        uint32_t top = (uint32_t)atomic_load(&seg->fd_hiwater);
        if (top > seg->fds_cap) top = seg->fds_cap;
        for (uint32_t fd = 0; fd < top; fd++) {
            const struct lks_fd *e = &fds[fd];
            if (!e->in_use || (e->seq & 1) || e->kind != LKS_KIND_SOCKET || e->subsys >= used) continue;
            if (sockidle_is_idle(idle, e->inode)) out->subsys[e->subsys].sockets_idle++;
        }
    }

    /* Top K sites by open descriptors and by live heap bytes. */
    unsigned k = r->top_sites;
    uint32_t *top_fd = calloc(2 * (size_t)k, sizeof *top_fd);
    int64_t *vals = calloc(2 * (size_t)k, sizeof *vals);
    out->sites = calloc(2 * (size_t)k, sizeof *out->sites);
    if (!top_fd || !vals || !out->sites) {
        free(top_fd);
        free(vals);
        return -1;
    }
    uint32_t *top_heap = top_fd + k;
    unsigned nfd = 0, nheap = 0;
    struct lks_site *sites = lks_site_table(seg);
    for (uint32_t i = 0; i < seg->sites_cap; i++) {
        struct lks_site *s = &sites[i];
        if (!s->key || !s->ready) continue;
        if (s->fd_open > 0) top_insert(top_fd, vals, &nfd, k, i, s->fd_open);
        if (s->heap_live_bytes > 0) top_insert(top_heap, vals + k, &nheap, k, i, s->heap_live_bytes);
    }
    struct lks_symbolizer *sym = NULL;
    int rc = 0;
    for (unsigned j = 0; j < nfd + nheap; j++) {
        uint32_t idx = j < nfd ? top_fd[j] : top_heap[j - nfd];
        int dup = 0;
        for (size_t q = 0; q < out->nsites; q++) dup |= out->sites[q].index == idx;
        if (dup) continue;
        struct lks_site *s = &sites[idx];
        struct name_entry *e = site_names(r, seg, &sym, s);
        if (!e) {
            rc = -1;
            break;
        }
        struct series_site *d = &out->sites[out->nsites++];
        d->key = s->key;
        d->index = idx;
        copy_text(d->subsystem, sizeof d->subsystem,
                  s->subsys < used ? out->subsys[s->subsys].name : "other", LKS_SUBSYS_NAME);
        d->headline = e->headline;
        d->frames = e->frames;
        d->fds_open = s->fd_open > 0 ? s->fd_open : 0;
        d->heap_live_bytes = s->heap_live_bytes > 0 ? s->heap_live_bytes : 0;
        d->heap_live_allocs = s->heap_live_allocs > 0 ? s->heap_live_allocs : 0;
    }
    if (sym) lks_symbolizer_free(sym);
    free(top_fd);
    free(vals);
    return rc;
}

void series_proc_free(struct series_proc *p) {
    free(p->sites);
    p->sites = NULL;
    p->nsites = 0;
}

/* A private copy of a segment whose heap area is not torn (retried), or
 * NULL; *skip says why when the file is not one we may read. */
static struct lks_header *load_segment(const char *path, int *skip) {
    struct stat st;
    *skip = -1;
    if (lstat(path, &st) != 0) return NULL; /* gone since readdir: not an error */
    if (st.st_uid != getuid() && getuid() != 0) {
        *skip = SERIES_SKIP_FOREIGN;
        return NULL;
    }
    char err[400];
    for (int attempt = 0;; attempt++) {
        struct lks_header *h = lks_segment_load(path, err, sizeof err);
        if (!h) {
            if (access(path, F_OK) == 0) *skip = SERIES_SKIP_INVALID;
            return NULL;
        }
        const char *why;
        if (!(atomic_load(&h->features) & LKS_FEATURE_HEAP) || lks_heapseg_check(h, &why) ||
            attempt == TORN_RETRIES)
            return h;
        lks_segment_free(h);
    }
}

static int by_pid(const void *a, const void *b) {
    const struct series_proc *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

int series_scan(struct series_reader *r, const char *dir, const pid_t *only, size_t n_only,
                struct series_round *out) {
    memset(out, 0, sizeof *out);
    r->round++;
    if (r->round % SWEEP_ROUNDS == 0 && r->names_cap &&
        names_rehash(r, r->names_cap, r->round - SWEEP_ROUNDS) != 0)
        return -1;
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct sockidle *idle = sockidle_scan(r->idle_ms, out->sockdiag_err, sizeof out->sockdiag_err);
    out->sockdiag_ok = idle != NULL;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".seg") != 0) continue;
        if (n_only) {
            long pid = strtol(de->d_name, NULL, 10);
            int want = 0;
            for (size_t i = 0; i < n_only; i++) want |= only[i] == pid;
            if (!want) continue;
        }
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            struct series_proc *n = realloc(out->procs, cap * sizeof *n);
            if (!n) goto oom;
            out->procs = n;
        }
        char path[600];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) continue;
        int skip;
        struct lks_header *h = load_segment(path, &skip);
        if (!h) {
            if (skip >= 0) out->skipped[skip]++;
            continue;
        }
        struct series_proc *p = &out->procs[out->n];
        int rc = series_sample(r, h, idle, p);
        lks_segment_free(h);
        if (rc != 0) {
            series_proc_free(p);
            goto oom;
        }
        snprintf(p->path, sizeof p->path, "%s", path);
        out->n++;
    }
    closedir(d);
    sockidle_free(idle);
    qsort(out->procs, out->n, sizeof *out->procs, by_pid);
    return 0;
oom:
    closedir(d);
    sockidle_free(idle);
    series_round_free(out);
    errno = ENOMEM;
    return -1;
}

void series_round_free(struct series_round *round) {
    for (size_t i = 0; i < round->n; i++) series_proc_free(&round->procs[i]);
    free(round->procs);
    memset(round, 0, sizeof *round);
}

/* series.c - segments to samples (contract in series.h). Reads the core
 * counters of the segment and, for heap ages, the heap area; symbolizes a
 * site only the first time it enters a top K and caches the name. */
#define _GNU_SOURCE
#include "series.h"

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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

/* A process's symbolizer, kept across rounds: creating one (libdwfl loading
 * a module's symbols and DWARF) costs far more than a round. It reads the
 * segment through the reader's buffer (load_segment), which holds this
 * process's copy whenever its sites are named; modules and frames are only
 * ever appended, so what it cached stays true. The buffer never moves while
 * symbolizers exist (growing it drops them all). */
struct proc_sym {
    pid_t pid;
    uint64_t start_ticks;
    uint64_t last_round;
    struct lks_symbolizer *sym;
};

struct series_reader {
    unsigned top_sites;
    uint32_t idle_ms;
    uint64_t round;
    struct name_entry *names;
    size_t names_cap, names_used; /* cap: power of two */
    struct proc_sym *syms;
    size_t nsyms, syms_cap;
    void *buf; /* the segment being sampled (load_segment) */
    size_t buf_len;
    int seg_fd;        /* its file, for what is read only on need */
    int frames_loaded; /* frames, string keys and strings are in buf */
    struct sockidle *idle; /* the last sock_diag scan (idle_scan) */
    int64_t idle_at_ms;
    char idle_err[200];
};

static void proc_sym_free(struct proc_sym *p) { lks_symbolizer_free(p->sym); }

/* Drops the symbolizers of processes not sampled since min_round. */
static void syms_sweep(struct series_reader *r, uint64_t min_round) {
    size_t k = 0;
    for (size_t i = 0; i < r->nsyms; i++) {
        if (r->syms[i].last_round >= min_round) r->syms[k++] = r->syms[i];
        else proc_sym_free(&r->syms[i]);
    }
    r->nsyms = k;
}

/* The symbolizer of seg's process (seg is the reader's buffer). */
static struct lks_symbolizer *proc_symbolizer(struct series_reader *r, struct lks_header *seg) {
    for (size_t i = 0; i < r->nsyms; i++)
        if (r->syms[i].pid == seg->pid && r->syms[i].start_ticks == seg->proc_start_ticks) {
            r->syms[i].last_round = r->round;
            return r->syms[i].sym;
        }
    if (r->nsyms == r->syms_cap) {
        size_t cap = r->syms_cap ? r->syms_cap * 2 : 16;
        struct proc_sym *n = realloc(r->syms, cap * sizeof *n);
        if (!n) return NULL;
        r->syms = n;
        r->syms_cap = cap;
    }
    struct lks_symbolizer *sym = lks_symbolizer_new(seg);
    if (!sym) return NULL;
    r->syms[r->nsyms++] = (struct proc_sym){seg->pid, seg->proc_start_ticks, r->round, sym};
    return sym;
}

struct series_reader *series_reader_new(unsigned top_sites, uint32_t idle_ms) {
    struct series_reader *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->top_sites = top_sites ? top_sites : 10;
    r->idle_ms = idle_ms;
    r->seg_fd = -1;
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
    syms_sweep(r, UINT64_MAX);
    free(r->syms);
    free(r->buf);
    sockidle_free(r->idle);
    if (r->seg_fd >= 0) close(r->seg_fd);
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

/* Reads len bytes at off into buf; 0 if all of them came. */
static int read_at(int fd, void *buf, size_t len, uint64_t off) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    return 0;
}

/* Frames, string keys and strings of the loaded segment, read on the first
 * site not named yet: in the steady state every top site is, and a scrape
 * copies no frame table. If the file cannot give them, they read as empty
 * (frames print as "?"). */
static void frames_need(struct series_reader *r, struct lks_header *seg) {
    if (r->frames_loaded) return;
    r->frames_loaded = 1;
    size_t len = seg->fds_off - seg->frames_off;
    if (r->seg_fd < 0 || read_at(r->seg_fd, (char *)seg + seg->frames_off, len, seg->frames_off))
        memset((char *)seg + seg->frames_off, 0, len);
}

/* The cached names of a site, symbolizing it (with *sym, created on first
 * need) when new. NULL only when out of memory. */
static struct name_entry *site_names(struct series_reader *r, struct lks_header *seg,
                                     struct lks_symbolizer **sym, const struct lks_site *site) {
    /* *sym: this process's symbolizer, looked up on first need. */
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
    frames_need(r, seg);
    if (!*sym && !(*sym = proc_symbolizer(r, seg))) return NULL;
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
    out->kept = atomic_load(&seg->kept) != 0;
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
    for (uint32_t i = 0, n = lks_sites_in_use(seg); i < n; i++) {
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
    free(top_fd);
    free(vals);
    return rc;
}

void series_proc_free(struct series_proc *p) {
    free(p->sites);
    p->sites = NULL;
    p->nsites = 0;
}

/* A private, validated copy of what sampling reads, in the reader's reused
 * buffer: the header is checked by lks_segment_validate first, then only the
 * tables, the descriptors below fd_hiwater and the heap area are copied
 * (a whole copy would be mostly the unused descriptor table). Everything
 * else in the buffer is stale and never read. Re-reads a torn heap area.
 * Returns NULL; *skip says why when the file is not one we may read. */
static struct lks_header *load_segment(struct series_reader *r, const char *path, int *skip) {
    *skip = -1;
    if (r->seg_fd >= 0) close(r->seg_fd);
    r->seg_fd = -1;
    r->frames_loaded = 0;
    struct stat st;
    char err[400];
    int fd = lks_open_regular(path, 1, &st, err, sizeof err);
    if (fd < 0) {
        if (errno != ENOENT) *skip = SERIES_SKIP_INVALID; /* ENOENT: gone since readdir */
        return NULL;
    }
    if (st.st_size < (off_t)sizeof(struct lks_header) || st.st_size > (off_t)1 << 32) {
        *skip = SERIES_SKIP_INVALID;
        close(fd);
        return NULL;
    }
    if (st.st_uid != getuid()) { /* root included: nobody else's segments */
        *skip = SERIES_SKIP_FOREIGN;
        close(fd);
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    if (len > r->buf_len) {
        syms_sweep(r, UINT64_MAX); /* they point into the old buffer */
        free(r->buf);
        r->buf = aligned_alloc(64, (len + 63) & ~(size_t)63);
        r->buf_len = r->buf ? len : 0;
        if (!r->buf) {
            close(fd);
            return NULL;
        }
    }
    struct lks_header *h = r->buf;
    char why[200];
    *skip = SERIES_SKIP_INVALID;
    if (read_at(fd, h, sizeof *h, 0) != 0 || lks_segment_validate(h, len, why, sizeof why) != 0 ||
        h->subsys_off > h->sites_off || h->sites_off > h->fds_off || h->frames_off > h->fds_off ||
        h->strings_off > h->fds_off || h->heap_off < h->fds_off) {
        close(fd);
        return NULL;
    }
    uint64_t hiwater = (uint64_t)(uint32_t)atomic_load(&h->fd_hiwater);
    if (hiwater > h->fds_cap) hiwater = h->fds_cap;
    /* Subsystems, modules and sites (only the claimed prefix when the
     * writer says where it ends; the layout of segment.h); frames and
     * strings only on need (frames_need). */
    uint64_t sites_end = h->sites_off + (uint64_t)lks_sites_in_use(h) * sizeof(struct lks_site);
    if (sites_end > h->frames_off) sites_end = h->frames_off;
    if (read_at(fd, (char *)h + sizeof *h, sites_end - sizeof *h, sizeof *h) != 0 ||
        read_at(fd, lks_fd_table(h), hiwater * sizeof(struct lks_fd), h->fds_off) != 0) {
        close(fd);
        return NULL;
    }
    for (int attempt = 0; h->heap_size; attempt++) {
        const char *torn;
        if (read_at(fd, lks_heap_area(h), h->heap_size, h->heap_off) != 0) {
            close(fd);
            return NULL;
        }
        if (!(atomic_load(&h->features) & LKS_FEATURE_HEAP) || lks_heapseg_check(h, &torn) ||
            attempt == TORN_RETRIES)
            break;
    }
    r->seg_fd = fd;
    atomic_store(&h->fd_hiwater, (int32_t)hiwater);
    h->comm[sizeof h->comm - 1] = 0;
    h->role[sizeof h->role - 1] = 0;
    h->session[sizeof h->session - 1] = 0;
    h->exe[sizeof h->exe - 1] = 0;
    *skip = -1;
    return h;
}

static int by_pid(const void *a, const void *b) {
    const struct series_proc *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

/* Idle sockets, from a sock_diag scan at most idle_ms / 8 old (and at most
 * 5 s). The kernel's dump walks its whole
 * socket hash however few sockets there are: 4-5 ms here, the largest part
 * of a sampling round if done every second. Idleness is measured against
 * idle_ms (60 s by default), so a few seconds of age change little. */
static const struct sockidle *idle_scan(struct series_reader *r) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t max_age = r->idle_ms / 8 < 5000 ? r->idle_ms / 8 : 5000;
    if (r->idle && now - r->idle_at_ms < max_age) return r->idle;
    sockidle_free(r->idle);
    r->idle = sockidle_scan(r->idle_ms, r->idle_err, sizeof r->idle_err);
    r->idle_at_ms = now;
    return r->idle;
}

int series_scan(struct series_reader *r, const char *dir, const pid_t *only, size_t n_only,
                struct series_round *out) {
    memset(out, 0, sizeof *out);
    r->round++;
    if (r->round % SWEEP_ROUNDS == 0) {
        syms_sweep(r, r->round - SWEEP_ROUNDS);
        if (r->names_cap && names_rehash(r, r->names_cap, r->round - SWEEP_ROUNDS) != 0) return -1;
    }
    DIR *d = opendir(dir);
    if (!d && errno == ENOENT) return 0; /* nothing traced yet */
    char why[300];
    if (!d) return -1;
    if (lks_segment_dir_check(dir, why, sizeof why) != 0) { /* sets errno */
        int e = errno;
        closedir(d);
        errno = e;
        return -1;
    }
    const struct sockidle *idle = idle_scan(r);
    out->sockdiag_ok = idle != NULL;
    if (!idle) snprintf(out->sockdiag_err, sizeof out->sockdiag_err, "%s", r->idle_err);
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
        struct lks_header *h = load_segment(r, path, &skip);
        if (!h) {
            if (skip >= 0) out->skipped[skip]++;
            continue;
        }
        struct series_proc *p = &out->procs[out->n];
        int rc = series_sample(r, h, idle, p);
        if (rc != 0) {
            series_proc_free(p);
            goto oom;
        }
        snprintf(p->path, sizeof p->path, "%s", path);
        out->n++;
    }
    closedir(d);
    qsort(out->procs, out->n, sizeof *out->procs, by_pid);
    return 0;
oom:
    closedir(d);
    series_round_free(out);
    errno = ENOMEM;
    return -1;
}

void series_round_free(struct series_round *round) {
    for (size_t i = 0; i < round->n; i++) series_proc_free(&round->procs[i]);
    free(round->procs);
    memset(round, 0, sizeof *round);
}

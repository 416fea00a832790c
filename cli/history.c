/* history.c - a recording read back into plain arrays (see history.h). The
 * database is untrusted input: every id is checked before it indexes. */
#include "history.h"

#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segment.h"
#include "series.h"

/* The last seconds of an exited process's life that no verdict reads. */
#define TEARDOWN_S 1.0

/* Ends p's samples at time t_end (its first one stays). */
static void clip_proc(const struct history *h, struct hist_proc *p, double t_end) {
    while (p->last > p->first && p->last < h->nt && h->t[p->last] > t_end) p->last--;
}

/* A recording larger than this many ticks or rows of one kind is refused
 * rather than exhausting memory (a day at one sample a second is 86,400). */
#define MAX_IDS 10000000

static double *nan_array(size_t n) {
    double *a = malloc((n ? n : 1) * sizeof *a);
    for (size_t i = 0; a && i < n; i++) a[i] = NAN;
    return a;
}

static char *dup_text(sqlite3_stmt *st, int col) {
    const unsigned char *s = sqlite3_column_text(st, col);
    return strdup(s ? (const char *)s : "");
}

static double col_num(sqlite3_stmt *st, int col) {
    return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN : sqlite3_column_double(st, col);
}

const char *history_proc_name(const struct hist_proc *p) {
    return p->role && p->role[0] ? p->role : p->comm;
}

struct hist_sub *history_sub(struct hist_proc *p, const char *name) {
    for (size_t i = 0; i < p->nsub; i++)
        if (strcmp(p->sub[i].name, name) == 0) return &p->sub[i];
    return NULL;
}

/* p's subsystem name, created (all NAN) if new; NULL when out of memory. */
static struct hist_sub *sub_get(struct history *h, struct hist_proc *p, const char *name) {
    struct hist_sub *s = history_sub(p, name);
    if (s) return s;
    struct hist_sub *bigger = realloc(p->sub, (p->nsub + 1) * sizeof *bigger);
    if (!bigger) return NULL;
    p->sub = bigger;
    s = &p->sub[p->nsub];
    memset(s, 0, sizeof *s);
    s->name = strdup(name);
    int ok = s->name != NULL;
    for (int m = 0; m < H_METRICS; m++) ok &= (s->v[m] = nan_array(h->cap)) != NULL;
    p->nsub++; /* counted even if partial, so history_free releases it */
    return ok ? s : NULL;
}

void history_free(struct history *h) {
    for (size_t i = 0; i < h->nproc; i++) {
        struct hist_proc *p = &h->proc[i];
        free(p->comm), free(p->role), free(p->exe);
        free(p->rss), free(p->fds_open), free(p->heap_live);
        for (size_t s = 0; s < p->nsub; s++) {
            free(p->sub[s].name);
            for (int m = 0; m < H_METRICS; m++) free(p->sub[s].v[m]);
        }
        free(p->sub);
        for (size_t s = 0; s < p->nsites; s++) {
            struct hist_site *site = &p->sites[s];
            free(site->subsystem), free(site->headline), free(site->frames);
            free(site->fds_open), free(site->heap_live);
        }
        free(p->sites);
    }
    free(h->proc);
    free(h->t);
    memset(h, 0, sizeof *h);
}

/* The loader's state: the database and the id -> index maps. */
struct loader {
    sqlite3 *db;
    struct history *h;
    long *tick_of;   /* tick id -> index, -1 unknown */
    long max_tick;
    long *proc_of;   /* process id -> index */
    long max_proc;
    long *site_proc, *site_idx; /* site id -> process index, site index */
    long max_site;
    char *err;
    size_t errlen;
};

static int fail(struct loader *L, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (L->err) vsnprintf(L->err, L->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static sqlite3_stmt *prepare(struct loader *L, const char *sql) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(L->db, sql, -1, &st, NULL) != SQLITE_OK) {
        fail(L, "not a leakscope recording (%s)", sqlite3_errmsg(L->db));
        return NULL;
    }
    return st;
}

/* max(id) of a table, checked against MAX_IDS; -1 on error. */
static long max_id(struct loader *L, const char *sql) {
    sqlite3_stmt *st = prepare(L, sql);
    if (!st) return -1;
    long r = 0;
    if (sqlite3_step(st) == SQLITE_ROW) r = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (r < 0 || r > MAX_IDS) return fail(L, "recording too large or corrupt (id %ld)", r);
    return r;
}

static long *id_map(long max) {
    long *m = malloc((max + 1) * sizeof *m);
    for (long i = 0; m && i <= max; i++) m[i] = -1;
    return m;
}

static long map(const long *m, long max, sqlite3_int64 id) {
    return id >= 0 && id <= max ? m[id] : -1;
}

static int load_meta(struct loader *L) {
    sqlite3_stmt *st = prepare(L, "SELECT key, value FROM meta");
    if (!st) return -1;
    int version_ok = 0;
    L->h->idle_after_s = 60;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        const char *v = (const char *)sqlite3_column_text(st, 1);
        if (!k || !v) continue;
        if (strcmp(k, "schema_version") == 0) version_ok = strcmp(v, "1") == 0;
        if (strcmp(k, "idle_after_s") == 0) L->h->idle_after_s = atof(v);
    }
    sqlite3_finalize(st);
    return version_ok ? 0 : fail(L, "not a leakscope recording of schema version 1");
}

static int load_ticks(struct loader *L) {
    struct history *h = L->h;
    if ((L->max_tick = max_id(L, "SELECT max(id) FROM tick")) < 0) return -1;
    if (!(L->tick_of = id_map(L->max_tick))) return fail(L, "out of memory");
    h->cap = L->max_tick + 1;
    if (!(h->t = malloc(h->cap * sizeof *h->t))) return fail(L, "out of memory");
    sqlite3_stmt *st = prepare(L, "SELECT id, t FROM tick ORDER BY id");
    if (!st) return -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        long id = sqlite3_column_int64(st, 0);
        double t = sqlite3_column_double(st, 1);
        if (id < 0 || id > L->max_tick || (h->nt && !(t >= h->t[h->nt - 1]))) {
            sqlite3_finalize(st);
            return fail(L, "corrupt recording: tick %ld out of order", id);
        }
        L->tick_of[id] = h->nt;
        h->t[h->nt++] = t;
    }
    sqlite3_finalize(st);
    return 0;
}

static int load_processes(struct loader *L) {
    struct history *h = L->h;
    if ((L->max_proc = max_id(L, "SELECT max(id) FROM process")) < 0) return -1;
    if (!(L->proc_of = id_map(L->max_proc))) return fail(L, "out of memory");
    sqlite3_stmt *st = prepare(L,
        "SELECT id, pid, ppid, start_ticks, comm, role, exe, start_time, exit_time, fds_limit"
        " FROM process ORDER BY id");
    if (!st) return -1;
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        long id = sqlite3_column_int64(st, 0);
        struct hist_proc *bigger = realloc(h->proc, (h->nproc + 1) * sizeof *bigger);
        if (id < 0 || id > L->max_proc || !bigger) {
            if (bigger) h->proc = bigger;
            rc = fail(L, "corrupt recording: process id %ld", id);
            break;
        }
        h->proc = bigger;
        struct hist_proc *p = &h->proc[h->nproc];
        memset(p, 0, sizeof *p);
        L->proc_of[id] = h->nproc++;
        p->pid = sqlite3_column_int64(st, 1);
        p->ppid = sqlite3_column_int64(st, 2);
        p->start_ticks = sqlite3_column_int64(st, 3);
        p->comm = dup_text(st, 4);
        p->role = dup_text(st, 5);
        p->exe = dup_text(st, 6);
        p->start_time = sqlite3_column_double(st, 7);
        p->exit_time = sqlite3_column_type(st, 8) == SQLITE_NULL ? 0 : sqlite3_column_double(st, 8);
        p->fds_limit = sqlite3_column_double(st, 9);
        p->first = h->nt;
        p->last = 0;
        p->rss = nan_array(h->cap);
        p->fds_open = nan_array(h->cap);
        p->heap_live = nan_array(h->cap);
        if (!p->comm || !p->role || !p->exe || !p->rss || !p->fds_open || !p->heap_live)
            rc = fail(L, "out of memory");
    }
    sqlite3_finalize(st);
    return rc;
}

static int load_proc_samples(struct loader *L) {
    sqlite3_stmt *st = prepare(L,
        "SELECT tick, process, rss_bytes, fds_open, heap_live_bytes FROM proc_sample");
    if (!st) return -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        long ti = map(L->tick_of, L->max_tick, sqlite3_column_int64(st, 0));
        long pi = map(L->proc_of, L->max_proc, sqlite3_column_int64(st, 1));
        if (ti < 0 || pi < 0) continue; /* a tick being written, or a dangling row */
        struct hist_proc *p = &L->h->proc[pi];
        p->rss[ti] = col_num(st, 2);
        p->fds_open[ti] = col_num(st, 3);
        p->heap_live[ti] = col_num(st, 4);
        if ((size_t)ti < p->first) p->first = ti;
        if ((size_t)ti > p->last) p->last = ti;
    }
    sqlite3_finalize(st);
    return 0;
}

static int load_subsys_samples(struct loader *L) {
    static const int cols[] = {H_FDS_OPEN, H_FDS_OPENED, H_FD_FAILURES, H_SOCKETS_IDLE,
                               H_HEAP_LIVE, H_HEAP_ALLOCS, H_HEAP_OLDER_10S,
                               H_HEAP_OLDER_1M, H_HEAP_OLDER_10M};
    sqlite3_stmt *st = prepare(L,
        "SELECT tick, process, subsystem, fds_open, fds_opened, fd_open_failures, sockets_idle,"
        " heap_live_bytes, heap_allocations, heap_older_10s, heap_older_1m, heap_older_10m"
        " FROM subsys_sample");
    if (!st) return -1;
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        long ti = map(L->tick_of, L->max_tick, sqlite3_column_int64(st, 0));
        long pi = map(L->proc_of, L->max_proc, sqlite3_column_int64(st, 1));
        const char *name = (const char *)sqlite3_column_text(st, 2);
        if (ti < 0 || pi < 0 || !name || strlen(name) >= LKS_SUBSYS_NAME) continue;
        struct hist_sub *s = sub_get(L->h, &L->h->proc[pi], name);
        if (!s) {
            rc = fail(L, "out of memory");
            break;
        }
        for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) s->v[cols[c]][ti] = col_num(st, 3 + c);
        /* Failures by errno are stored only when non-zero. */
        if (!isnan(s->v[H_FDS_OPEN][ti])) s->v[H_FD_EMFILE][ti] = 0;
    }
    sqlite3_finalize(st);
    if (rc) return rc;

    st = prepare(L, "SELECT tick, process, subsystem, count FROM fd_failure_sample"
                    " WHERE errno IN ('EMFILE', 'ENFILE')");
    if (!st) return -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        long ti = map(L->tick_of, L->max_tick, sqlite3_column_int64(st, 0));
        long pi = map(L->proc_of, L->max_proc, sqlite3_column_int64(st, 1));
        const char *name = (const char *)sqlite3_column_text(st, 2);
        struct hist_sub *s = ti >= 0 && pi >= 0 && name ? history_sub(&L->h->proc[pi], name) : NULL;
        if (!s) continue;
        double *v = &s->v[H_FD_EMFILE][ti];
        *v = (isnan(*v) ? 0 : *v) + sqlite3_column_double(st, 3);
    }
    sqlite3_finalize(st);
    return 0;
}

static int load_sites(struct loader *L) {
    struct history *h = L->h;
    if ((L->max_site = max_id(L, "SELECT max(id) FROM site")) < 0) return -1;
    if (!(L->site_proc = id_map(L->max_site)) || !(L->site_idx = id_map(L->max_site)))
        return fail(L, "out of memory");
    sqlite3_stmt *st = prepare(L,
        "SELECT id, process, site_key, subsystem, headline, frames FROM site ORDER BY id");
    if (!st) return -1;
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        long id = sqlite3_column_int64(st, 0);
        long pi = map(L->proc_of, L->max_proc, sqlite3_column_int64(st, 1));
        if (id < 0 || id > L->max_site || pi < 0) continue;
        struct hist_proc *p = &h->proc[pi];
        struct hist_site *bigger = realloc(p->sites, (p->nsites + 1) * sizeof *bigger);
        if (!bigger) {
            rc = fail(L, "out of memory");
            break;
        }
        p->sites = bigger;
        struct hist_site *s = &p->sites[p->nsites];
        L->site_proc[id] = pi;
        L->site_idx[id] = p->nsites++;
        s->key = sqlite3_column_int64(st, 2);
        s->subsystem = dup_text(st, 3);
        s->headline = dup_text(st, 4);
        s->frames = dup_text(st, 5);
        s->fds_open = nan_array(h->cap);
        s->heap_live = nan_array(h->cap);
        if (!s->subsystem || !s->headline || !s->frames || !s->fds_open || !s->heap_live)
            rc = fail(L, "out of memory");
    }
    sqlite3_finalize(st);
    if (rc) return rc;

    st = prepare(L, "SELECT tick, site, fds_open, heap_live_bytes FROM site_sample");
    if (!st) return -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        long ti = map(L->tick_of, L->max_tick, sqlite3_column_int64(st, 0));
        sqlite3_int64 id = sqlite3_column_int64(st, 1);
        long pi = map(L->site_proc, L->max_site, id);
        if (ti < 0 || pi < 0) continue;
        struct hist_site *s = &h->proc[pi].sites[L->site_idx[id]];
        s->fds_open[ti] = col_num(st, 2);
        s->heap_live[ti] = col_num(st, 3);
    }
    sqlite3_finalize(st);
    return 0;
}

int history_load_db(const char *path, struct history *h, char *err, size_t errlen) {
    memset(h, 0, sizeof *h);
    struct loader L = {.h = h, .err = err, .errlen = errlen};
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        snprintf(err, errlen, "cannot open %s: %m", path);
        return -1;
    }
    fclose(probe);
    int rc;
    if (sqlite3_open_v2(path, &L.db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rc = fail(&L, "cannot open %s: %s", path, L.db ? sqlite3_errmsg(L.db) : "out of memory");
    } else {
        sqlite3_busy_timeout(L.db, 2000);
        /* One read transaction: every table as of the same committed tick. */
        rc = sqlite3_exec(L.db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 0
             : fail(&L, "%s: %s", path, sqlite3_errmsg(L.db));
        if (rc == 0) rc = load_meta(&L);
        if (rc == 0) rc = load_ticks(&L);
        if (rc == 0) rc = load_processes(&L);
        if (rc == 0) rc = load_proc_samples(&L);
        if (rc == 0) rc = load_subsys_samples(&L);
        if (rc == 0) rc = load_sites(&L);
        sqlite3_exec(L.db, "COMMIT", NULL, NULL, NULL);
    }
    sqlite3_close(L.db);
    free(L.tick_of), free(L.proc_of), free(L.site_proc), free(L.site_idx);
    for (size_t i = 0; rc == 0 && i < h->nproc; i++) {
        struct hist_proc *p = &h->proc[i];
        if (p->first > p->last) p->first = p->last = 0;
        /* Judge a process while it ran: after its exit the recorder keeps
         * its final state (rss NULL), what an interpreter's teardown left. */
        size_t alive = p->last + 1;
        while (alive > p->first && isnan(p->rss[alive - 1])) alive--;
        if (alive > p->first) p->last = alive - 1;
        /* Nor its last second, when an interpreter tears its heap down: a
         * sample taken then (a Python program freeing 15 MB it had kept)
         * hid the growth from the verdict. */
        if (p->exit_time > 0) clip_proc(h, p, p->exit_time - TEARDOWN_S);
    }
    if (rc) history_free(h);
    return rc;
}

/* Grows every array of h to hold cap ticks (new slots NAN). */
static int grow(struct history *h, size_t cap) {
#define GROW(p)                                                    \
    do {                                                           \
        double *b_ = realloc((p), cap * sizeof *b_);               \
        if (!b_) return -1;                                        \
        for (size_t i_ = h->cap; i_ < cap; i_++) b_[i_] = NAN;     \
        (p) = b_;                                                  \
    } while (0)
    double *t = realloc(h->t, cap * sizeof *t);
    if (!t) return -1;
    h->t = t;
    for (size_t i = 0; i < h->nproc; i++) {
        struct hist_proc *p = &h->proc[i];
        GROW(p->rss);
        GROW(p->fds_open);
        GROW(p->heap_live);
        for (size_t s = 0; s < p->nsub; s++)
            for (int m = 0; m < H_METRICS; m++) GROW(p->sub[s].v[m]);
        for (size_t s = 0; s < p->nsites; s++) {
            GROW(p->sites[s].fds_open);
            GROW(p->sites[s].heap_live);
        }
    }
#undef GROW
    h->cap = cap;
    return 0;
}

/* Drops the oldest `drop` ticks (a live watch keeps a bounded window). */
static void drop_oldest(struct history *h, size_t drop) {
    size_t keep = h->nt - drop;
#define SHIFT(p) memmove((p), (p) + drop, keep * sizeof *(p))
    SHIFT(h->t);
    for (size_t i = 0; i < h->nproc; i++) {
        struct hist_proc *p = &h->proc[i];
        SHIFT(p->rss);
        SHIFT(p->fds_open);
        SHIFT(p->heap_live);
        for (size_t s = 0; s < p->nsub; s++)
            for (int m = 0; m < H_METRICS; m++) SHIFT(p->sub[s].v[m]);
        for (size_t s = 0; s < p->nsites; s++) {
            SHIFT(p->sites[s].fds_open);
            SHIFT(p->sites[s].heap_live);
        }
        p->first = p->first > drop ? p->first - drop : 0;
        p->last = p->last > drop ? p->last - drop : 0;
    }
#undef SHIFT
    h->nt = keep;
}

/* The process of this round's sample, created if new. */
static struct hist_proc *proc_get(struct history *h, const struct series_proc *sp) {
    for (size_t i = 0; i < h->nproc; i++)
        if (h->proc[i].pid == sp->pid && h->proc[i].start_ticks == sp->start_ticks) return &h->proc[i];
    struct hist_proc *bigger = realloc(h->proc, (h->nproc + 1) * sizeof *bigger);
    if (!bigger) return NULL;
    h->proc = bigger;
    struct hist_proc *p = &h->proc[h->nproc++];
    memset(p, 0, sizeof *p);
    p->pid = sp->pid;
    p->ppid = sp->ppid;
    p->start_ticks = sp->start_ticks;
    p->comm = strdup(sp->comm);
    p->role = strdup(sp->role);
    p->exe = strdup(sp->exe);
    p->start_time = sp->start_time;
    p->first = h->nt - 1;
    p->rss = nan_array(h->cap);
    p->fds_open = nan_array(h->cap);
    p->heap_live = nan_array(h->cap);
    if (!p->comm || !p->role || !p->exe || !p->rss || !p->fds_open || !p->heap_live) return NULL;
    return p;
}

static struct hist_site *site_get(struct history *h, struct hist_proc *p, const struct series_site *ss) {
    for (size_t i = 0; i < p->nsites; i++)
        if (p->sites[i].key == ss->key) return &p->sites[i];
    struct hist_site *bigger = realloc(p->sites, (p->nsites + 1) * sizeof *bigger);
    if (!bigger) return NULL;
    p->sites = bigger;
    struct hist_site *s = &p->sites[p->nsites++];
    memset(s, 0, sizeof *s);
    s->key = ss->key;
    s->subsystem = strdup(ss->subsystem);
    s->headline = strdup(ss->headline ? ss->headline : "?");
    s->frames = strdup(ss->frames ? ss->frames : "");
    s->fds_open = nan_array(h->cap);
    s->heap_live = nan_array(h->cap);
    if (!s->subsystem || !s->headline || !s->frames || !s->fds_open || !s->heap_live) return NULL;
    return s;
}

static double known(int64_t v) { return v < 0 ? NAN : (double)v; }

void history_clip(struct history *h, double t_end) {
    for (size_t i = 0; i < h->nproc; i++) clip_proc(h, &h->proc[i], t_end);
}

int history_add_round(struct history *h, const struct series_round *r, double t, size_t max_ticks) {
    if (max_ticks >= 2 && h->nt >= max_ticks) drop_oldest(h, h->nt - max_ticks / 2);
    if (h->nt == h->cap && grow(h, h->cap ? 2 * h->cap : 64) != 0) return -1;
    size_t k = h->nt++;
    h->t[k] = t;
    for (size_t i = 0; i < r->n; i++) {
        const struct series_proc *sp = &r->procs[i];
        /* Series of running processes only: an exited one's segment holds
         * what its teardown left, not what it grew. */
        if (!sp->alive) continue;
        struct hist_proc *p = proc_get(h, sp);
        if (!p) return -1;
        p->last = k;
        p->fds_limit = (double)sp->fds_limit;
        p->exit_time = sp->exit_time;
        p->rss[k] = known(sp->rss_bytes);
        double fds = 0, heap = 0;
        for (size_t s = 0; s < sp->nsubsys; s++) {
            const struct series_subsys *ss = &sp->subsys[s];
            if (!ss->has_fd && !ss->has_heap) continue;
            struct hist_sub *hs = sub_get(h, p, ss->name);
            if (!hs) return -1;
            if (ss->has_fd) {
                hs->v[H_FDS_OPEN][k] = (double)ss->fds_open;
                hs->v[H_FDS_OPENED][k] = (double)ss->fds_opened;
                double failed = 0;
                for (int e = 0; e < LKS_ERR_SLOTS; e++) failed += (double)ss->fd_failed[e];
                hs->v[H_FD_FAILURES][k] = failed;
                hs->v[H_FD_EMFILE][k] =
                    (double)(ss->fd_failed[LKS_ERR_EMFILE] + ss->fd_failed[LKS_ERR_ENFILE]);
                hs->v[H_SOCKETS_IDLE][k] = known(ss->sockets_idle);
                fds += (double)ss->fds_open;
            }
            if (ss->has_heap) {
                hs->v[H_HEAP_LIVE][k] = (double)ss->heap_live_bytes;
                hs->v[H_HEAP_ALLOCS][k] = (double)ss->heap_allocs;
                hs->v[H_HEAP_OLDER_10S][k] = known(ss->heap_older[0]);
                hs->v[H_HEAP_OLDER_1M][k] = known(ss->heap_older[1]);
                hs->v[H_HEAP_OLDER_10M][k] = known(ss->heap_older[2]);
                heap += (double)ss->heap_live_bytes;
            }
        }
        if (sp->features & LKS_FEATURE_FD) p->fds_open[k] = fds;
        if (sp->features & LKS_FEATURE_HEAP) p->heap_live[k] = heap;
        for (size_t s = 0; s < sp->nsites; s++) {
            struct hist_site *hs = site_get(h, p, &sp->sites[s]);
            if (!hs) return -1;
            hs->fds_open[k] = (double)sp->sites[s].fds_open;
            hs->heap_live[k] = (double)sp->sites[s].heap_live_bytes;
        }
    }
    return 0;
}

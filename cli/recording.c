/* recording.c - the SQLite writer behind `record` (contract in recording.h,
 * schema in docs/RECORDING.md). Keeps in memory which processes and sites
 * already have rows, so a tick is only inserts with prepared statements. */
#define _GNU_SOURCE
#include "recording.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION "1"

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tick (id INTEGER PRIMARY KEY, t REAL NOT NULL,"
    " scan_ms REAL NOT NULL, segments_skipped INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS process (id INTEGER PRIMARY KEY, pid INTEGER NOT NULL,"
    " start_ticks INTEGER NOT NULL, ppid INTEGER NOT NULL, comm TEXT NOT NULL,"
    " exe TEXT NOT NULL, role TEXT NOT NULL, session TEXT NOT NULL, producer TEXT NOT NULL,"
    " features INTEGER NOT NULL, start_time REAL NOT NULL, fds_limit INTEGER NOT NULL,"
    " first_tick INTEGER NOT NULL, last_tick INTEGER NOT NULL, exit_time REAL,"
    " UNIQUE (pid, start_ticks));"
    "CREATE TABLE IF NOT EXISTS proc_sample (tick INTEGER NOT NULL, process INTEGER NOT NULL,"
    " rss_bytes INTEGER, fds_open INTEGER, heap_live_bytes INTEGER,"
    " sites_dropped INTEGER NOT NULL, PRIMARY KEY (tick, process)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS subsys_sample (tick INTEGER NOT NULL, process INTEGER NOT NULL,"
    " subsystem TEXT NOT NULL, fds_open INTEGER, fds_opened INTEGER, fds_closed INTEGER,"
    " fd_open_failures INTEGER, sockets_idle INTEGER, heap_live_bytes INTEGER,"
    " heap_live_allocations INTEGER, heap_allocated_bytes INTEGER, heap_allocations INTEGER,"
    " heap_frees INTEGER, heap_older_10s INTEGER, heap_older_1m INTEGER,"
    " heap_older_10m INTEGER, heap_older_1h INTEGER,"
    " PRIMARY KEY (tick, process, subsystem)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS fd_failure_sample (tick INTEGER NOT NULL,"
    " process INTEGER NOT NULL, subsystem TEXT NOT NULL, errno TEXT NOT NULL,"
    " count INTEGER NOT NULL, PRIMARY KEY (tick, process, subsystem, errno)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS site (id INTEGER PRIMARY KEY, process INTEGER NOT NULL,"
    " site_key INTEGER NOT NULL, subsystem TEXT NOT NULL, headline TEXT NOT NULL,"
    " frames TEXT NOT NULL, UNIQUE (process, site_key));"
    "CREATE TABLE IF NOT EXISTS site_sample (tick INTEGER NOT NULL, site INTEGER NOT NULL,"
    " fds_open INTEGER NOT NULL, heap_live_bytes INTEGER NOT NULL,"
    " heap_live_allocations INTEGER NOT NULL, PRIMARY KEY (tick, site)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS event (tick INTEGER NOT NULL, t REAL NOT NULL,"
    " process INTEGER NOT NULL, kind TEXT NOT NULL);";

enum stmt {
    S_TICK, S_PROC_FIND, S_PROC_ADD, S_PROC_SEEN, S_PROC_EXIT, S_PROC_SAMPLE, S_SUBSYS_SAMPLE,
    S_FAILURE, S_SITE_FIND, S_SITE_ADD, S_SITE_SAMPLE, S_EVENT, S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_TICK] = "INSERT INTO tick (t, scan_ms, segments_skipped) VALUES (?,?,?)",
    [S_PROC_FIND] = "SELECT id, exit_time IS NOT NULL FROM process WHERE pid=? AND start_ticks=?",
    [S_PROC_ADD] = "INSERT INTO process (pid, start_ticks, ppid, comm, exe, role, session,"
                   " producer, features, start_time, fds_limit, first_tick, last_tick)"
                   " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
    [S_PROC_SEEN] = "UPDATE process SET last_tick=? WHERE id=?",
    [S_PROC_EXIT] = "UPDATE process SET exit_time=? WHERE id=?",
    [S_PROC_SAMPLE] = "INSERT INTO proc_sample VALUES (?,?,?,?,?,?)",
    [S_SUBSYS_SAMPLE] = "INSERT INTO subsys_sample VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    [S_FAILURE] = "INSERT INTO fd_failure_sample VALUES (?,?,?,?,?)",
    [S_SITE_FIND] = "SELECT id FROM site WHERE process=? AND site_key=?",
    [S_SITE_ADD] = "INSERT INTO site (process, site_key, subsystem, headline, frames)"
                   " VALUES (?,?,?,?,?)",
    [S_SITE_SAMPLE] = "INSERT OR REPLACE INTO site_sample VALUES (?,?,?,?,?)",
    [S_EVENT] = "INSERT INTO event (tick, t, process, kind) VALUES (?,?,?,?)",
};

/* A process with a row, as of the last tick. */
struct known_proc {
    pid_t pid;
    uint64_t start_ticks;
    int64_t id;
    int exit_recorded;
    int64_t seen_tick;
};

/* (process row, site key) -> site row. */
struct known_site {
    int64_t proc;
    uint64_t key;
    int64_t id; /* 0: empty slot */
};

struct recording {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    struct known_proc *procs;
    size_t nprocs, procs_cap;
    struct known_site *sites;
    size_t nsites, sites_cap; /* cap: power of two */
};

static int fail(struct recording *r, char *err, size_t errlen, const char *what) {
    lks_set_err(err, errlen, "%s: %s", what, sqlite3_errmsg(r->db));
    return -1;
}

static int exec_sql(struct recording *r, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(r->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        lks_set_err(err, errlen, "%s", msg ? msg : sqlite3_errmsg(r->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static void meta_put(struct recording *r, const char *key, const char *value) {
    sqlite3_stmt *s;
    if (!value || sqlite3_prepare_v2(r->db, "INSERT OR REPLACE INTO meta VALUES (?,?)", -1, &s,
                                     NULL) != SQLITE_OK)
        return;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
    sqlite3_step(s);
    sqlite3_finalize(s);
}

/* An existing database must be empty or a leakscope recording. */
static int check_existing(struct recording *r, char *err, size_t errlen) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(r->db, "SELECT count(*) FROM sqlite_master", -1, &s, NULL) != SQLITE_OK)
        return fail(r, err, errlen, "not a readable SQLite database");
    int rc = sqlite3_step(s);
    int tables = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    sqlite3_finalize(s);
    if (tables < 0) return fail(r, err, errlen, "not a readable SQLite database");
    if (tables == 0) return 0;
    const char *version = NULL;
    if (sqlite3_prepare_v2(r->db, "SELECT value FROM meta WHERE key='schema_version'", -1, &s,
                           NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        version = (const char *)sqlite3_column_text(s, 0);
    int ok = version && strcmp(version, SCHEMA_VERSION) == 0;
    if (!version)
        lks_set_err(err, errlen, "a SQLite database, but not a leakscope recording; refusing to touch it");
    else if (!ok)
        lks_set_err(err, errlen, "a recording of schema version %s, this leakscope writes %s", version,
                    SCHEMA_VERSION);
    sqlite3_finalize(s);
    return ok ? 0 : -1;
}

struct recording *recording_open(const char *path, double interval_s, double idle_after_s,
                                 unsigned top_sites, const char *segment_dir,
                                 const char *command, char *err, size_t errlen) {
    /* Create it ourselves first: 0600, and a plain errno for a bad path. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        lks_set_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return NULL;
    }
    close(fd);
    struct recording *r = calloc(1, sizeof *r);
    if (!r) {
        lks_set_err(err, errlen, "out of memory");
        return NULL;
    }
    char why[400];
    if (sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK) {
        fail(r, why, sizeof why, "open");
        goto bad;
    }
    sqlite3_busy_timeout(r->db, 5000);
    if (check_existing(r, why, sizeof why) != 0) goto bad;
    if (exec_sql(r, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", why, sizeof why) != 0 ||
        exec_sql(r, schema, why, sizeof why) != 0)
        goto bad;
    for (int i = 0; i < S_COUNT; i++)
        if (sqlite3_prepare_v3(r->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &r->st[i], NULL) !=
            SQLITE_OK) {
            fail(r, why, sizeof why, "prepare");
            goto bad;
        }
    char num[64], host[256] = "";
    gethostname(host, sizeof host - 1);
    exec_sql(r, "BEGIN", why, sizeof why);
    meta_put(r, "schema_version", SCHEMA_VERSION);
    snprintf(num, sizeof num, "%g", interval_s);
    meta_put(r, "interval_s", num);
    snprintf(num, sizeof num, "%g", idle_after_s);
    meta_put(r, "idle_after_s", num);
    snprintf(num, sizeof num, "%u", top_sites);
    meta_put(r, "top_sites", num);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(num, sizeof num, "%.3f", (double)ts.tv_sec + ts.tv_nsec / 1e9);
    meta_put(r, "started_at", num);
    meta_put(r, "host", host);
    meta_put(r, "segment_dir", segment_dir);
    meta_put(r, "command", command);
    if (exec_sql(r, "COMMIT", why, sizeof why) != 0) goto bad;
    return r;
bad:
    lks_set_err(err, errlen, "%s: %s", path, why);
    recording_close(r);
    return NULL;
}

void recording_close(struct recording *r) {
    if (!r) return;
    for (int i = 0; i < S_COUNT; i++) sqlite3_finalize(r->st[i]);
    if (r->db) {
        sqlite3_wal_checkpoint_v2(r->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        sqlite3_close(r->db);
    }
    free(r->procs);
    free(r->sites);
    free(r);
}

/* ---- helpers for one statement ---- */

static sqlite3_stmt *use(struct recording *r, enum stmt s) {
    sqlite3_reset(r->st[s]);
    sqlite3_clear_bindings(r->st[s]);
    return r->st[s];
}

static void bind_opt(sqlite3_stmt *s, int i, int have, int64_t v) {
    if (have) sqlite3_bind_int64(s, i, v);
    else sqlite3_bind_null(s, i);
}

static int done(sqlite3_stmt *s) { return sqlite3_step(s) == SQLITE_DONE ? 0 : -1; }

static int event(struct recording *r, int64_t tick, double t, int64_t proc, const char *kind) {
    sqlite3_stmt *s = use(r, S_EVENT);
    sqlite3_bind_int64(s, 1, tick);
    sqlite3_bind_double(s, 2, t);
    sqlite3_bind_int64(s, 3, proc);
    sqlite3_bind_text(s, 4, kind, -1, SQLITE_STATIC);
    return done(s);
}

/* The row of p, inserting it (with a start event) when new. */
static struct known_proc *proc_row(struct recording *r, const struct series_proc *p, int64_t tick) {
    for (size_t i = 0; i < r->nprocs; i++)
        if (r->procs[i].pid == p->pid && r->procs[i].start_ticks == p->start_ticks)
            return &r->procs[i];
    if (r->nprocs == r->procs_cap) {
        size_t cap = r->procs_cap ? r->procs_cap * 2 : 32;
        struct known_proc *n = realloc(r->procs, cap * sizeof *n);
        if (!n) return NULL;
        r->procs = n;
        r->procs_cap = cap;
    }
    struct known_proc *k = &r->procs[r->nprocs];
    *k = (struct known_proc){.pid = p->pid, .start_ticks = p->start_ticks};
    sqlite3_stmt *s = use(r, S_PROC_FIND); /* appending to an earlier recording */
    sqlite3_bind_int64(s, 1, p->pid);
    sqlite3_bind_int64(s, 2, (int64_t)p->start_ticks);
    if (sqlite3_step(s) == SQLITE_ROW) {
        k->id = sqlite3_column_int64(s, 0);
        k->exit_recorded = sqlite3_column_int(s, 1);
    } else {
        s = use(r, S_PROC_ADD);
        sqlite3_bind_int64(s, 1, p->pid);
        sqlite3_bind_int64(s, 2, (int64_t)p->start_ticks);
        sqlite3_bind_int64(s, 3, p->ppid);
        sqlite3_bind_text(s, 4, p->comm, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 5, p->exe, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 6, p->role, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 7, p->session, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 8, p->producer, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 9, p->features);
        sqlite3_bind_double(s, 10, p->start_time);
        sqlite3_bind_int64(s, 11, p->fds_limit);
        sqlite3_bind_int64(s, 12, tick);
        sqlite3_bind_int64(s, 13, tick);
        if (done(s) != 0) return NULL;
        k->id = sqlite3_last_insert_rowid(r->db);
        if (event(r, tick, p->start_time, k->id, "start") != 0) return NULL;
    }
    r->nprocs++;
    return k;
}

static size_t site_slot(int64_t proc, uint64_t key, size_t cap) {
    return (size_t)(((uint64_t)proc * 0x9E3779B97F4A7C15ull ^ key) * 0xff51afd7ed558ccdull >> 24) &
           (cap - 1);
}

static int sites_grow(struct recording *r) {
    size_t cap = r->sites_cap ? r->sites_cap * 2 : 1024;
    struct known_site *n = calloc(cap, sizeof *n);
    if (!n) return -1;
    for (size_t i = 0; i < r->sites_cap; i++) {
        if (!r->sites[i].id) continue;
        size_t j = site_slot(r->sites[i].proc, r->sites[i].key, cap);
        while (n[j].id) j = (j + 1) & (cap - 1);
        n[j] = r->sites[i];
    }
    free(r->sites);
    r->sites = n;
    r->sites_cap = cap;
    return 0;
}

/* The row of a site, inserting it when new; 0 on error. */
static int64_t site_row(struct recording *r, int64_t proc, const struct series_site *site) {
    if ((r->nsites + 1) * 2 > r->sites_cap && sites_grow(r) != 0) return 0;
    size_t j = site_slot(proc, site->key, r->sites_cap);
    while (r->sites[j].id) {
        if (r->sites[j].proc == proc && r->sites[j].key == site->key) return r->sites[j].id;
        j = (j + 1) & (r->sites_cap - 1);
    }
    int64_t id = 0;
    sqlite3_stmt *s = use(r, S_SITE_FIND);
    sqlite3_bind_int64(s, 1, proc);
    sqlite3_bind_int64(s, 2, (int64_t)site->key);
    if (sqlite3_step(s) == SQLITE_ROW) {
        id = sqlite3_column_int64(s, 0);
    } else {
        s = use(r, S_SITE_ADD);
        sqlite3_bind_int64(s, 1, proc);
        sqlite3_bind_int64(s, 2, (int64_t)site->key);
        sqlite3_bind_text(s, 3, site->subsystem, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, site->headline, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 5, site->frames, -1, SQLITE_STATIC);
        if (done(s) != 0) return 0;
        id = sqlite3_last_insert_rowid(r->db);
    }
    r->sites[j] = (struct known_site){proc, site->key, id};
    r->nsites++;
    return id;
}

static int write_proc(struct recording *r, const struct series_proc *p, int64_t tick, double t) {
    struct known_proc *k = proc_row(r, p, tick);
    if (!k) return -1;
    k->seen_tick = tick;
    sqlite3_stmt *s = use(r, S_PROC_SEEN);
    sqlite3_bind_int64(s, 1, tick);
    sqlite3_bind_int64(s, 2, k->id);
    if (done(s) != 0) return -1;

    int fd = (p->features & LKS_FEATURE_FD) != 0, heap = (p->features & LKS_FEATURE_HEAP) != 0;
    int64_t fds_open = 0, heap_live = 0;
    for (size_t i = 0; i < p->nsubsys; i++) {
        fds_open = lks_sat_add(fds_open, p->subsys[i].fds_open);
        heap_live = lks_sat_add(heap_live, p->subsys[i].heap_live_bytes);
    }
    s = use(r, S_PROC_SAMPLE);
    sqlite3_bind_int64(s, 1, tick);
    sqlite3_bind_int64(s, 2, k->id);
    bind_opt(s, 3, p->rss_bytes >= 0, p->rss_bytes);
    bind_opt(s, 4, fd, fds_open);
    bind_opt(s, 5, heap, heap_live);
    sqlite3_bind_int64(s, 6, p->sites_dropped);
    if (done(s) != 0) return -1;

    for (size_t i = 0; i < p->nsubsys; i++) {
        const struct series_subsys *d = &p->subsys[i];
        if (!d->has_fd && !d->has_heap) continue;
        uint64_t failed = 0;
        for (int e = 0; e < LKS_ERR_SLOTS; e++) failed += d->fd_failed[e];
        s = use(r, S_SUBSYS_SAMPLE);
        sqlite3_bind_int64(s, 1, tick);
        sqlite3_bind_int64(s, 2, k->id);
        sqlite3_bind_text(s, 3, d->name, -1, SQLITE_STATIC);
        bind_opt(s, 4, d->has_fd, d->fds_open);
        bind_opt(s, 5, d->has_fd, (int64_t)d->fds_opened);
        bind_opt(s, 6, d->has_fd, (int64_t)d->fds_closed);
        bind_opt(s, 7, d->has_fd, (int64_t)failed);
        bind_opt(s, 8, d->has_fd && d->sockets_idle >= 0, d->sockets_idle);
        bind_opt(s, 9, d->has_heap, d->heap_live_bytes);
        bind_opt(s, 10, d->has_heap, d->heap_live_allocs);
        bind_opt(s, 11, d->has_heap, (int64_t)d->heap_alloc_bytes);
        bind_opt(s, 12, d->has_heap, (int64_t)d->heap_allocs);
        bind_opt(s, 13, d->has_heap, (int64_t)d->heap_frees);
        for (int a = 0; a < SERIES_AGES; a++)
            bind_opt(s, 14 + a, d->has_heap && d->heap_older[a] >= 0, d->heap_older[a]);
        if (done(s) != 0) return -1;
        for (int e = 0; d->has_fd && e < LKS_ERR_SLOTS; e++) {
            if (!d->fd_failed[e]) continue;
            s = use(r, S_FAILURE);
            sqlite3_bind_int64(s, 1, tick);
            sqlite3_bind_int64(s, 2, k->id);
            sqlite3_bind_text(s, 3, d->name, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 4, lks_errno_slot_name(e), -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 5, (int64_t)d->fd_failed[e]);
            if (done(s) != 0) return -1;
        }
    }
    for (size_t i = 0; i < p->nsites; i++) {
        int64_t id = site_row(r, k->id, &p->sites[i]);
        if (!id) return -1;
        s = use(r, S_SITE_SAMPLE);
        sqlite3_bind_int64(s, 1, tick);
        sqlite3_bind_int64(s, 2, id);
        sqlite3_bind_int64(s, 3, p->sites[i].fds_open);
        sqlite3_bind_int64(s, 4, p->sites[i].heap_live_bytes);
        sqlite3_bind_int64(s, 5, p->sites[i].heap_live_allocs);
        if (done(s) != 0) return -1;
    }
    if (!p->alive && !k->exit_recorded) {
        double when = p->exit_time > 0 ? p->exit_time : t;
        s = use(r, S_PROC_EXIT);
        sqlite3_bind_double(s, 1, when);
        sqlite3_bind_int64(s, 2, k->id);
        if (done(s) != 0 || event(r, tick, when, k->id, "exit") != 0) return -1;
        k->exit_recorded = 1;
    }
    return 0;
}

int recording_tick(struct recording *r, const struct series_round *round, double t,
                   double scan_ms, char *err, size_t errlen) {
    if (sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return fail(r, err, errlen, "begin");
    uint64_t skipped = 0;
    for (int i = 0; i < SERIES_SKIP_REASONS; i++) skipped += round->skipped[i];
    sqlite3_stmt *s = use(r, S_TICK);
    sqlite3_bind_double(s, 1, t);
    sqlite3_bind_double(s, 2, scan_ms);
    sqlite3_bind_int64(s, 3, (int64_t)skipped);
    if (done(s) != 0) goto bad;
    int64_t tick = sqlite3_last_insert_rowid(r->db);
    for (size_t i = 0; i < round->n; i++)
        if (write_proc(r, &round->procs[i], tick, t) != 0) goto bad;
    /* Processes whose segment vanished (removed at exit) since last tick. */
    for (size_t i = 0; i < r->nprocs; i++) {
        struct known_proc *k = &r->procs[i];
        if (k->seen_tick == tick || k->exit_recorded) continue;
        s = use(r, S_PROC_EXIT);
        sqlite3_bind_double(s, 1, t);
        sqlite3_bind_int64(s, 2, k->id);
        if (done(s) != 0 || event(r, tick, t, k->id, "exit") != 0) goto bad;
        k->exit_recorded = 1;
    }
    if (sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) goto bad;
    return 0;
bad:
    fail(r, err, errlen, "writing a tick");
    sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

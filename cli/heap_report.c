/* heap_report.c - heap summaries (JSON and text) and the mark/diff
 * subcommands (contract in heap_report.h).
 *
 * Every index read from a segment (site, subsystem) is checked before use:
 * the copy was validated as a whole by lks_segment_load, the heap area by
 * lks_heapseg_check, and the rest here.
 */
#define _GNU_SOURCE
#include "heap_report.h"
#include "summary.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../memtrack/heapseg.h"
#include "json.h"
#include "segdir.h"

#define MAX_SITES_JSON 200
#define MAX_SITES_TEXT 5
#define MAX_RETAINED_TEXT 3
#define WAIT_MS 3000

static const char *subsys_name(struct lks_header *h, uint32_t id) {
    if (id >= LKS_MAX_SUBSYS || id >= atomic_load(&h->subsys_used)) return "other";
    return lks_subsys_table(h)[id].name;
}

static struct lks_site *site_at(struct lks_header *h, uint32_t site) {
    if (site == 0 || site > h->sites_cap) return NULL;
    struct lks_site *s = &lks_site_table(h)[site - 1];
    return atomic_load(&s->key) && atomic_load(&s->ready) ? s : NULL;
}

static void frames_json(FILE *out, struct lks_site *s, struct lks_symbolizer *sym) {
    char buf[512];
    fputc('[', out);
    for (int i = 0; s && i < s->nframes; i++) {
        if (i) fputc(',', out);
        json_string(out, lks_symbolize_site_frame(sym, s, i, buf, sizeof buf));
    }
    fputc(']', out);
}

static double age_s(int64_t now_ns, int64_t birth_ns) {
    return birth_ns > 0 && now_ns > birth_ns ? (double)(now_ns - birth_ns) / 1e9 : 0.0;
}

/* Indices of the sites that satisfy keep(), sorted by key() descending. */
typedef int64_t (*site_key)(struct lks_site *);
static int64_t live_bytes_key(struct lks_site *s) {
    return s->heap_live_allocs > 0 ? s->heap_live_bytes : -1;
}
static int64_t mark_bytes_key(struct lks_site *s) {
    return s->heap_mark_live_allocs > 0 ? s->heap_mark_live_bytes : -1;
}

static int cmp_desc(const void *a, const void *b, void *arg) {
    const int64_t *keys = arg;
    int64_t ka = keys[*(const uint32_t *)a], kb = keys[*(const uint32_t *)b];
    return ka < kb ? 1 : ka > kb ? -1 : 0;
}

static uint32_t sorted_sites(struct lks_header *h, site_key key, uint32_t **out) {
    uint32_t n = 0;
    uint32_t *idx = malloc(sizeof(uint32_t) * h->sites_cap);
    int64_t *keys = malloc(sizeof(int64_t) * h->sites_cap);
    if (!idx || !keys) {
        free(idx);
        free(keys);
        *out = NULL;
        return 0;
    }
    for (uint32_t i = 0; i < h->sites_cap; i++) {
        struct lks_site *s = site_at(h, i + 1);
        keys[i] = s ? key(s) : -1;
        if (keys[i] >= 0) idx[n++] = i;
    }
    qsort_r(idx, n, sizeof *idx, cmp_desc, keys);
    free(keys);
    *out = idx;
    return n;
}

static struct lks_heapseg *heap_area(struct lks_header *h) {
    const char *why;
    return lks_heapseg_check(h, &why);
}

static void subsystems_json(FILE *out, struct lks_header *h, struct lks_heapseg *hs) {
    struct lks_subsys *ss = lks_subsys_table(h);
    uint32_t used = atomic_load(&h->subsys_used);
    int first = 1;
    fputc('{', out);
    for (uint32_t i = 0; i < used && i < LKS_MAX_SUBSYS; i++) {
        if (!ss[i].heap_allocs && !ss[i].heap_live_allocs) continue;
        if (!first) fputc(',', out);
        first = 0;
        json_string(out, ss[i].name);
        fprintf(out,
                ":{\"live_bytes\":%lld,\"live_allocs\":%lld,\"alloc_bytes\":%llu,"
                "\"allocs\":%llu,\"frees\":%llu",
                (long long)ss[i].heap_live_bytes, (long long)ss[i].heap_live_allocs,
                (unsigned long long)ss[i].heap_alloc_bytes, (unsigned long long)ss[i].heap_allocs,
                (unsigned long long)ss[i].heap_frees);
        if (hs) {
            fputs(",\"live_bytes_by_age\":{", out);
            for (int b = 0; b < LKS_HEAP_AGES; b++)
                fprintf(out, "%s\"%s\":%lld", b ? "," : "", lks_heap_age_names[b],
                        (long long)hs->age_bytes[i][b]);
            fputc('}', out);
            if (hs->mark_gen)
                fprintf(out, ",\"since_mark_live_bytes\":%lld,\"since_mark_live_allocs\":%lld",
                        (long long)hs->mark_live_bytes[i], (long long)hs->mark_live_allocs[i]);
        }
        fputc('}', out);
    }
    fputc('}', out);
}

static void sites_json(FILE *out, struct lks_header *h, struct lks_heapseg *hs,
                       struct lks_symbolizer *sym) {
    uint32_t *idx, n = sorted_sites(h, live_bytes_key, &idx);
    fputc('[', out);
    for (uint32_t k = 0; k < n && k < MAX_SITES_JSON; k++) {
        struct lks_site *s = &lks_site_table(h)[idx[k]];
        if (k) fputc(',', out);
        fputs("{\"subsystem\":", out);
        json_string(out, subsys_name(h, s->subsys));
        fprintf(out, ",\"live_bytes\":%lld,\"live_allocs\":%lld,\"alloc_bytes\":%llu,\"allocs\":%llu",
                (long long)s->heap_live_bytes, (long long)s->heap_live_allocs,
                (unsigned long long)s->heap_alloc_bytes, (unsigned long long)s->heap_allocs);
        if (hs && hs->site_oldest_ns[idx[k]] > 0)
            fprintf(out, ",\"oldest_age_s\":%.3f",
                    age_s(hs->aggregated_mono_ns, hs->site_oldest_ns[idx[k]]));
        else
            fputs(",\"oldest_age_s\":null", out);
        if (hs && hs->mark_gen)
            fprintf(out, ",\"since_mark_live_bytes\":%lld", (long long)s->heap_mark_live_bytes);
        fputs(",\"frames\":", out);
        frames_json(out, s, sym);
        fputc('}', out);
    }
    fputc(']', out);
    if (n > MAX_SITES_JSON) fprintf(out, ",\"sites_omitted\":%u", n - MAX_SITES_JSON);
    free(idx);
}

static void retained_json(FILE *out, struct lks_header *h, struct lks_heapseg *hs,
                          struct lks_symbolizer *sym) {
    fputs("[", out);
    for (uint32_t i = 0; i < hs->nretained; i++) {
        struct lks_heap_alloc *a = &hs->retained[i];
        if (i) fputc(',', out);
        fprintf(out, "{\"size\":%llu,\"address\":\"0x%llx\",\"age_s\":%.3f,\"subsystem\":",
                (unsigned long long)a->size, (unsigned long long)a->addr,
                age_s(hs->aggregated_mono_ns, a->birth_mono_ns));
        json_string(out, subsys_name(h, a->subsys));
        fputs(",\"frames\":", out);
        frames_json(out, site_at(h, a->site), sym);
        fputc('}', out);
    }
    fputc(']', out);
}

static void double_frees_json(FILE *out, struct lks_header *h, struct lks_heapseg *hs,
                              struct lks_symbolizer *sym) {
    uint32_t n = atomic_load(&hs->ndouble_frees);
    fputc('[', out);
    for (uint32_t i = 0; i < n && i < LKS_HEAP_DOUBLE_FREES; i++) {
        struct lks_heap_double_free *d = &hs->double_frees[i];
        if (i) fputc(',', out);
        fprintf(out, "{\"address\":\"0x%llx\",\"size\":%llu,\"subsystem\":",
                (unsigned long long)d->addr, (unsigned long long)d->size);
        json_string(out, subsys_name(h, d->subsys));
        fputs(",\"alloc_frames\":", out);
        frames_json(out, site_at(h, d->alloc_site), sym);
        fputs(",\"first_free_frames\":", out);
        frames_json(out, site_at(h, d->first_free_site), sym);
        fputs(",\"second_free_frames\":", out);
        frames_json(out, site_at(h, d->second_free_site), sym);
        fputc('}', out);
    }
    fputc(']', out);
}

void heap_report_json(FILE *out, struct lks_header *h, struct lks_symbolizer *sym) {
    const char *why = NULL;
    struct lks_heapseg *hs = lks_heapseg_check(h, &why);
    fputs("{\"by_subsystem\":", out);
    subsystems_json(out, h, hs);
    fputs(",\"sites\":", out);
    sites_json(out, h, hs, sym);
    fprintf(out, ",\"sites_dropped\":%u", atomic_load(&h->sites_dropped));
    if (!hs) {
        fputs(",\"detail\":null,\"detail_missing\":", out);
        json_string(out, why);
        fputc('}', out);
        return;
    }
    fputs(",\"age_buckets_s\":[1,10,60,600],\"retained\":", out);
    retained_json(out, h, hs, sym);
    fprintf(out, ",\"double_free_count\":%u,\"double_frees\":", atomic_load(&hs->ndouble_frees));
    double_frees_json(out, h, hs, sym);
    fprintf(out,
            ",\"unknown_frees\":%llu,\"failed_allocs\":%llu,\"untracked_allocs\":%llu,"
            "\"table_full\":%llu,\"metadata_bytes\":%llu,\"tracked_live_allocs\":%llu,"
            "\"mark_gen\":%u,\"final\":%s}",
            (unsigned long long)hs->unknown_frees, (unsigned long long)hs->failed_allocs,
            (unsigned long long)hs->untracked_allocs, (unsigned long long)hs->table_full,
            (unsigned long long)hs->table_bytes, (unsigned long long)hs->tracked_live,
            hs->mark_gen, hs->final ? "true" : "false");
}

static const char *human(long long bytes, char *buf, size_t len) {
    double b = (double)bytes;
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while ((b >= 1024 || b <= -1024) && u < 4) {
        b /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
    return buf;
}

/* The first frame outside the allocator wrappers is what a reader wants to
 * see; print the innermost two. */
static void frames_text(FILE *out, struct lks_site *s, struct lks_symbolizer *sym,
                        const char *indent) {
    char buf[512];
    for (int i = 0; s && i < s->nframes && i < 3; i++)
        fprintf(out, "%s%s %s\n", indent, i ? "<-" : "at",
                lks_symbolize_site_frame(sym, s, i, buf, sizeof buf));
}

void heap_report_text(FILE *out, struct lks_header *h, struct lks_symbolizer *sym) {
    struct lks_heapseg *hs = heap_area(h);
    struct lks_subsys *ss = lks_subsys_table(h);
    uint32_t used = atomic_load(&h->subsys_used);
    long long live = 0, allocs = 0;
    char a[32], b[32];
    for (uint32_t i = 0; i < used && i < LKS_MAX_SUBSYS; i++) {
        live = lks_sat_add(live, ss[i].heap_live_bytes);
        allocs = lks_sat_add(allocs, ss[i].heap_live_allocs);
    }
    fprintf(out, "  heap: %s live in %lld allocations\n", human(live, a, sizeof a), allocs);
    for (uint32_t i = 0; i < used && i < LKS_MAX_SUBSYS; i++) {
        if (!ss[i].heap_allocs && !ss[i].heap_live_allocs) continue;
        fprintf(out, "    %-12s %10s live in %lld (allocated %s in %llu, %llu frees)", ss[i].name,
                human(ss[i].heap_live_bytes, a, sizeof a), (long long)ss[i].heap_live_allocs,
                human((long long)ss[i].heap_alloc_bytes, b, sizeof b),
                (unsigned long long)ss[i].heap_allocs, (unsigned long long)ss[i].heap_frees);
        if (hs && ss[i].heap_live_bytes > 0) {
            long long old = lks_sat_add(lks_sat_add(hs->age_bytes[i][2], hs->age_bytes[i][3]),
                                        hs->age_bytes[i][4]);
            fprintf(out, ", %s older than 10 s", human(old, a, sizeof a));
        }
        fputc('\n', out);
    }
    uint32_t *idx, n = sorted_sites(h, live_bytes_key, &idx);
    if (n) fprintf(out, "    top sites (of %u live):\n", n);
    for (uint32_t k = 0; k < n && k < MAX_SITES_TEXT; k++) {
        struct lks_site *s = &lks_site_table(h)[idx[k]];
        fprintf(out, "      %s in %lld [%s]", human(s->heap_live_bytes, a, sizeof a),
                (long long)s->heap_live_allocs, subsys_name(h, s->subsys));
        if (hs && hs->site_oldest_ns[idx[k]] > 0)
            fprintf(out, ", oldest %.1f s", age_s(hs->aggregated_mono_ns, hs->site_oldest_ns[idx[k]]));
        fputc('\n', out);
        frames_text(out, s, sym, "        ");
    }
    free(idx);
    if (!hs) return;
    for (uint32_t i = 0; i < hs->nretained && i < MAX_RETAINED_TEXT; i++) {
        struct lks_heap_alloc *r = &hs->retained[i];
        fprintf(out, "    retained #%u: %s [%s], %.1f s old\n", i + 1,
                human((long long)r->size, a, sizeof a), subsys_name(h, r->subsys),
                age_s(hs->aggregated_mono_ns, r->birth_mono_ns));
        frames_text(out, site_at(h, r->site), sym, "        ");
    }
    uint32_t nd = atomic_load(&hs->ndouble_frees);
    if (nd) fprintf(out, "    double frees caught (not passed to libc): %u\n", nd);
    for (uint32_t i = 0; i < nd && i < 2 && i < LKS_HEAP_DOUBLE_FREES; i++) {
        struct lks_heap_double_free *d = &hs->double_frees[i];
        fprintf(out, "      %s block [%s]\n", human((long long)d->size, a, sizeof a),
                subsys_name(h, d->subsys));
        frames_text(out, site_at(h, d->alloc_site), sym, "        allocated ");
        frames_text(out, site_at(h, d->first_free_site), sym, "        freed ");
        frames_text(out, site_at(h, d->second_free_site), sym, "        freed again ");
    }
    if (hs->unknown_frees)
        fprintf(out, "    frees of memory never seen allocated: %llu (passed to libc)\n",
                (unsigned long long)hs->unknown_frees);
}

/* mark / diff */

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct pid_args {
    pid_t pid;
    int json;
    char dir[512];
    char path[600];
};

static int parse_pid_args(int argc, char **argv, int allow_json, struct pid_args *a) {
    const char *usage = allow_json ? "usage: leakscope diff [--dir DIR] [--json] PID\n"
                                   : "usage: leakscope mark [--dir DIR] PID\n";
    const char *dir = NULL, *pid = NULL;
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            fputs(allow_json ? "Lists what was allocated since the latest mark and is still "
                               "live, by call site and subsystem.\n"
                             : "Sets a heap reference point in a process traced with "
                               "libmemtrack.so; see `leakscope diff`.\n",
                  stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (allow_json && !strcmp(argv[i], "--json")) a->json = 1;
        else if (!pid && argv[i][0] != '-') pid = argv[i];
        else {
            fprintf(stderr, "leakscope %s: unexpected argument '%s'\n%s", argv[0], argv[i], usage);
            return 2;
        }
    }
    char *end = NULL;
    long v = pid ? strtol(pid, &end, 10) : 0;
    if (!pid || *end || v <= 0 || v > 0x7fffffff) {
        fprintf(stderr, "leakscope %s: %s%s%s\n%s", argv[0], pid ? "bad pid '" : "no pid given",
                pid ? pid : "", pid ? "'" : "", usage);
        return 2;
    }
    a->pid = (pid_t)v;
    if (segdir_resolve(dir, a->dir, sizeof a->dir) != 0) return 1;
    segdir_path(a->dir, a->pid, a->path, sizeof a->path);
    return -1; /* go on */
}

/* Maps pid's live segment read-write after checking it is a heap-traced
 * process. Returns NULL with a message on stderr. */
static struct lks_header *map_heap_segment(const char *cmd, struct pid_args *a, size_t *len,
                                           int need_alive) {
    char err[700];
    if (kill(a->pid, 0) != 0 && errno == ESRCH && need_alive) {
        fprintf(stderr, "leakscope %s: no process %d\n", cmd, (int)a->pid);
        return NULL;
    }
    if (access(a->path, F_OK) != 0) {
        fprintf(stderr,
                "leakscope %s: no segment for pid %d in %s: the process is not traced "
                "(start it with `leakscope run` or LD_PRELOAD=libmemtrack.so)\n",
                cmd, (int)a->pid, a->dir);
        return NULL;
    }
    struct lks_header *h = lks_segment_map_rw(a->path, len, err, sizeof err);
    if (!h) {
        fprintf(stderr, "leakscope %s: %s\n", cmd, err);
        return NULL;
    }
    struct lks_heapseg *hs = lks_heap_area(h);
    if (!(atomic_load(&h->features) & LKS_FEATURE_HEAP) || h->heap_size < sizeof *hs ||
        memcmp(hs->magic, LKS_HEAP_MAGIC, 8) != 0) {
        fprintf(stderr, "leakscope %s: pid %d is not traced with the heap shim (libmemtrack.so)\n",
                cmd, (int)a->pid);
        lks_segment_unmap(h, *len);
        return NULL;
    }
    if (need_alive && !lks_segment_process_alive(h)) {
        fprintf(stderr, "leakscope %s: pid %d has exited (its segment is from the past)\n", cmd,
                (int)a->pid);
        lks_segment_unmap(h, *len);
        return NULL;
    }
    return h;
}

int cmd_mark(int argc, char **argv) {
    struct pid_args a;
    int rc = parse_pid_args(argc, argv, 0, &a);
    if (rc >= 0) return rc;
    size_t len;
    struct lks_header *h = map_heap_segment("mark", &a, &len, 1);
    if (!h) return 1;
    atomic_store(&h->mark_mono_ns, mono_ns());
    uint64_t seq = atomic_fetch_add(&h->mark_seq, 1) + 1;
    int waited = 0;
    while (atomic_load(&h->mark_applied_seq) < seq && waited < WAIT_MS) {
        sleep_ms(10);
        waited += 10;
    }
    int ok = atomic_load(&h->mark_applied_seq) >= seq;
    if (ok)
        printf("mark %llu set in pid %d (%s)\n", (unsigned long long)seq, (int)a.pid, h->comm);
    else
        fprintf(stderr,
                "leakscope mark: pid %d did not take the mark within %d s (stopped?); it will "
                "apply it when it runs again\n",
                (int)a.pid, WAIT_MS / 1000);
    lks_segment_unmap(h, len);
    return ok ? 0 : 1;
}

/* Asks a running process for a fresh aggregation and waits for it. */
static void refresh(struct lks_header *h) {
    struct lks_heapseg *hs = lks_heap_area(h);
    uint64_t want = atomic_fetch_add(&hs->refresh_req, 1) + 1;
    for (int waited = 0; atomic_load(&hs->refresh_done) < want && waited < WAIT_MS; waited += 10)
        sleep_ms(10);
}

/* A private copy with a heap area that is not torn. */
static struct lks_header *load_stable(const char *path, struct lks_heapseg **hs, const char **why) {
    char err[700];
    for (int attempt = 0; attempt < 20; attempt++) {
        struct lks_header *h = lks_segment_load(path, err, sizeof err);
        if (!h) {
            *why = "segment vanished";
            return NULL;
        }
        if ((*hs = lks_heapseg_check(h, why))) return h;
        lks_segment_free(h);
        sleep_ms(10);
    }
    return NULL;
}

int cmd_diff(int argc, char **argv) {
    struct pid_args a;
    int rc = parse_pid_args(argc, argv, 1, &a);
    if (rc >= 0) return rc;
    size_t len;
    struct lks_header *live = map_heap_segment("diff", &a, &len, 0);
    if (!live) return 1;
    if (!atomic_load(&live->mark_applied_seq)) {
        fprintf(stderr, "leakscope diff: no mark set in pid %d: run `leakscope mark %d` first\n",
                (int)a.pid, (int)a.pid);
        lks_segment_unmap(live, len);
        return 1;
    }
    if (lks_segment_process_alive(live)) refresh(live);
    lks_segment_unmap(live, len);

    struct lks_heapseg *hs;
    const char *why = NULL;
    struct lks_header *h = load_stable(a.path, &hs, &why);
    if (!h) {
        fprintf(stderr, "leakscope diff: pid %d: %s\n", (int)a.pid, why);
        return 1;
    }
    struct lks_symbolizer *sym = lks_symbolizer_new(h);
    double since = age_s(mono_ns(), h->mark_mono_ns);
    uint32_t used = atomic_load(&h->subsys_used);
    long long bytes = 0, allocs = 0;
    for (uint32_t i = 0; i < used && i < LKS_MAX_SUBSYS; i++) {
        bytes = lks_sat_add(bytes, hs->mark_live_bytes[i]);
        allocs = lks_sat_add(allocs, hs->mark_live_allocs[i]);
    }
    uint32_t *idx, n = sorted_sites(h, mark_bytes_key, &idx);
    char buf[32];
    if (a.json) {
        printf("{\"pid\":%d,\"comm\":", (int)a.pid);
        json_string(stdout, h->comm);
        printf(",\"mark\":%llu,\"since_mark_s\":%.3f,\"live_bytes\":%lld,\"live_allocs\":%lld,"
               "\"by_subsystem\":{",
               (unsigned long long)h->mark_applied_seq, since, bytes, allocs);
        int first = 1;
        for (uint32_t i = 0; i < used && i < LKS_MAX_SUBSYS; i++) {
            if (!hs->mark_live_allocs[i]) continue;
            if (!first) putchar(',');
            first = 0;
            json_string(stdout, subsys_name(h, i));
            printf(":{\"live_bytes\":%lld,\"live_allocs\":%lld}", (long long)hs->mark_live_bytes[i],
                   (long long)hs->mark_live_allocs[i]);
        }
        fputs("},\"sites\":[", stdout);
        for (uint32_t k = 0; k < n; k++) {
            struct lks_site *s = &lks_site_table(h)[idx[k]];
            if (k) putchar(',');
            fputs("{\"subsystem\":", stdout);
            json_string(stdout, subsys_name(h, s->subsys));
            printf(",\"live_bytes\":%lld,\"live_allocs\":%lld,\"frames\":",
                   (long long)s->heap_mark_live_bytes, (long long)s->heap_mark_live_allocs);
            frames_json(stdout, s, sym);
            putchar('}');
        }
        printf("],\"call_sites\":{\"coarse\":%llu,\"events_without_site\":%llu}}\n",
               (unsigned long long)atomic_load(&h->sites_coarse),
               (unsigned long long)atomic_load(&h->sites_dropped_events));
    } else {
        printf("pid %d (%s), mark %llu set %.1f s ago: %s in %lld allocations still live\n",
               (int)a.pid, h->comm, (unsigned long long)h->mark_applied_seq, since,
               human(bytes, buf, sizeof buf), allocs);
        char lost[300];
        if (summary_sites_lost(h, lost, sizeof lost)) printf("  %s\n", lost);
        for (uint32_t i = 0; i < used && i < LKS_MAX_SUBSYS; i++)
            if (hs->mark_live_allocs[i])
                printf("  %-12s %10s in %lld\n", subsys_name(h, i),
                       human(hs->mark_live_bytes[i], buf, sizeof buf),
                       (long long)hs->mark_live_allocs[i]);
        for (uint32_t k = 0; k < n; k++) {
            struct lks_site *s = &lks_site_table(h)[idx[k]];
            printf("  %s in %lld [%s]\n", human(s->heap_mark_live_bytes, buf, sizeof buf),
                   (long long)s->heap_mark_live_allocs, subsys_name(h, s->subsys));
            frames_text(stdout, s, sym, "      ");
        }
    }
    free(idx);
    lks_symbolizer_free(sym);
    lks_segment_free(h);
    return 0;
}

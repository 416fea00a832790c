/* serve.c - `leakscope serve`: every traced process of a directory as
 * Prometheus series on /metrics (text format 0.0.4, or OpenMetrics 1.0 when
 * the scraper's Accept header asks for it), read from the segments at each
 * scrape through series.h. The metric names are a contract with the
 * dashboards and alert rules: add, never rename (docs/SERIES.md).
 *
 * One libmicrohttpd thread answers every request, so scrapes never overlap
 * and need no lock. Exited processes are exported with their final values
 * for --linger seconds, then dropped (their segment removed unless --keep).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "segdir.h"
#include "series.h"

#define DEFAULT_LISTEN "127.0.0.1:9464"
#define DEFAULT_LINGER_S 300

static void usage(FILE *out) {
    fputs("usage: leakscope serve [--listen ADDR:PORT] [--dir DIR] [--top-sites K]\n"
          "                       [--idle-after S] [--linger S] [--keep]\n"
          "Exports every traced process as Prometheus metrics on http://ADDR:PORT/metrics.\n"
          "  --listen ADDR:PORT  address to bind (default " DEFAULT_LISTEN "; port 0 picks one)\n"
          "  --dir DIR           segment directory (default $LEAKSCOPE_DIR or /dev/shm/leakscope-UID)\n"
          "  --top-sites K       call sites exported per process and view (default 10, max 100)\n"
          "  --idle-after S      a TCP socket silent this long is idle (default 60)\n"
          "  --linger S          export an exited process this long (default 300)\n"
          "  --keep              do not remove the segments of exited processes after --linger\n",
          out);
}

/* A process seen not running, and since when. */
struct gone {
    pid_t pid;
    uint64_t start_ticks;
    double since;
    uint64_t seen_round;
};

struct server {
    const char *dir;
    struct series_reader *reader;
    double linger_s;
    int keep;
    uint64_t round;
    struct gone *gone;
    size_t ngone, gone_cap;
    uint64_t scrapes, removed;
    double last_scrape_s;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Since when p has not been running (0 if it is running). */
static double gone_since(struct server *sv, const struct series_proc *p, double now) {
    if (p->alive) return 0;
    for (size_t i = 0; i < sv->ngone; i++)
        if (sv->gone[i].pid == p->pid && sv->gone[i].start_ticks == p->start_ticks) {
            sv->gone[i].seen_round = sv->round;
            return sv->gone[i].since;
        }
    if (sv->ngone == sv->gone_cap) {
        size_t cap = sv->gone_cap ? sv->gone_cap * 2 : 16;
        struct gone *g = realloc(sv->gone, cap * sizeof *g);
        if (!g) return now;
        sv->gone = g;
        sv->gone_cap = cap;
    }
    double since = p->exit_time > 0 && p->exit_time < now ? p->exit_time : now;
    sv->gone[sv->ngone++] = (struct gone){p->pid, p->start_ticks, since, sv->round};
    return since;
}

/* Forgets processes whose segment is no longer in the directory. */
static void gone_sweep(struct server *sv) {
    size_t k = 0;
    for (size_t i = 0; i < sv->ngone; i++)
        if (sv->gone[i].seen_round == sv->round) sv->gone[k++] = sv->gone[i];
    sv->ngone = k;
}

/* ---- exposition ---- */

struct expo {
    FILE *out;
    int openmetrics;
};

static void label_value(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\\') fputs("\\\\", out);
        else if (c == '"') fputs("\\\"", out);
        else if (c == '\n') fputs("\\n", out);
        else if (c < 0x20 || c == 0x7f) fputc('?', out);
        else fputc(c, out);
    }
    fputc('"', out);
}

/* HELP and TYPE lines; OpenMetrics names a counter family without _total. */
static void family(struct expo *x, const char *name, const char *type, const char *help) {
    size_t len = strlen(name);
    int strip = x->openmetrics && strcmp(type, "counter") == 0 && len > 6 &&
                strcmp(name + len - 6, "_total") == 0;
    int n = strip ? (int)len - 6 : (int)len;
    fprintf(x->out, "# HELP %.*s %s\n# TYPE %.*s %s\n", n, name, help, n, name, type);
}

static void proc_labels(FILE *out, const struct series_proc *p) {
    fprintf(out, "pid=\"%d\",process=", (int)p->pid);
    label_value(out, p->comm);
    fputs(",role=", out);
    label_value(out, p->role);
}

/* name{pid,process,role[,subsystem=S][,extra]} value */
static void sample(struct expo *x, const char *name, const struct series_proc *p,
                   const char *subsys, const char *extra_name, const char *extra, double v) {
    fprintf(x->out, "%s{", name);
    proc_labels(x->out, p);
    if (subsys) {
        fputs(",subsystem=", x->out);
        label_value(x->out, subsys);
    }
    if (extra_name) {
        fprintf(x->out, ",%s=", extra_name);
        label_value(x->out, extra);
    }
    fprintf(x->out, "} %.17g\n", v);
}

enum subsys_field {
    F_FDS_OPEN, F_FDS_OPENED, F_FDS_CLOSED, F_SOCKETS_IDLE,
    F_HEAP_LIVE_BYTES, F_HEAP_LIVE_ALLOCS, F_HEAP_ALLOC_BYTES, F_HEAP_ALLOCS, F_HEAP_FREES
};

static double subsys_value(const struct series_subsys *s, enum subsys_field f) {
    switch (f) {
    case F_FDS_OPEN: return (double)s->fds_open;
    case F_FDS_OPENED: return (double)s->fds_opened;
    case F_FDS_CLOSED: return (double)s->fds_closed;
    case F_SOCKETS_IDLE: return (double)s->sockets_idle;
    case F_HEAP_LIVE_BYTES: return (double)s->heap_live_bytes;
    case F_HEAP_LIVE_ALLOCS: return (double)s->heap_live_allocs;
    case F_HEAP_ALLOC_BYTES: return (double)s->heap_alloc_bytes;
    case F_HEAP_ALLOCS: return (double)s->heap_allocs;
    case F_HEAP_FREES: return (double)s->heap_frees;
    }
    return 0;
}

struct subsys_family {
    const char *name, *type, *help;
    enum subsys_field field;
    int heap;
};

static const struct subsys_family subsys_families[] = {
    {"leakscope_fds_open", "gauge", "Open descriptors by subsystem.", F_FDS_OPEN, 0},
    {"leakscope_fds_opened_total", "counter", "Descriptors created by subsystem.", F_FDS_OPENED, 0},
    {"leakscope_fds_closed_total", "counter", "Descriptors closed by subsystem.", F_FDS_CLOSED, 0},
    {"leakscope_sockets_idle", "gauge",
     "Established TCP sockets with no data sent or received for at least --idle-after seconds.",
     F_SOCKETS_IDLE, 0},
    {"leakscope_heap_live_bytes", "gauge", "Heap bytes allocated and not freed, by subsystem.",
     F_HEAP_LIVE_BYTES, 1},
    {"leakscope_heap_live_allocations", "gauge", "Heap allocations not freed, by subsystem.",
     F_HEAP_LIVE_ALLOCS, 1},
    {"leakscope_heap_allocated_bytes_total", "counter", "Heap bytes allocated, by subsystem.",
     F_HEAP_ALLOC_BYTES, 1},
    {"leakscope_heap_allocations_total", "counter", "Heap allocations, by subsystem.", F_HEAP_ALLOCS, 1},
    {"leakscope_heap_frees_total", "counter", "Heap frees, by subsystem.", F_HEAP_FREES, 1},
};

/* Which processes are exported this scrape: running, or gone less than
 * --linger ago. */
static int exported(const unsigned char *keep_mask, size_t i) { return keep_mask[i]; }

/* Sites of one view, merged by (subsystem, headline): two stacks with the
 * same headline frame would otherwise give duplicate series. */
static void site_family(struct expo *x, const struct series_round *rd, const unsigned char *mask,
                        int heap) {
    for (size_t i = 0; i < rd->n; i++) {
        if (!exported(mask, i)) continue;
        const struct series_proc *p = &rd->procs[i];
        for (size_t a = 0; a < p->nsites; a++) {
            const struct series_site *s = &p->sites[a];
            int64_t v = heap ? s->heap_live_bytes : s->fds_open;
            if (v <= 0) continue;
            int seen = 0;
            for (size_t b = 0; b < a && !seen; b++)
                seen = strcmp(p->sites[b].headline, s->headline) == 0 &&
                       strcmp(p->sites[b].subsystem, s->subsystem) == 0 &&
                       (heap ? p->sites[b].heap_live_bytes : p->sites[b].fds_open) > 0;
            if (seen) continue;
            for (size_t b = a + 1; b < p->nsites; b++)
                if (strcmp(p->sites[b].headline, s->headline) == 0 &&
                    strcmp(p->sites[b].subsystem, s->subsystem) == 0)
                    v += heap ? p->sites[b].heap_live_bytes : p->sites[b].fds_open;
            sample(x, heap ? "leakscope_site_heap_live_bytes" : "leakscope_site_fds_open", p,
                   s->subsystem, "site", s->headline, (double)v);
        }
    }
}

static void write_metrics(struct expo *x, struct server *sv, const struct series_round *rd,
                          const unsigned char *mask, double scan_s, size_t lingering) {
    for (size_t f = 0; f < sizeof subsys_families / sizeof subsys_families[0]; f++) {
        const struct subsys_family *fam = &subsys_families[f];
        family(x, fam->name, fam->type, fam->help);
        for (size_t i = 0; i < rd->n; i++) {
            if (!exported(mask, i)) continue;
            const struct series_proc *p = &rd->procs[i];
            for (size_t k = 0; k < p->nsubsys; k++) {
                const struct series_subsys *s = &p->subsys[k];
                if (fam->heap ? !s->has_heap : !s->has_fd) continue;
                if (fam->field == F_SOCKETS_IDLE && s->sockets_idle < 0) continue;
                sample(x, fam->name, p, s->name, NULL, NULL, subsys_value(s, fam->field));
            }
        }
    }
    family(x, "leakscope_fd_open_failures_total", "counter",
           "Failed descriptor creations by subsystem and errno (non-zero only).");
    for (size_t i = 0; i < rd->n; i++) {
        if (!exported(mask, i)) continue;
        const struct series_proc *p = &rd->procs[i];
        for (size_t k = 0; k < p->nsubsys; k++)
            for (int e = 0; e < LKS_ERR_SLOTS; e++)
                if (p->subsys[k].has_fd && p->subsys[k].fd_failed[e])
                    sample(x, "leakscope_fd_open_failures_total", p, p->subsys[k].name, "errno",
                           lks_errno_slot_name(e), (double)p->subsys[k].fd_failed[e]);
    }
    family(x, "leakscope_heap_live_bytes_older_than", "gauge",
           "Live heap bytes allocated at least this long ago, by subsystem.");
    for (size_t i = 0; i < rd->n; i++) {
        if (!exported(mask, i)) continue;
        const struct series_proc *p = &rd->procs[i];
        for (size_t k = 0; k < p->nsubsys; k++)
            for (int a = 0; a < SERIES_AGES; a++)
                if (p->subsys[k].has_heap && p->subsys[k].heap_older[a] >= 0)
                    sample(x, "leakscope_heap_live_bytes_older_than", p, p->subsys[k].name, "age",
                           series_age_labels[a], (double)p->subsys[k].heap_older[a]);
    }
    family(x, "leakscope_site_fds_open", "gauge",
           "Open descriptors created at a call site (top --top-sites per process).");
    site_family(x, rd, mask, 0);
    family(x, "leakscope_site_heap_live_bytes", "gauge",
           "Live heap bytes allocated at a call site (top --top-sites per process).");
    site_family(x, rd, mask, 1);

    family(x, "leakscope_fds_limit", "gauge", "Soft RLIMIT_NOFILE of the process.");
    for (size_t i = 0; i < rd->n; i++)
        if (exported(mask, i) && (rd->procs[i].features & LKS_FEATURE_FD))
            sample(x, "leakscope_fds_limit", &rd->procs[i], NULL, NULL, NULL,
                   (double)rd->procs[i].fds_limit);
    family(x, "leakscope_process_info", "gauge", "A traced process (always 1).");
    for (size_t i = 0; i < rd->n; i++) {
        if (!exported(mask, i)) continue;
        const struct series_proc *p = &rd->procs[i];
        fputs("leakscope_process_info{", x->out);
        proc_labels(x->out, p);
        fprintf(x->out, ",ppid=\"%d\",exe=", (int)p->ppid);
        label_value(x->out, p->exe);
        fputs(",producer=", x->out);
        label_value(x->out, p->producer);
        fputs("} 1\n", x->out);
    }
    family(x, "leakscope_process_up", "gauge",
           "1 while the process runs, 0 once exited (exported --linger seconds more).");
    for (size_t i = 0; i < rd->n; i++)
        if (exported(mask, i))
            sample(x, "leakscope_process_up", &rd->procs[i], NULL, NULL, NULL, rd->procs[i].alive);
    family(x, "leakscope_process_resident_memory_bytes", "gauge", "Resident set size (running only).");
    for (size_t i = 0; i < rd->n; i++)
        if (exported(mask, i) && rd->procs[i].rss_bytes >= 0)
            sample(x, "leakscope_process_resident_memory_bytes", &rd->procs[i], NULL, NULL, NULL,
                   (double)rd->procs[i].rss_bytes);
    family(x, "leakscope_process_start_time_seconds", "gauge", "Process start, Unix seconds.");
    for (size_t i = 0; i < rd->n; i++) {
        if (!exported(mask, i)) continue;
        fputs("leakscope_process_start_time_seconds{", x->out);
        proc_labels(x->out, &rd->procs[i]);
        fprintf(x->out, "} %.3f\n", rd->procs[i].start_time);
    }
    family(x, "leakscope_sites_dropped", "gauge",
           "Call sites the producer could not record (its site table was full).");
    for (size_t i = 0; i < rd->n; i++)
        if (exported(mask, i))
            sample(x, "leakscope_sites_dropped", &rd->procs[i], NULL, NULL, NULL,
                   rd->procs[i].sites_dropped);

    /* The exporter's own health. */
    size_t running = 0, shown = 0;
    for (size_t i = 0; i < rd->n; i++) {
        running += rd->procs[i].alive;
        shown += mask[i];
    }
    family(x, "leakscope_exporter_scrape_duration_seconds", "gauge",
           "Time this scrape spent reading segments.");
    fprintf(x->out, "leakscope_exporter_scrape_duration_seconds %.6f\n", scan_s);
    family(x, "leakscope_exporter_scrapes_total", "counter", "Scrapes served.");
    fprintf(x->out, "leakscope_exporter_scrapes_total %llu\n", (unsigned long long)sv->scrapes);
    family(x, "leakscope_exporter_processes", "gauge", "Processes exported, by state.");
    fprintf(x->out, "leakscope_exporter_processes{state=\"running\"} %zu\n", running);
    fprintf(x->out, "leakscope_exporter_processes{state=\"exited\"} %zu\n", shown - running);
    (void)lingering;
    family(x, "leakscope_exporter_segments_skipped", "gauge",
           "Segment files left out of this scrape, by reason.");
    for (int r = 0; r < SERIES_SKIP_REASONS; r++)
        fprintf(x->out, "leakscope_exporter_segments_skipped{reason=\"%s\"} %llu\n",
                series_skip_names[r], (unsigned long long)rd->skipped[r]);
    family(x, "leakscope_exporter_segments_removed_total", "counter",
           "Segments of exited processes removed after --linger.");
    fprintf(x->out, "leakscope_exporter_segments_removed_total %llu\n", (unsigned long long)sv->removed);
    family(x, "leakscope_exporter_sock_diag_up", "gauge",
           "1 if the kernel answered the idle-socket query (sock_diag) this scrape.");
    fprintf(x->out, "leakscope_exporter_sock_diag_up %d\n", rd->sockdiag_ok);
    if (x->openmetrics) fputs("# EOF\n", x->out);
}

/* One scrape: read the directory, decide what is exported, format. Returns
 * a malloc'd body or NULL with a message in err. */
static char *scrape(struct server *sv, int openmetrics, size_t *len, char *err, size_t errlen) {
    double t0 = mono_s(), now = now_s();
    struct series_round rd;
    sv->round++;
    sv->scrapes++;
    if (series_scan(sv->reader, sv->dir, NULL, 0, &rd) != 0) {
        snprintf(err, errlen, "cannot read %s: %s\n", sv->dir, strerror(errno));
        return NULL;
    }
    unsigned char *mask = calloc(rd.n ? rd.n : 1, 1);
    size_t lingering = 0;
    for (size_t i = 0; mask && i < rd.n; i++) {
        struct series_proc *p = &rd.procs[i];
        double since = gone_since(sv, p, now);
        if (!since || now - since < sv->linger_s) {
            mask[i] = 1;
            lingering += since != 0;
        } else if (!sv->keep && unlink(p->path) == 0) {
            sv->removed++;
        }
    }
    gone_sweep(sv);
    double scan_s = mono_s() - t0;
    char *body = NULL;
    FILE *out = mask ? open_memstream(&body, len) : NULL;
    if (!out) {
        snprintf(err, errlen, "out of memory\n");
        free(mask);
        series_round_free(&rd);
        return NULL;
    }
    struct expo x = {out, openmetrics};
    write_metrics(&x, sv, &rd, mask, scan_s, lingering);
    fclose(out);
    free(mask);
    series_round_free(&rd);
    sv->last_scrape_s = mono_s() - t0;
    return body;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             const char *text) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state) {
    (void)version, (void)upload;
    struct server *sv = cls;
    if (!*state) { /* first call: headers only */
        *state = sv;
        return MHD_YES;
    }
    if (*upload_size) return MHD_NO;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "GET /metrics\n");
    if (strcmp(url, "/") == 0)
        return reply(c, MHD_HTTP_OK, "text/html",
                     "<html><head><title>leakscope</title></head><body>"
                     "<a href=\"/metrics\">/metrics</a></body></html>\n");
    if (strcmp(url, "/metrics") != 0) return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", "not found\n");
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    int om = accept && strstr(accept, "application/openmetrics-text") != NULL;
    char err[700];
    size_t len = 0;
    char *body = scrape(sv, om, &len, err, sizeof err);
    if (!body) {
        fprintf(stderr, "leakscope serve: %s", err);
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", err);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type",
                            om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                               : "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

/* Binds ADDR:PORT ("127.0.0.1:9464", "[::1]:9464") and listens. Returns the
 * socket, or -1 with a message on stderr. */
static int listen_on(const char *spec, char *shown, size_t shownlen) {
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || !colon[1]) {
        fprintf(stderr, "leakscope serve: --listen wants ADDR:PORT, got '%s'\n", spec);
        return -1;
    }
    size_t hl = (size_t)(colon - spec);
    if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']') {
        spec++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        fprintf(stderr, "leakscope serve: --listen address too long\n");
        return -1;
    }
    memcpy(host, spec, hl);
    host[hl] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535) {
        fprintf(stderr, "leakscope serve: bad port in --listen '%s'\n", colon + 1);
        return -1;
    }
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "leakscope serve: --listen address '%s': %s\n", host, gai_strerror(rc));
        return -1;
    }
    int s = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(s, ai->ai_addr, ai->ai_addrlen) != 0 || listen(s, 64) != 0) {
        fprintf(stderr, "leakscope serve: cannot listen on %s:%ld: %s\n", host, port, strerror(errno));
        if (s >= 0) close(s);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char h[NI_MAXHOST], p[NI_MAXSERV];
    if (getsockname(s, (struct sockaddr *)&ss, &sl) == 0 &&
        getnameinfo((struct sockaddr *)&ss, sl, h, sizeof h, p, sizeof p,
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(shown, shownlen, strchr(h, ':') ? "[%s]:%s" : "%s:%s", h, p);
    else
        snprintf(shown, shownlen, "%s", spec);
    return s;
}

static int parse_num(const char *opt, const char *v, double min, double max, double *out) {
    char *end;
    double d = strtod(v, &end);
    if (!*v || *end || !(d >= min && d <= max)) {
        fprintf(stderr, "leakscope serve: %s wants a number in [%g, %g], got '%s'\n", opt, min, max, v);
        return -1;
    }
    *out = d;
    return 0;
}

int cmd_serve(int argc, char **argv) {
    const char *listen_spec = DEFAULT_LISTEN, *dir_opt = NULL;
    double top = 10, idle_after = 60, linger = DEFAULT_LINGER_S;
    int keep = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--keep") == 0) keep = 1;
        else if (i + 1 < argc && strcmp(a, "--listen") == 0) listen_spec = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--dir") == 0) dir_opt = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--top-sites") == 0) {
            if (parse_num(a, argv[++i], 1, 100, &top) != 0) return 2;
        } else if (i + 1 < argc && strcmp(a, "--idle-after") == 0) {
            if (parse_num(a, argv[++i], 0, 86400, &idle_after) != 0) return 2;
        } else if (i + 1 < argc && strcmp(a, "--linger") == 0) {
            if (parse_num(a, argv[++i], 0, 1e7, &linger) != 0) return 2;
        } else {
            fprintf(stderr, "leakscope serve: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    char dir[512], shown[300];
    if (segdir_resolve(dir_opt, dir, sizeof dir) != 0) return 2;
    char err[600];
    if (lks_segment_dir_prepare(dir, err, sizeof err) != 0) {
        fprintf(stderr, "leakscope serve: %s\n", err);
        return 2;
    }
    int s = listen_on(listen_spec, shown, sizeof shown);
    if (s < 0) return 2;

    struct server sv = {.dir = dir, .linger_s = linger, .keep = keep};
    sv.reader = series_reader_new((unsigned)top, (uint32_t)(idle_after * 1000));
    if (!sv.reader) return 2;
    /* Signals are taken by sigwait below, in this thread only. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle, &sv,
        MHD_OPTION_LISTEN_SOCKET, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "leakscope serve: cannot start the HTTP server on %s\n", shown);
        close(s);
        series_reader_free(sv.reader);
        return 2;
    }
    fprintf(stderr, "leakscope serve: http://%s/metrics (segments in %s)\n", shown, dir);
    int sig = 0;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    close(s);
    series_reader_free(sv.reader);
    free(sv.gone);
    return 0;
}

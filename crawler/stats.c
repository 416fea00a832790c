/* stats.c - rendering of the fetcher's counters. One table lists every
 * counter once, so the JSON file and the Prometheus endpoint always agree. */
#include "stats.h"

#include <dirent.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct stat_field {
    const char *name;
    const char *help;
    size_t offset;
    int gauge;
};

#define F(field, gauge, help) {#field, help, offsetof(struct crawl_stats, field), gauge}
static const struct stat_field fields[] = {
    F(pages_fetched, 0, "Page transfers finished (robots.txt excluded)"),
    F(pages_parsed, 0, "Pages finished by the parsers"),
    F(pages_queued, 0, "Pages and redirects pushed to fetch:queue"),
    F(errors, 0, "Transport failures and HTTP responses >= 400"),
    F(http_4xx, 0, "HTTP 4xx responses"),
    F(http_5xx, 0, "HTTP 5xx responses"),
    F(transport_errors, 0, "Transfers that failed below HTTP"),
    F(redirects, 0, "Redirects whose target was queued"),
    F(redirects_dropped, 0, "Redirects beyond --max-redirects"),
    F(too_large, 0, "Transfers aborted at --max-page-bytes"),
    F(not_html, 0, "Bodies not parsed (binary or not HTML)"),
    F(robots_fetched, 0, "robots.txt transfers"),
    F(robots_disallowed, 0, "Frontier URLs skipped for robots.txt"),
    F(duplicates_skipped, 0, "Frontier URLs skipped as already fetched"),
    F(bytes_fetched, 0, "Body bytes received"),
    F(active_transfers, 1, "Transfers in flight"),
    F(fetch_queue_length, 1, "Length of fetch:queue"),
    F(scheduled_domains, 1, "Domains with URLs left to fetch"),
    F(pages_processing, 1, "Pages the parsers are working on"),
    F(curl_easy_alive, 1, "libcurl easy handles not cleaned up"),
    F(http_sockets_open, 1, "HTTP sockets open"),
    F(http_sockets_peak, 1, "Most HTTP sockets open at once"),
    F(http_socket_emfile, 0, "HTTP socket() failures with EMFILE/ENFILE"),
    F(retained_pages, 1, "Page buffers still held after their push"),
    F(retained_page_bytes, 1, "Bytes of page buffers still held after their push"),
    F(frontier_files_open, 1, "Frontier files open in the fetcher"),
    F(frontier_open_errors, 0, "Frontier file open failures"),
    F(frontier_open_emfile, 0, "Frontier file open failures with EMFILE/ENFILE"),
    F(redis_errors, 0, "Redis commands retried after a failure"),
    F(parser_restarts, 0, "Parser processes restarted"),
    F(fds_open, 1, "Descriptors open in the fetcher"),
    F(rss_kb, 1, "Resident set size of the fetcher in KiB"),
    F(heap_live_bytes, 1, "Live malloc heap of the fetcher in bytes"),
    F(backpressure_pauses, 0, "Times fetching paused for a long fetch:queue"),
    F(pool.created, 0, "Redis pool connections created"),
    F(pool.closed, 0, "Redis pool connections closed"),
    F(pool.in_use, 1, "Redis pool connections lent out"),
    F(pool.idle, 1, "Redis pool connections idle"),
    F(pool.waits, 0, "Redis pool acquires that waited"),
};
#undef F

static long field_value(const struct crawl_stats *s, const struct stat_field *f) {
    return *(const long *)((const char *)s + f->offset);
}

/* "pool.in_use" -> "redis_pool_in_use" */
static void field_key(const struct stat_field *f, char *out, size_t len) {
    if (strncmp(f->name, "pool.", 5) == 0) snprintf(out, len, "redis_pool_%s", f->name + 5);
    else snprintf(out, len, "%s", f->name);
}

long stats_count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

long stats_rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f) return -1;
    long pages_total, pages_resident;
    int n = fscanf(f, "%ld %ld", &pages_total, &pages_resident);
    fclose(f);
    return n == 2 ? pages_resident * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

long stats_heap_live_bytes(void) {
    struct mallinfo2 mi = mallinfo2();
    return (long)(mi.uordblks + mi.hblkhd);
}

int stats_write_json(const char *path, const struct crawl_stats *s) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (!f) return -1;
    fprintf(f, "{\n  \"elapsed_s\": %.3f", s->elapsed_s);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        char key[64];
        field_key(&fields[i], key, sizeof(key));
        fprintf(f, ",\n  \"%s\": %ld", key, field_value(s, &fields[i]));
    }
    fprintf(f, "\n}\n");
    if (fclose(f) != 0) return -1;
    return rename(tmp, path);
}

void stats_status_line(const struct crawl_stats *s, double rate, char *buf, size_t len) {
    snprintf(buf, len,
             "status: %.0fs fetched=%ld parsed=%ld %.1f pages/s errors=%ld active=%ld fetch_queue=%ld "
             "pool created=%ld in_use=%ld idle=%ld fds=%ld rss_kb=%ld heap=%ld http_sockets=%ld easy_alive=%ld "
             "retained_bytes=%ld frontier_open=%ld",
             s->elapsed_s, s->pages_fetched, s->pages_parsed, rate, s->errors, s->active_transfers,
             s->fetch_queue_length, s->pool.created, s->pool.in_use, s->pool.idle, s->fds_open,
             s->rss_kb, s->heap_live_bytes, s->http_sockets_open, s->curl_easy_alive, s->retained_page_bytes, s->frontier_files_open);
}

size_t stats_prometheus(const struct crawl_stats *s, char *buf, size_t len) {
    size_t used = 0;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]) && used < len; i++) {
        char key[64];
        field_key(&fields[i], key, sizeof(key));
        const char *type = fields[i].gauge ? "gauge" : "counter";
        const char *suffix = fields[i].gauge ? "" : "_total";
        int n = snprintf(buf + used, len - used, "# HELP crawler_%s%s %s\n# TYPE crawler_%s%s %s\ncrawler_%s%s %ld\n",
                         key, suffix, fields[i].help, key, suffix, type, key, suffix, field_value(s, &fields[i]));
        if (n < 0) break;
        used += (size_t)n;
    }
    if (used < len) {
        int n = snprintf(buf + used, len - used, "# TYPE crawler_elapsed_seconds gauge\ncrawler_elapsed_seconds %.3f\n",
                         s->elapsed_s);
        if (n > 0) used += (size_t)n;
    }
    return used < len ? used : len;
}

/* report.c - `leakscope report REC.db`: the verdicts of a recording on
 * stdout, and as JSON and a static HTML page on request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "diagnose.h"
#include "history.h"
#include "json.h"
#include "report_html.h"

static void usage(FILE *out) {
    fputs("usage: leakscope report REC.db [--html OUT.html] [--json OUT.json] [--window S] [--quiet]\n"
          "Judges a recording (leakscope record, run --record): what grows, in which process,\n"
          "how fast, how sure and where. Prints the verdicts; exit status 0 either way.\n"
          "  --html OUT   one static HTML page: verdicts with their charts, descriptors and\n"
          "               heap by subsystem over time, idle sockets, heap age, top sites\n"
          "  --json OUT   {\"recording\", \"span_s\", \"verdicts\": [...]} ('-' for stdout)\n"
          "  --window S   judge only the last S seconds of each process (default: all)\n"
          "  --quiet      no verdict lines on stdout\n",
          out);
}

/* Writes the JSON document of a judged recording to out. */
void report_json(FILE *out, const char *recording, const struct history *h,
                 const struct diag_list *l) {
    fputs("{\"recording\":", out);
    json_string(out, recording);
    fprintf(out, ",\"span_s\":%.3f,\"processes\":%zu,\"verdicts\":",
            h->nt ? h->t[h->nt - 1] - h->t[0] : 0.0, h->nproc);
    diag_json(out, l);
    fputs("}\n", out);
}

/* Opens path for writing, 0600 ('-': stdout). */
static FILE *open_out(const char *path) {
    if (strcmp(path, "-") == 0) return stdout;
    mode_t old = umask(077);
    FILE *f = fopen(path, "w");
    umask(old);
    if (!f) perror(path);
    return f;
}

static int close_out(FILE *f, const char *path) {
    if (f == stdout) return fflush(f) == 0 ? 0 : -1;
    if (ferror(f) | fclose(f)) {
        fprintf(stderr, "leakscope report: writing %s failed\n", path);
        return -1;
    }
    return 0;
}

int cmd_report(int argc, char **argv) {
    const char *db = NULL, *html = NULL, *json = NULL;
    double window = 0;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--quiet") == 0) quiet = 1;
        else if (i + 1 < argc && strcmp(a, "--html") == 0) html = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--json") == 0) json = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--window") == 0) {
            char *end;
            window = strtod(argv[++i], &end);
            if (*end || !(window >= 0)) {
                fprintf(stderr, "leakscope report: --window wants seconds, not '%s'\n", argv[i]);
                return 2;
            }
        } else if (a[0] != '-' && !db) db = a;
        else {
            fprintf(stderr, "leakscope report: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!db) {
        usage(stderr);
        return 2;
    }
    struct history h;
    char err[700];
    if (history_load_db(db, &h, err, sizeof err) != 0) {
        fprintf(stderr, "leakscope report: %s\n", err);
        return 1;
    }
    struct diag_list l;
    if (diagnose(&h, window, &l) != 0) {
        fprintf(stderr, "leakscope report: out of memory\n");
        history_free(&h);
        return 1;
    }
    int rc = 0;
    if (!quiet) diag_text(stdout, &l);
    if (json) {
        FILE *f = open_out(json);
        if (!f) rc = 1;
        else {
            report_json(f, db, &h, &l);
            if (close_out(f, json)) rc = 1;
        }
    }
    if (html) {
        FILE *f = open_out(html);
        if (!f) rc = 1;
        else {
            report_html(f, db, &h, &l);
            if (close_out(f, html)) rc = 1;
        }
    }
    diag_list_free(&l);
    history_free(&h);
    return rc;
}

/* show.c - `leakscope show PID...`: the summary of traced processes that
 * are running now (or whose segments were kept), from any terminal. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "segdir.h"
#include "summary.h"

static void usage(FILE *out) {
    fputs("usage: leakscope show [--json] [--dir DIR] PID...\n"
          "Prints the descriptor (and heap) summary of traced processes.\n",
          out);
}

int cmd_show(int argc, char **argv) {
    const char *dir_opt = NULL;
    int json = 0, npids = 0;
    struct seg_list l = {0};
    char dir[512];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) dir_opt = argv[++i];
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
    }
    if (segdir_resolve(dir_opt, dir, sizeof dir) != 0) return 2;
    char dir_err[700];
    if (lks_segment_dir_check(dir, dir_err, sizeof dir_err) != 0 && errno != ENOENT) {
        /* Not ours, or open to others: nothing in it can be trusted. */
        fprintf(stderr, "leakscope show: %s\n", dir_err);
        return 1;
    }
    l.seg = calloc((size_t)argc, sizeof *l.seg);
    l.path = calloc((size_t)argc, sizeof *l.path);
    if (!l.seg || !l.path) return 2;
    int status = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') {
            if (strcmp(argv[i], "--dir") == 0) i++;
            else if (strcmp(argv[i], "--json") != 0) {
                fprintf(stderr, "leakscope show: unknown option '%s'\n", argv[i]);
                usage(stderr);
                status = 2;
            }
            continue;
        }
        char *end;
        long pid = strtol(argv[i], &end, 10);
        if (*end || pid <= 0 || pid > 1 << 22) {
            fprintf(stderr, "leakscope show: '%s' is not a process id\n", argv[i]);
            status = 2;
            continue;
        }
        char path[600], err[700];
        segdir_path(dir, (pid_t)pid, path, sizeof path);
        struct lks_header *h = lks_segment_load(path, err, sizeof err);
        if (!h) {
            fprintf(stderr, "leakscope show: pid %ld is not traced (%s)\n", pid, err);
            status = 1;
            continue;
        }
        l.seg[l.n] = h;
        l.path[l.n] = strdup(path);
        l.n++;
        npids++;
    }
    if (npids == 0 && status == 0) {
        usage(stderr);
        status = 2;
    }
    if (l.n) {
        if (json) summary_json(stdout, &l, 1, 1, -1);
        else summary_text(stdout, &l, 1, 1);
    }
    seg_list_free(&l);
    return status;
}

/* segdir.c - enumerate and load segment files (see segdir.h). */
#include "segdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int segdir_resolve(const char *given, char *buf, size_t len) {
    if (given) {
        if (snprintf(buf, len, "%s", given) >= (int)len) {
            fprintf(stderr, "leakscope: --dir path too long\n");
            return -1;
        }
        return 0;
    }
    if (lks_segment_dir(buf, len) != 0) {
        fprintf(stderr, "leakscope: segment directory path too long\n");
        return -1;
    }
    return 0;
}

void segdir_path(const char *dir, pid_t pid, char *buf, size_t len) {
    snprintf(buf, len, "%s/%d.seg", dir, (int)pid);
}

static int by_pid(const void *a, const void *b) {
    const struct lks_header *x = *(struct lks_header *const *)a;
    const struct lks_header *y = *(struct lks_header *const *)b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

int segdir_load(const char *dir, const char *session, int verbose, struct seg_list *out) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) return -1;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".seg") != 0) continue;
        char path[1024], err[400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct lks_header *h = lks_segment_load(path, err, sizeof err);
        if (!h) {
            if (verbose) fprintf(stderr, "leakscope: skipping %s\n", err);
            continue;
        }
        if (session && strcmp(h->session, session) != 0) {
            lks_segment_free(h);
            continue;
        }
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            out->seg = realloc(out->seg, cap * sizeof *out->seg);
            out->path = realloc(out->path, cap * sizeof *out->path);
            if (!out->seg || !out->path) {
                fprintf(stderr, "leakscope: out of memory\n");
                exit(1);
            }
        }
        out->seg[out->n] = h;
        out->path[out->n] = strdup(path);
        out->n++;
    }
    closedir(d);
    /* Sort pairs by pid: sort an index, then permute. */
    for (size_t i = 1; i < out->n; i++)
        for (size_t j = i; j > 0 && by_pid(&out->seg[j - 1], &out->seg[j]) > 0; j--) {
            struct lks_header *t = out->seg[j];
            out->seg[j] = out->seg[j - 1];
            out->seg[j - 1] = t;
            char *p = out->path[j];
            out->path[j] = out->path[j - 1];
            out->path[j - 1] = p;
        }
    return 0;
}

void seg_list_free(struct seg_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        lks_segment_free(l->seg[i]);
        free(l->path[i]);
    }
    free(l->seg);
    free(l->path);
    memset(l, 0, sizeof *l);
}

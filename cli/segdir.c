/* segdir.c - enumerate and load segment files (contract in segdir.h). */
#include "segdir.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int segdir_resolve(const char *given, char *buf, size_t len) {
    if (given) {
        int n;
        if (given[0] == '/' || !*given) {
            n = snprintf(buf, len, "%s", given);
        } else {
            /* Absolute, so children that change directory use the same one. */
            char cwd[PATH_MAX];
            if (!getcwd(cwd, sizeof cwd)) {
                fprintf(stderr, "leakscope: cannot resolve --dir %s: %s\n", given, strerror(errno));
                return -1;
            }
            n = snprintf(buf, len, "%s/%s", cwd, given);
        }
        if (n < 0 || (size_t)n >= len) {
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

long segdir_scan(const char *dir, int verbose, segdir_fn fn, void *arg, char *err,
                 size_t errlen) {
    if (lks_segment_dir_check(dir, err, errlen) != 0) return -1;
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        lks_set_err(err, errlen, "cannot read %s: %s", dir, strerror(e));
        errno = e;
        return -1;
    }
    long n = 0;
    struct lks_segment_head *head = malloc(sizeof *head);
    if (!head) {
        closedir(d);
        lks_set_err(err, errlen, "out of memory");
        errno = ENOMEM;
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".seg") != 0) continue;
        char path[PATH_MAX + 256], why[PATH_MAX + 400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (lks_segment_load_head(path, head, why, sizeof why) != 0) {
            if (verbose) fprintf(stderr, "leakscope: skipping %s\n", why);
            continue;
        }
        n++;
        if (fn(path, head, arg) != 0) break;
    }
    free(head);
    closedir(d);
    return n;
}

struct load_ctx {
    const char *session;
    int verbose;
    struct seg_list *out;
    size_t cap;
};

static int load_one(const char *path, const struct lks_segment_head *head, void *arg) {
    struct load_ctx *c = arg;
    if (c->session && strcmp(head->h.session, c->session) != 0) return 0;
    char why[PATH_MAX + 400];
    struct lks_header *h = lks_segment_load(path, why, sizeof why);
    if (!h) {
        if (c->verbose) fprintf(stderr, "leakscope: skipping %s\n", why);
        return 0;
    }
    struct seg_list *out = c->out;
    if (out->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        out->seg = realloc(out->seg, c->cap * sizeof *out->seg);
        out->path = realloc(out->path, c->cap * sizeof *out->path);
        if (!out->seg || !out->path) {
            fprintf(stderr, "leakscope: out of memory\n");
            exit(1);
        }
    }
    out->seg[out->n] = h;
    out->path[out->n] = strdup(path);
    out->n++;
    return 0;
}

struct pid_index {
    pid_t pid;
    size_t i;
};

static int by_pid(const void *a, const void *b) {
    const struct pid_index *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

int segdir_load(const char *dir, const char *session, int verbose, struct seg_list *out,
                char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    struct load_ctx c = {session, verbose, out, 0};
    if (segdir_scan(dir, verbose, load_one, &c, err, errlen) < 0) return -1;
    if (out->n < 2) return 0;
    /* Sort the pairs by pid through an index. */
    struct pid_index *idx = malloc(out->n * sizeof *idx);
    struct lks_header **seg = malloc(out->n * sizeof *seg);
    char **path = malloc(out->n * sizeof *path);
    if (!idx || !seg || !path) {
        fprintf(stderr, "leakscope: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < out->n; i++) idx[i] = (struct pid_index){out->seg[i]->pid, i};
    qsort(idx, out->n, sizeof *idx, by_pid);
    for (size_t i = 0; i < out->n; i++) {
        seg[i] = out->seg[idx[i].i];
        path[i] = out->path[idx[i].i];
    }
    free(idx);
    free(out->seg);
    free(out->path);
    out->seg = seg;
    out->path = path;
    return 0;
}

int segdir_sweep(const char *dir) { return lks_segment_dir_sweep(dir, lks_segment_grace_s()); }

void seg_list_free(struct seg_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        lks_segment_free(l->seg[i]);
        free(l->path[i]);
    }
    free(l->seg);
    free(l->path);
    memset(l, 0, sizeof *l);
}

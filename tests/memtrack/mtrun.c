/* mtrun.c - see mtrun.h. */
#define _GNU_SOURCE
#include "mtrun.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "symbolize.h"

static void make_dir(struct mt_run *r) {
    snprintf(r->dir, sizeof r->dir, "/tmp/mttest.XXXXXX");
    cr_assert(mkdtemp(r->dir));
    char path[512];
    snprintf(path, sizeof path, "%s/rules", r->dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, "testlib module libheapprobe_lib.so*\n");
    fclose(f);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

static void child_env(struct mt_run *r, int preload) {
    char segs[300], rules[300];
    snprintf(segs, sizeof segs, "%s/segs", r->dir);
    snprintf(rules, sizeof rules, "%s/rules", r->dir);
    setenv("LEAKSCOPE_DIR", segs, 1);
    setenv("LEAKSCOPE_RULES", rules, 1);
    if (preload == 2) setenv("LD_PRELOAD", MT_FDTRACK ":" MT_SHIM, 1);
    else if (preload) setenv("LD_PRELOAD", MT_SHIM, 1);
    else unsetenv("LD_PRELOAD");
}

static int decode(int st) {
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

static struct mt_run run(const char *const *argv, int preload, const char *stdin_text,
                         const char *dir) {
    struct mt_run r = {0};
    if (dir) {
        char sub[300];
        snprintf(r.dir, sizeof r.dir, "%s", dir);
        snprintf(sub, sizeof sub, "%s/run.XXXXXX", dir);
        cr_assert(mkdtemp(sub));
        snprintf(r.dir, sizeof r.dir, "%s", dir);
        snprintf(r.io, sizeof r.io, "%s", sub);
    } else {
        make_dir(&r);
        snprintf(r.io, sizeof r.io, "%s", r.dir);
    }
    char out[400], err[400], in[400];
    snprintf(out, sizeof out, "%s/stdout", r.io);
    snprintf(err, sizeof err, "%s/stderr", r.io);
    snprintf(in, sizeof in, "%s/stdin", r.io);
    FILE *f = fopen(in, "w");
    cr_assert(f);
    if (stdin_text) fputs(stdin_text, f);
    fclose(f);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int i = open(in, O_RDONLY), o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600),
            e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(i, 0);
        dup2(o, 1);
        dup2(e, 2);
        child_env(&r, preload);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    r.pid = pid;
    r.status = decode(st);
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
}

struct mt_run mt_run_probe(const char *mode, const char *stdin_text) {
    const char *argv[] = {MT_HEAPPROBE, mode, NULL};
    return run(argv, 1, stdin_text, NULL);
}

struct mt_run mt_run_cmd(const char *const *argv, int preload) {
    return run(argv, preload, NULL, NULL);
}

struct mt_run mt_run_in(const struct mt_run *target, const char *const *argv) {
    return run(argv, 0, NULL, target->dir);
}

struct mt_run mt_start(const char *const *argv, int *to_child, int *from_child) {
    struct mt_run r = {0};
    make_dir(&r);
    int in[2], out[2];
    cr_assert_eq(pipe(in), 0);
    cr_assert_eq(pipe(out), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        child_env(&r, 1);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    *to_child = in[1];
    *from_child = out[0];
    r.pid = pid;
    snprintf(r.io, sizeof r.io, "%s", r.dir);
    r.out = strdup("");
    r.err = strdup("");
    return r;
}

void mt_wait(struct mt_run *r) {
    int st;
    waitpid(r->pid, &st, 0);
    r->status = decode(st);
}

void mt_run_free(struct mt_run *r) {
    free(r->out);
    free(r->err);
    if (strcmp(r->io, r->dir) != 0) return; /* the directory belongs to another run */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
    if (system(cmd) != 0) cr_log_warn("could not remove %s", r->dir);
}

struct lks_header *mt_segment(struct mt_run *r, pid_t pid) {
    char path[400], err[300];
    snprintf(path, sizeof path, "%s/segs/%d.seg", r->dir, (int)pid);
    struct lks_header *h = lks_segment_load(path, err, sizeof err);
    cr_assert(h, "segment: %s", err);
    return h;
}

struct lks_subsys *mt_subsys(struct lks_header *h, const char *name) {
    struct lks_subsys *ss = lks_subsys_table(h);
    for (uint32_t i = 0; i < h->subsys_used; i++)
        if (!strcmp(ss[i].name, name)) return &ss[i];
    return NULL;
}

int mt_site_has_func(struct lks_header *h, uint32_t site, const char *func) {
    if (!site || site > h->sites_cap) return 0;
    struct lks_site *s = &lks_site_table(h)[site - 1];
    struct lks_symbolizer *sym = lks_symbolizer_new(h);
    int found = 0;
    for (int i = 0; i < s->nframes && !found; i++) {
        const char *f = lks_symbolize_site_func(sym, s, i);
        found = f && !strcmp(f, func);
    }
    lks_symbolizer_free(sym);
    return found;
}

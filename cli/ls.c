/* ls.c - `leakscope ls`: which processes have segments, alive or not, and
 * how many descriptors and live heap bytes each holds right now.
 *
 * Reads only each segment's head, so listing thousands of processes costs a
 * few KiB each; removes dead segments first (segdir_sweep), and what runs
 * killed outright left in /tmp (runtmp_sweep). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "runtmp.h"
#include "segdir.h"

struct ls_row {
    int pid, ppid, running;
    char comm[16], role[32];
    long long fds, heap;
};

struct ls_rows {
    struct ls_row *row;
    size_t n, cap;
};

static int add_row(const char *path, const struct lks_segment_head *head, void *arg) {
    (void)path;
    struct ls_rows *r = arg;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->row = realloc(r->row, r->cap * sizeof *r->row);
        if (!r->row) {
            fprintf(stderr, "leakscope ls: out of memory\n");
            exit(1);
        }
    }
    struct ls_row *row = &r->row[r->n++];
    const struct lks_header *h = &head->h;
    int64_t fds = 0, heap = 0;
    uint32_t used = atomic_load(&((struct lks_header *)h)->subsys_used);
    for (unsigned s = 0; s < used && s < LKS_MAX_SUBSYS; s++) {
        fds = lks_sat_add(fds, head->subsys[s].fd_open);
        heap = lks_sat_add(heap, head->subsys[s].heap_live_bytes);
    }
    row->pid = h->pid;
    row->ppid = h->ppid;
    row->running = lks_segment_process_alive(h);
    snprintf(row->comm, sizeof row->comm, "%s", h->comm);
    snprintf(row->role, sizeof row->role, "%s", h->role);
    row->fds = fds;
    row->heap = heap;
    return 0;
}

static int by_pid(const void *a, const void *b) {
    const struct ls_row *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

int cmd_ls(int argc, char **argv) {
    const char *dir_opt = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir_opt = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            puts("usage: leakscope ls [--dir DIR]\n"
                 "Lists traced processes; first removes the segments of processes that\n"
                 "ended more than $LEAKSCOPE_SEGMENT_GRACE seconds ago (default 300), and\n"
                 "the temporary recordings that killed `leakscope run`s left as long ago.");
            return 0;
        } else {
            fprintf(stderr, "leakscope ls: unknown option '%s'\nusage: leakscope ls [--dir DIR]\n",
                    argv[i]);
            return 2;
        }
    }
    char dir[512], err[1024];
    if (segdir_resolve(dir_opt, dir, sizeof dir) != 0) return 2;
    segdir_sweep(dir);
    runtmp_sweep();
    struct ls_rows rows = {0};
    if (segdir_scan(dir, 1, add_row, &rows, err, sizeof err) < 0) {
        if (errno == ENOENT) {
            printf("no traced processes (%s does not exist)\n", dir);
            return 0;
        }
        fprintf(stderr, "leakscope ls: %s\n", err);
        return 1;
    }
    qsort(rows.row, rows.n, sizeof *rows.row, by_pid);
    printf("%7s %7s %-16s %-8s %8s %14s  %s\n", "PID", "PPID", "COMM", "STATE", "FDS",
           "HEAP_LIVE", "ROLE");
    for (size_t i = 0; i < rows.n; i++) {
        struct ls_row *r = &rows.row[i];
        printf("%7d %7d %-16s %-8s %8lld %14lld  %s\n", r->pid, r->ppid, r->comm,
               r->running ? "running" : "exited", r->fds, r->heap, r->role);
    }
    free(rows.row);
    return 0;
}

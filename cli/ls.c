/* ls.c - `leakscope ls`: which processes have segments, alive or not, and
 * how many descriptors and live heap bytes each holds right now. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "segdir.h"

int cmd_ls(int argc, char **argv) {
    const char *dir_opt = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir_opt = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            puts("usage: leakscope ls [--dir DIR]");
            return 0;
        } else {
            fprintf(stderr, "leakscope ls: unknown option '%s'\nusage: leakscope ls [--dir DIR]\n",
                    argv[i]);
            return 2;
        }
    }
    char dir[512];
    if (segdir_resolve(dir_opt, dir, sizeof dir) != 0) return 2;
    struct seg_list l;
    if (segdir_load(dir, NULL, 1, &l) != 0) {
        printf("no traced processes (%s does not exist)\n", dir);
        return 0;
    }
    printf("%7s %7s %-16s %-8s %8s %14s  %s\n", "PID", "PPID", "COMM", "STATE", "FDS",
           "HEAP_LIVE", "ROLE");
    for (size_t i = 0; i < l.n; i++) {
        struct lks_header *h = l.seg[i];
        struct lks_subsys *ss = lks_subsys_table(h);
        int64_t fds = 0, heap = 0;
        for (unsigned s = 0; s < h->subsys_used; s++) {
            fds = lks_sat_add(fds, ss[s].fd_open);
            heap = lks_sat_add(heap, ss[s].heap_live_bytes);
        }
        printf("%7d %7d %-16s %-8s %8lld %14lld  %s\n", h->pid, h->ppid, h->comm,
               lks_segment_process_alive(h) ? "running" : "exited", (long long)fds,
               (long long)heap, h->role);
    }
    seg_list_free(&l);
    return 0;
}

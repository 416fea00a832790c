/* procscan.c - what the hooks cannot see: descriptors that existed before
 * the shim started (stdio, inherited across exec) and, at exit, the
 * difference between our table and the kernel's /proc/self/fd, so that
 * nothing is silently lost: kernel-only descriptors are counted as
 * "unattributed", table-only ones as stale and closed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "fdtable.h"
#include "trace.h"

/* One bit per possible descriptor, for the exit reconciliation. */
static unsigned char kernel_open[(1u << 20) / 8];

/* Calls fn(fd) for each descriptor in /proc/self/fd except the scan's own. */
static void for_each_kernel_fd(void (*fn)(struct lks_header *, int), struct lks_header *h) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return;
    int self = dirfd(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        int fd = atoi(de->d_name);
        if (fd != self && !fdt_is_own(fd)) fn(h, fd);
    }
    closedir(d);
}

static void adopt_inherited(struct lks_header *h, int fd) {
    if ((uint32_t)fd < h->fds_cap && !lks_fd_table(h)[fd].in_use)
        fdt_adopt(h, fd, -1, LKS_FD_INHERITED);
}

static void note_kernel_fd(struct lks_header *h, int fd) {
    if ((uint32_t)fd >= h->fds_cap) return;
    kernel_open[fd / 8] |= (unsigned char)(1u << (fd % 8));
    if (!lks_fd_table(h)[fd].in_use) {
        fdt_adopt(h, fd, LKS_SUBSYS_UNATTRIBUTED, 0);
        atomic_fetch_add(&h->fd_unattributed, 1);
    }
}

__attribute__((constructor)) static void fdtrack_start(void) {
    struct lks_header *h = lks_trace_init();
    if (!h) return;
    lks_trace_feature(LKS_FEATURE_FD);
    lks_in_hook++;
    for_each_kernel_fd(adopt_inherited, h);
    lks_in_hook--;
}

__attribute__((destructor)) static void fdtrack_finish(void) {
    struct lks_header *h = lks_trace_seg();
    if (!h || lks_in_hook) return;
    lks_in_hook++;
    memset(kernel_open, 0, sizeof kernel_open);
    for_each_kernel_fd(note_kernel_fd, h);
    uint32_t top = (uint32_t)atomic_load(&h->fd_hiwater);
    if (top > h->fds_cap) top = h->fds_cap;
    for (uint32_t fd = 0; fd < top; fd++) {
        if (!lks_fd_table(h)[fd].in_use || (kernel_open[fd / 8] & (1u << (fd % 8)))) continue;
        struct lks_fd taken = fdt_close_begin(h, (int)fd);
        fdt_close_done(h, (int)fd, taken, 0);
    }
    lks_in_hook--;
}

/* procscan.c - what the hooks cannot see: descriptors that existed before
 * the shim started (stdio, inherited across exec) and, at exit, the
 * difference between our table and the kernel's /proc/self/fd, so that
 * nothing is silently lost: kernel-only descriptors are counted as
 * "unattributed", table-only ones as stale and closed. At the descriptor
 * limit there is none to list the directory with; each number is then asked
 * with fcntl(F_GETFD), which needs none.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>

#include "fdtable.h"
#include "trace.h"

/* One bit per possible descriptor, for the exit reconciliation. */
static unsigned char kernel_open[(1u << 20) / 8];

/* Calls fn(fd) for each descriptor in /proc/self/fd except the scan's own.
 * Returns -1 if the directory cannot be opened (at the descriptor limit,
 * listing it needs the descriptor the process has run out of). */
static int list_kernel_fds(void (*fn)(struct lks_header *, int), struct lks_header *h) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int self = dirfd(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        int fd = atoi(de->d_name);
        if (fd != self && !fdt_is_own(fd)) fn(h, fd);
    }
    closedir(d);
    return 0;
}

/* The same without a descriptor to spare: asks the kernel about each number
 * that can be open (below the limit, or below the highest we saw). */
static void probe_kernel_fds(void (*fn)(struct lks_header *, int), struct lks_header *h) {
    struct rlimit rl;
    uint64_t top = (uint64_t)atomic_load(&h->fd_hiwater);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > top) top = rl.rlim_cur;
    if (top > h->fds_cap) top = h->fds_cap;
    for (uint64_t fd = 0; fd < top; fd++)
        if ((fcntl((int)fd, F_GETFD) != -1 || errno != EBADF) && !fdt_is_own((int)fd))
            fn(h, (int)fd);
}

/* Every descriptor the kernel has, by listing or by probing. Returns how:
 * LKS_RECONCILE_PROC or LKS_RECONCILE_PROBE. */
static uint32_t for_each_kernel_fd(void (*fn)(struct lks_header *, int), struct lks_header *h) {
    if (list_kernel_fds(fn, h) == 0) return LKS_RECONCILE_PROC;
    probe_kernel_fds(fn, h);
    return LKS_RECONCILE_PROBE;
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
    /* Only the bits the table can use: clearing all 128 KiB costs a short
     * process 32 page faults. */
    memset(kernel_open, 0, ((size_t)h->fds_cap + 7) / 8 < sizeof kernel_open
                               ? ((size_t)h->fds_cap + 7) / 8 : sizeof kernel_open);
    uint32_t how = for_each_kernel_fd(note_kernel_fd, h);
    uint32_t top = (uint32_t)atomic_load(&h->fd_hiwater);
    if (top > h->fds_cap) top = h->fds_cap;
    for (uint32_t fd = 0; fd < top; fd++) {
        if (!lks_fd_table(h)[fd].in_use || (kernel_open[fd / 8] & (1u << (fd % 8)))) continue;
        struct lks_fd taken = fdt_close_begin(h, (int)fd);
        fdt_close_done(h, (int)fd, taken, 0);
    }
    atomic_store(&h->fd_reconciled, how);
    lks_in_hook--;
}

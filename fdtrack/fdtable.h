/* fdtable.h - what fdtrack knows about each descriptor, kept in the
 * segment's fd table and per-subsystem / per-site counters.
 *
 * Every function here is called from a hook with lks_in_hook held; none
 * allocates or locks. Functions that capture a call site are noinline and
 * skip a fixed number of frames, so call them straight from the hook.
 */
#ifndef FDTRACK_FDTABLE_H
#define FDTRACK_FDTABLE_H

#include <stdint.h>

#include "segment.h"

/* A descriptor was created by a hook (fd >= 0) or the creation failed
 * (fd < 0, err = errno). path may be NULL; relative paths are resolved. */
void fdt_created(struct lks_header *h, int fd, int err, int kind, const char *path,
                 unsigned port);

/* Both ends of a pipe or socketpair, or the failure to make them. */
void fdt_created_pair(struct lks_header *h, const int fds[2], int ok, int err, int kind);

/* Descriptors that arrived in msg (SCM_RIGHTS, recvmsg): new in this
 * process, created where they were received, of the kind the kernel says. */
struct msghdr;
void fdt_received(struct lks_header *h, const struct msghdr *msg);

/* newfd is a duplicate of oldfd (dup, dup2, dup3, F_DUPFD): it belongs to
 * oldfd's subsystem, with the duplicating call site. */
void fdt_duplicated(struct lks_header *h, int oldfd, int newfd, int err);

/* accept/accept4 on listener gave fd (or failed). */
void fdt_accepted(struct lks_header *h, int listener, int fd, int err);

/* Before a close: takes fd out of the table and returns its entry (in_use 0
 * if unknown; flags FDT_TAKEN_OWN if fd was the shim's own). Then call
 * fdt_close_done with the close's outcome. */
#define FDT_TAKEN_OWN 0x8000u /* only in fdt_close_begin's copy, never in the segment */
struct lks_fd fdt_close_begin(struct lks_header *h, int fd);
void fdt_close_done(struct lks_header *h, int fd, struct lks_fd taken, int ok);

/* Takes every known descriptor in [first, last] out of the table and counts
 * it closed (close_range, closefrom). */
void fdt_close_range(struct lks_header *h, unsigned first, unsigned last);

/* connect/bind learned a socket's port: the socket may change subsystem. */
void fdt_set_port(struct lks_header *h, int fd, unsigned port, int listener);

/* Records a descriptor that exists without a hook having seen its creation
 * (inherited at start-up, or found by reconciliation), classified from
 * /proc/self/fd. */
void fdt_adopt(struct lks_header *h, int fd, int subsys_override, uint16_t flags);

/* The shim's own descriptors (made by a library while a hook runs, e.g.
 * libunwind's validation pipe) are remembered so they never count. */
void fdt_own_add(int fd);
int fdt_own_remove(int fd); /* 1 if fd was ours */
int fdt_is_own(int fd);

#endif

/* fork_guard.c - calls after which a fork child could no longer make its
 * segment, interposed so that it makes it first.
 *
 * A fork child's segment waits for its first event (trace.c): most children
 * exec at once and never need one. A server's worker that drops its
 * privileges (nginx: setuid to nobody), changes root, namespaces or seccomp
 * filter right after the fork could not create the file in the segment
 * directory afterwards, so these calls make it while still possible.
 * Compiled into each shim (either may be preloaded alone); with both, the
 * first forwards to the second, and the second finds the segment made. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <linux/prctl.h> /* the constants only: prctl is defined below */
#include <unistd.h>

#include "trace.h"

#define NEXT(name)                                                             \
    static __typeof__(name) *next;                                             \
    if (!next) next = (__typeof__(name) *)dlsym(RTLD_NEXT, #name);             \
    if (!next) {                                                               \
        errno = ENOSYS;                                                        \
        return -1;                                                             \
    }

/* Makes a pending fork child's segment; nothing otherwise. */
static inline void before_drop(void) {
    if (lks_trace_pending_fork()) (void)lks_trace_seg();
}

#define GUARD1(name, T1)                                                       \
    LKS_EXPORT int name(T1 a) {                                                \
        NEXT(name);                                                            \
        before_drop();                                                         \
        return next(a);                                                        \
    }
#define GUARD2(name, T1, T2)                                                   \
    LKS_EXPORT int name(T1 a, T2 b) {                                          \
        NEXT(name);                                                            \
        before_drop();                                                         \
        return next(a, b);                                                     \
    }
#define GUARD3(name, T1, T2, T3)                                               \
    LKS_EXPORT int name(T1 a, T2 b, T3 c) {                                    \
        NEXT(name);                                                            \
        before_drop();                                                         \
        return next(a, b, c);                                                  \
    }

GUARD1(setuid, uid_t)
GUARD1(setgid, gid_t)
GUARD1(seteuid, uid_t)
GUARD1(setegid, gid_t)
GUARD2(setreuid, uid_t, uid_t)
GUARD2(setregid, gid_t, gid_t)
GUARD3(setresuid, uid_t, uid_t, uid_t)
GUARD3(setresgid, gid_t, gid_t, gid_t)
GUARD2(setgroups, size_t, const gid_t *)
GUARD2(initgroups, const char *, gid_t)
GUARD1(chroot, const char *)
GUARD1(unshare, int)
GUARD2(setns, int, int)

/* prctl is variadic; its arguments are five machine words. */
LKS_EXPORT int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
                     unsigned long a5) {
    static int (*next)(int, unsigned long, unsigned long, unsigned long, unsigned long);
    if (!next) next = (int (*)(int, unsigned long, unsigned long, unsigned long,
                               unsigned long))dlsym(RTLD_NEXT, "prctl");
    if (!next) {
        errno = ENOSYS;
        return -1;
    }
    if (option == PR_SET_SECCOMP || option == PR_SET_NO_NEW_PRIVS) before_drop();
    return next(option, a2, a3, a4, a5);
}

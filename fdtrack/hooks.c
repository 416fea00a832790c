/* hooks.c - libfdtrack.so: interposes every libc entry point that creates,
 * duplicates or closes a descriptor, and hands the outcome to fdtable.c.
 *
 * glibc's fopen, opendir, popen, tmpfile and mkstemp call the kernel through
 * internal symbols, never through an interposable open(), so each has a hook
 * of its own; no descriptor is counted twice for the same reason.
 *
 * Every hook: resolve the real function, forward untouched if we are already
 * inside a hook or tracing is off, else call it, record, and restore errno.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "fdtable.h"
#include "trace.h"

#define EXPORT __attribute__((visibility("default")))

/* The next definition of name (libc's), resolved on first use. A libc
 * without it fails the call with ENOSYS instead of crashing. */
#define REAL_OR(name, failed)                                              \
    static __typeof__(name) *real_##name;                                  \
    if (__builtin_expect(!real_##name, 0)) {                               \
        real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name);         \
        if (!real_##name) {                                                \
            errno = ENOSYS;                                                \
            return failed;                                                 \
        }                                                                  \
    }
#define REAL(name) REAL_OR(name, -1)
#define REAL_PTR(name) REAL_OR(name, NULL)

/* Returns the segment and takes the re-entrancy guard, or NULL to forward. */
static inline struct lks_header *enter(void) {
    if (lks_in_hook) return NULL;
    struct lks_header *h = lks_trace_seg();
    if (__builtin_expect(!h, 0)) h = lks_trace_init();
    if (h) lks_in_hook++;
    return h;
}

static inline void leave(void) { lks_in_hook--; }

/* Inside a hook of ours (not in a vfork child, which records nothing). */
static inline int in_our_hook(void) {
    return lks_in_hook && lks_in_hook < LKS_IN_VFORK_CHILD;
}

/* Forwarded creations made while a hook of ours runs are the shim's own. */
static inline int own_fd(int fd) {
    if (in_our_hook() && fd >= 0 && lks_trace_seg()) fdt_own_add(fd);
    return fd;
}

static inline int own_pair(int ret, const int fds[2]) {
    if (ret == 0 && in_our_hook() && lks_trace_seg()) {
        fdt_own_add(fds[0]);
        fdt_own_add(fds[1]);
    }
    return ret;
}

static unsigned sockaddr_port(const struct sockaddr *sa) {
    if (!sa) return 0;
    if (sa->sa_family == AF_INET) return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

static int socket_kind(int domain) {
    if (domain == AF_INET || domain == AF_INET6) return LKS_KIND_SOCKET;
    if (domain == AF_UNIX) return LKS_KIND_UNIX;
    return LKS_KIND_OTHER_SOCKET;
}

static int open_kind(int flags) { return (flags & O_DIRECTORY) ? LKS_KIND_DIR : LKS_KIND_FILE; }

static int has_mode(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

/* ---- files ---- */

/* Body shared by the open() family: forward, then record. */
#define OPEN_BODY(call, path, flags)                 \
    struct lks_header *h = enter();                  \
    if (!h) return own_fd(call);                     \
    int fd = call;                                   \
    int err = errno;                                 \
    fdt_created(h, fd, err, open_kind(flags), path, 0); \
    leave();                                         \
    errno = err;                                     \
    return fd

#define VA_MODE(flags)                              \
    mode_t mode = 0;                                \
    if (has_mode(flags)) {                          \
        va_list ap;                                 \
        va_start(ap, flags);                        \
        mode = (mode_t)va_arg(ap, int);             \
        va_end(ap);                                 \
    }

EXPORT int open(const char *path, int flags, ...) {
    VA_MODE(flags);
    REAL(open);
    OPEN_BODY(real_open(path, flags, mode), path, flags);
}

EXPORT int open64(const char *path, int flags, ...) {
    VA_MODE(flags);
    REAL(open64);
    OPEN_BODY(real_open64(path, flags, mode), path, flags);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...) {
    VA_MODE(flags);
    REAL(openat);
    OPEN_BODY(real_openat(dirfd, path, flags, mode), path, flags);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...) {
    VA_MODE(flags);
    REAL(openat64);
    OPEN_BODY(real_openat64(dirfd, path, flags, mode), path, flags);
}

/* The _FORTIFY_SOURCE entry points. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

EXPORT int __open_2(const char *path, int flags) {
    REAL(__open_2);
    OPEN_BODY(real___open_2(path, flags), path, flags);
}

EXPORT int __open64_2(const char *path, int flags) {
    REAL(__open64_2);
    OPEN_BODY(real___open64_2(path, flags), path, flags);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags) {
    REAL(__openat_2);
    OPEN_BODY(real___openat_2(dirfd, path, flags), path, flags);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags) {
    REAL(__openat64_2);
    OPEN_BODY(real___openat64_2(dirfd, path, flags), path, flags);
}

EXPORT int creat(const char *path, mode_t mode) {
    REAL(creat);
    OPEN_BODY(real_creat(path, mode), path, 0);
}

EXPORT int creat64(const char *path, mode_t mode) {
    REAL(creat64);
    OPEN_BODY(real_creat64(path, mode), path, 0);
}

/* mkstemp and friends: the path is known only after the call. */
#define MKSTEMP_BODY(call, tmpl)                              \
    struct lks_header *h = enter();                           \
    if (!h) return call;                                      \
    int fd = call;                                            \
    int err = errno;                                          \
    fdt_created(h, fd, err, LKS_KIND_FILE, fd >= 0 ? tmpl : NULL, 0); \
    leave();                                                  \
    errno = err;                                              \
    return fd

EXPORT int mkstemp(char *tmpl) {
    REAL(mkstemp);
    MKSTEMP_BODY(real_mkstemp(tmpl), tmpl);
}

EXPORT int mkostemp(char *tmpl, int flags) {
    REAL(mkostemp);
    MKSTEMP_BODY(real_mkostemp(tmpl, flags), tmpl);
}

EXPORT int mkstemps(char *tmpl, int suffixlen) {
    REAL(mkstemps);
    MKSTEMP_BODY(real_mkstemps(tmpl, suffixlen), tmpl);
}

EXPORT int mkostemps(char *tmpl, int suffixlen, int flags) {
    REAL(mkostemps);
    MKSTEMP_BODY(real_mkostemps(tmpl, suffixlen, flags), tmpl);
}

/* FILE* and DIR* creators: the descriptor is read back from the stream. */
#define STREAM_BODY(type, call, getfd, kind, path)           \
    struct lks_header *h = enter();                           \
    if (!h) return call;                                      \
    type s = call;                                            \
    int err = errno;                                          \
    fdt_created(h, s ? getfd(s) : -1, err, kind, path, 0);    \
    leave();                                                  \
    errno = err;                                              \
    return s

EXPORT FILE *fopen(const char *path, const char *mode) {
    REAL_PTR(fopen);
    STREAM_BODY(FILE *, real_fopen(path, mode), fileno, LKS_KIND_FILE, path);
}

EXPORT FILE *fopen64(const char *path, const char *mode) {
    REAL_PTR(fopen64);
    STREAM_BODY(FILE *, real_fopen64(path, mode), fileno, LKS_KIND_FILE, path);
}

EXPORT FILE *tmpfile(void) {
    REAL_PTR(tmpfile);
    STREAM_BODY(FILE *, real_tmpfile(), fileno, LKS_KIND_FILE, NULL);
}

EXPORT FILE *tmpfile64(void) {
    REAL_PTR(tmpfile64);
    STREAM_BODY(FILE *, real_tmpfile64(), fileno, LKS_KIND_FILE, NULL);
}

EXPORT FILE *popen(const char *command, const char *type) {
    REAL_PTR(popen);
    STREAM_BODY(FILE *, real_popen(command, type), fileno, LKS_KIND_PIPE, NULL);
}

EXPORT DIR *opendir(const char *path) {
    REAL_PTR(opendir);
    STREAM_BODY(DIR *, real_opendir(path), dirfd, LKS_KIND_DIR, path);
}

/* freopen closes the stream's descriptor and opens another. */
#define FREOPEN_BODY(call, path, stream)                         \
    struct lks_header *h = enter();                              \
    if (!h) return call;                                         \
    int oldfd = stream ? fileno(stream) : -1;                    \
    struct lks_fd taken = fdt_close_begin(h, oldfd);             \
    FILE *s = call;                                              \
    int err = errno;                                             \
    fdt_close_done(h, oldfd, taken, 1);                          \
    if (path) fdt_created(h, s ? fileno(s) : -1, err, LKS_KIND_FILE, path, 0); \
    else if (s) /* same file, new mode: it keeps its subsystem */ \
        fdt_adopt(h, fileno(s), taken.in_use ? taken.subsys : -1, 0); \
    leave();                                                     \
    errno = err;                                                 \
    return s

EXPORT FILE *freopen(const char *path, const char *mode, FILE *stream) {
    REAL_PTR(freopen);
    FREOPEN_BODY(real_freopen(path, mode, stream), path, stream);
}

EXPORT FILE *freopen64(const char *path, const char *mode, FILE *stream) {
    REAL_PTR(freopen64);
    FREOPEN_BODY(real_freopen64(path, mode, stream), path, stream);
}

/* fdopen wraps an existing descriptor: nothing new, unless we never saw it. */
EXPORT FILE *fdopen(int fd, const char *mode) {
    REAL_PTR(fdopen);
    struct lks_header *h = enter();
    if (!h) return real_fdopen(fd, mode);
    FILE *s = real_fdopen(fd, mode);
    int err = errno;
    if (s && fd >= 0 && (uint32_t)fd < h->fds_cap && !lks_fd_table(h)[fd].in_use)
        fdt_adopt(h, fd, -1, 0);
    leave();
    errno = err;
    return s;
}

/* Closers of streams: take the entry first, so a concurrent open that gets
 * the same number is never confused with this one. */
#define STREAM_CLOSE_BODY(call, getfd, stream)            \
    struct lks_header *h = enter();                       \
    if (!h) return call;                                  \
    int fd = getfd(stream);                               \
    struct lks_fd taken = fdt_close_begin(h, fd);         \
    int ret = call;                                       \
    int err = errno;                                      \
    fdt_close_done(h, fd, taken, fd >= 0);                \
    leave();                                              \
    errno = err;                                          \
    return ret

EXPORT int fclose(FILE *stream) {
    REAL(fclose);
    STREAM_CLOSE_BODY(real_fclose(stream), fileno, stream);
}

EXPORT int pclose(FILE *stream) {
    REAL(pclose);
    STREAM_CLOSE_BODY(real_pclose(stream), fileno, stream);
}

EXPORT int closedir(DIR *dir) {
    REAL(closedir);
    STREAM_CLOSE_BODY(real_closedir(dir), dirfd, dir);
}

/* ---- sockets ---- */

EXPORT int socket(int domain, int type, int protocol) {
    REAL(socket);
    struct lks_header *h = enter();
    if (!h) return own_fd(real_socket(domain, type, protocol));
    int fd = real_socket(domain, type, protocol);
    int err = errno;
    fdt_created(h, fd, err, socket_kind(domain), NULL, 0);
    leave();
    errno = err;
    return fd;
}

EXPORT int socketpair(int domain, int type, int protocol, int sv[2]) {
    REAL(socketpair);
    struct lks_header *h = enter();
    if (!h) return real_socketpair(domain, type, protocol, sv);
    int ret = real_socketpair(domain, type, protocol, sv);
    int err = errno;
    fdt_created_pair(h, sv, ret == 0, err, socket_kind(domain));
    leave();
    errno = err;
    return ret;
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    REAL(accept);
    struct lks_header *h = enter();
    if (!h) return real_accept(fd, addr, len);
    int nfd = real_accept(fd, addr, len);
    int err = errno;
    fdt_accepted(h, fd, nfd, err);
    leave();
    errno = err;
    return nfd;
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    REAL(accept4);
    struct lks_header *h = enter();
    if (!h) return real_accept4(fd, addr, len, flags);
    int nfd = real_accept4(fd, addr, len, flags);
    int err = errno;
    fdt_accepted(h, fd, nfd, err);
    leave();
    errno = err;
    return nfd;
}

/* A message can carry descriptors (SCM_RIGHTS) only into a control buffer
 * with room for one; most receives have none and pass straight through. */
static int room_for_rights(const struct msghdr *msg) {
    return msg && msg->msg_control && msg->msg_controllen >= CMSG_LEN(sizeof(int));
}

static int has_rights(struct msghdr *msg) {
    if (!room_for_rights(msg)) return 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) return 1;
    return 0;
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
    REAL(recvmsg);
    if (!room_for_rights(msg)) return real_recvmsg(fd, msg, flags);
    struct lks_header *h = enter();
    if (!h) return real_recvmsg(fd, msg, flags);
    ssize_t ret = real_recvmsg(fd, msg, flags);
    int err = errno;
    if (ret >= 0 && has_rights(msg)) fdt_received(h, msg);
    leave();
    errno = err;
    return ret;
}

EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
                    struct timespec *timeout) {
    REAL(recvmmsg);
    struct lks_header *h = enter();
    if (!h) return real_recvmmsg(fd, vec, vlen, flags, timeout);
    int ret = real_recvmmsg(fd, vec, vlen, flags, timeout);
    int err = errno;
    for (int i = 0; i < ret; i++)
        if (has_rights(&vec[i].msg_hdr)) fdt_received(h, &vec[i].msg_hdr);
    leave();
    errno = err;
    return ret;
}

/* connect and bind create nothing, but tell us the port that classifies. */
EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    REAL(connect);
    struct lks_header *h = enter();
    if (!h) return real_connect(fd, addr, len);
    int ret = real_connect(fd, addr, len);
    int err = errno;
    if ((ret == 0 || err == EINPROGRESS) && addr && len >= sizeof(sa_family_t))
        fdt_set_port(h, fd, sockaddr_port(addr), 0);
    leave();
    errno = err;
    return ret;
}

EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    REAL(bind);
    struct lks_header *h = enter();
    if (!h) return real_bind(fd, addr, len);
    int ret = real_bind(fd, addr, len);
    int err = errno;
    if (ret == 0 && addr && len >= sizeof(sa_family_t))
        fdt_set_port(h, fd, sockaddr_port(addr), 1);
    leave();
    errno = err;
    return ret;
}

/* ---- pipes and other kernel objects ---- */

EXPORT int pipe(int fds[2]) {
    REAL(pipe);
    struct lks_header *h = enter();
    if (!h) return own_pair(real_pipe(fds), fds);
    int ret = real_pipe(fds);
    int err = errno;
    fdt_created_pair(h, fds, ret == 0, err, LKS_KIND_PIPE);
    leave();
    errno = err;
    return ret;
}

EXPORT int pipe2(int fds[2], int flags) {
    REAL(pipe2);
    struct lks_header *h = enter();
    if (!h) return own_pair(real_pipe2(fds, flags), fds);
    int ret = real_pipe2(fds, flags);
    int err = errno;
    fdt_created_pair(h, fds, ret == 0, err, LKS_KIND_PIPE);
    leave();
    errno = err;
    return ret;
}

/* Creators that return one descriptor of a fixed kind. */
#define SIMPLE_BODY(call, kind)                   \
    struct lks_header *h = enter();               \
    if (!h) return call;                          \
    int newfd = call;                                \
    int err = errno;                              \
    fdt_created(h, newfd, err, kind, NULL, 0);       \
    leave();                                      \
    errno = err;                                  \
    return newfd

EXPORT int epoll_create(int size) {
    REAL(epoll_create);
    SIMPLE_BODY(real_epoll_create(size), LKS_KIND_EPOLL);
}

EXPORT int epoll_create1(int flags) {
    REAL(epoll_create1);
    SIMPLE_BODY(real_epoll_create1(flags), LKS_KIND_EPOLL);
}

EXPORT int eventfd(unsigned int initval, int flags) {
    REAL(eventfd);
    SIMPLE_BODY(real_eventfd(initval, flags), LKS_KIND_EVENTFD);
}

EXPORT int timerfd_create(int clockid, int flags) {
    REAL(timerfd_create);
    SIMPLE_BODY(real_timerfd_create(clockid, flags), LKS_KIND_TIMERFD);
}

EXPORT int inotify_init(void) {
    REAL(inotify_init);
    SIMPLE_BODY(real_inotify_init(), LKS_KIND_INOTIFY);
}

EXPORT int inotify_init1(int flags) {
    REAL(inotify_init1);
    SIMPLE_BODY(real_inotify_init1(flags), LKS_KIND_INOTIFY);
}

EXPORT int memfd_create(const char *name, unsigned int flags) {
    REAL(memfd_create);
    SIMPLE_BODY(real_memfd_create(name, flags), LKS_KIND_MEMFD);
}

/* signalfd(-1, ...) creates; signalfd(fd, ...) only changes the mask. */
EXPORT int signalfd(int fd, const sigset_t *mask, int flags) {
    REAL(signalfd);
    if (fd != -1) return real_signalfd(fd, mask, flags);
    SIMPLE_BODY(real_signalfd(fd, mask, flags), LKS_KIND_SIGNALFD);
}

/* ---- duplicates ---- */

EXPORT int dup(int oldfd) {
    REAL(dup);
    struct lks_header *h = enter();
    if (!h) return real_dup(oldfd);
    int fd = real_dup(oldfd);
    int err = errno;
    fdt_duplicated(h, oldfd, fd, err);
    leave();
    errno = err;
    return fd;
}

#define DUP2_BODY(call, oldfd, newfd)                        \
    struct lks_header *h = enter();                          \
    if (!h) return call;                                     \
    int fd = call;                                           \
    int err = errno;                                         \
    if (fd < 0 || oldfd != newfd) fdt_duplicated(h, oldfd, fd, err); \
    leave();                                                 \
    errno = err;                                             \
    return fd

EXPORT int dup2(int oldfd, int newfd) {
    REAL(dup2);
    DUP2_BODY(real_dup2(oldfd, newfd), oldfd, newfd);
}

EXPORT int dup3(int oldfd, int newfd, int flags) {
    REAL(dup3);
    DUP2_BODY(real_dup3(oldfd, newfd, flags), oldfd, newfd);
}

/* fcntl's third argument is an int or a pointer; forwarding it as a pointer
 * passes either unchanged on this ABI. */
#define FCNTL_BODY(real, fd, cmd)                                         \
    va_list ap;                                                           \
    va_start(ap, cmd);                                                    \
    void *arg = va_arg(ap, void *);                                       \
    va_end(ap);                                                           \
    if (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC) return real(fd, cmd, arg); \
    struct lks_header *h = enter();                                       \
    if (!h) return real(fd, cmd, arg);                                    \
    int nfd = real(fd, cmd, arg);                                         \
    int err = errno;                                                      \
    fdt_duplicated(h, fd, nfd, err);                                      \
    leave();                                                              \
    errno = err;                                                          \
    return nfd

EXPORT int fcntl(int fd, int cmd, ...) {
    REAL(fcntl);
    FCNTL_BODY(real_fcntl, fd, cmd);
}

int fcntl64(int fd, int cmd, ...);
EXPORT int fcntl64(int fd, int cmd, ...) {
    REAL(fcntl64);
    FCNTL_BODY(real_fcntl64, fd, cmd);
}

/* ---- closing ---- */

EXPORT int close(int fd) {
    REAL(close);
    struct lks_header *h = enter();
    if (!h) {
        /* Inside a hook: a library of ours closing its own descriptor, or one
         * of the program's (libunwind re-opening a pipe the program closed). */
        h = in_our_hook() ? lks_trace_seg() : NULL;
        if (!h) return real_close(fd);
        if (fdt_is_own(fd)) {
            fdt_own_remove(fd);
            return real_close(fd);
        }
        struct lks_fd taken = fdt_close_begin(h, fd);
        int ret = real_close(fd);
        int err = errno;
        fdt_close_done(h, fd, taken, ret == 0 || err != EBADF);
        errno = err;
        return ret;
    }
    struct lks_fd taken = fdt_close_begin(h, fd);
    int ret = real_close(fd);
    int err = errno;
    /* Linux frees the descriptor even when close reports EINTR or EIO. */
    fdt_close_done(h, fd, taken, ret == 0 || err != EBADF);
    leave();
    errno = err;
    return ret;
}

EXPORT int close_range(unsigned int first, unsigned int last, int flags) {
    REAL(close_range);
    struct lks_header *h = enter();
    if (!h) return real_close_range(first, last, flags);
    int ret = real_close_range(first, last, flags);
    int err = errno;
    if (ret == 0 && !(flags & CLOSE_RANGE_CLOEXEC)) fdt_close_range(h, first, last);
    leave();
    errno = err;
    return ret;
}

EXPORT void closefrom(int lowfd) {
    REAL_OR(closefrom, );
    struct lks_header *h = enter();
    if (!h) {
        real_closefrom(lowfd);
        return;
    }
    real_closefrom(lowfd);
    if (lowfd >= 0) fdt_close_range(h, (unsigned)lowfd, ~0u);
    leave();
}

/* ---- the descriptor limit, for headroom ---- */

static void note_nofile_limit(struct lks_header *h) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        h->rlimit_nofile_cur = rl.rlim_cur;
        h->rlimit_nofile_max = rl.rlim_max;
    }
}

#define RLIMIT_BODY(call, resource)                     \
    struct lks_header *h = enter();                     \
    if (!h) return call;                                \
    int ret = call;                                     \
    int err = errno;                                    \
    if (ret == 0 && (int)(resource) == RLIMIT_NOFILE) note_nofile_limit(h); \
    leave();                                            \
    errno = err;                                        \
    return ret

EXPORT int setrlimit(__rlimit_resource_t resource, const struct rlimit *rl) {
    REAL(setrlimit);
    RLIMIT_BODY(real_setrlimit(resource, rl), resource);
}

EXPORT int setrlimit64(__rlimit_resource_t resource, const struct rlimit64 *rl) {
    REAL(setrlimit64);
    RLIMIT_BODY(real_setrlimit64(resource, rl), resource);
}

EXPORT int prlimit(pid_t pid, __rlimit_resource_t resource, const struct rlimit *nl,
                   struct rlimit *ol) {
    REAL(prlimit);
    RLIMIT_BODY(real_prlimit(pid, resource, nl, ol), pid == 0 ? resource : RLIM_NLIMITS);
}

EXPORT int prlimit64(pid_t pid, __rlimit_resource_t resource, const struct rlimit64 *nl,
                     struct rlimit64 *ol) {
    REAL(prlimit64);
    RLIMIT_BODY(real_prlimit64(pid, resource, nl, ol), pid == 0 ? resource : RLIM_NLIMITS);
}

/* ---- vfork ----
 * The child of vfork shares our memory, segment and this thread's TLS until
 * it execs or exits: its closes (Python's subprocess closes every descriptor
 * it does not pass on) must not take the parent's entries. A C wrapper
 * cannot return twice from one stack frame, so this is glibc's own vfork
 * (the return address kept in a register, not on the shared stack) plus:
 * the child adds LKS_IN_VFORK_CHILD to lks_in_hook, so every hook forwards;
 * the parent, resumed, puts back the value it had. x86-64 only; elsewhere
 * libc's vfork runs and the limit is documented. */
#if defined(__x86_64__)
__attribute__((used, visibility("hidden"))) long lks_vfork_failed(int err) {
    errno = err;
    return -1;
}

__asm__(".text\n"
        ".globl vfork\n"
        ".type vfork, @function\n"
        "vfork:\n"
        "    movq lks_in_hook@GOTTPOFF(%rip), %rdx\n"
        "    movl %fs:(%rdx), %esi\n"     /* the guard before, kept for the parent */
        "    popq %rdi\n"                 /* return address, out of the shared stack */
        "    movl $58, %eax\n"            /* SYS_vfork */
        "    syscall\n"
        "    pushq %rdi\n"
        "    testq %rax, %rax\n"
        "    jnz 1f\n"
        "    addl $0x10000, %fs:(%rdx)\n" /* child: LKS_IN_VFORK_CHILD */
        "    ret\n"
        "1:  movl %esi, %fs:(%rdx)\n"     /* parent: the child's changes undone */
        "    cmpq $-4095, %rax\n"
        "    jae 2f\n"
        "    ret\n"
        "2:  negl %eax\n"
        "    movl %eax, %edi\n"
        "    jmp lks_vfork_failed\n"
        ".size vfork, .-vfork\n");
_Static_assert(LKS_IN_VFORK_CHILD == 0x10000, "the vfork stub adds this constant");
#endif

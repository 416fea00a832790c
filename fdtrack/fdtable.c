/* fdtable.c - bookkeeping behind every fdtrack hook: classify a new
 * descriptor, remember it in the segment, move it between subsystems when
 * connect() reveals its peer, and count its close.
 *
 * Entries are written with a per-entry sequence number (odd while writing)
 * so readers copying the table can skip torn entries.
 */
#define _GNU_SOURCE
#include "fdtable.h"


#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pystack.h"
#include "trace.h"

#define OWN_MAX 16
static _Atomic int own_fds[OWN_MAX]; /* fd + 1; 0 = free slot */
static _Atomic unsigned own_slots;    /* bit i: own_fds[i] in use */

static inline struct lks_subsys *subsys_of(struct lks_header *h, int id) {
    return &lks_subsys_table(h)[id];
}

static struct lks_fd entry_take(struct lks_header *h, int fd);
static void count_closed(struct lks_header *h, const struct lks_fd *e);

static inline void hiwater(struct lks_header *h, int fd) {
    int cur = atomic_load_explicit(&h->fd_hiwater, memory_order_relaxed);
    while (fd + 1 > cur &&
           !atomic_compare_exchange_weak_explicit(&h->fd_hiwater, &cur, fd + 1,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Writes an entry under its sequence number. */
static void entry_write(struct lks_fd *e, int kind, int subsys, uint32_t site, unsigned port,
                        uint16_t flags, int64_t created, uint64_t inode) {
    uint32_t seq = atomic_load_explicit(&e->seq, memory_order_relaxed);
    atomic_store_explicit(&e->seq, seq | 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    e->kind = (uint8_t)kind;
    e->subsys = (uint16_t)subsys;
    e->site = site;
    e->port = (uint16_t)port;
    e->flags = flags;
    e->created_mono_ns = created;
    e->inode = inode;
    e->in_use = 1;
    atomic_store_explicit(&e->seq, (seq | 1) + 1, memory_order_release);
}

/* Stores an entry and counts it open in its subsystem and site. A number we
 * still hold is being created again: its predecessor was closed where no hook
 * saw it (raw syscall, libuv), so it is closed out here and counted. Entries
 * inherited through fork count in the subsystem only, never in a site: the
 * site's creations were the parent's. */
static void entry_put(struct lks_header *h, int fd, int kind, int subsys, uint32_t site,
                      unsigned port, uint16_t flags, int64_t created, uint64_t inode) {
    if (fd < 0) return;
    if ((uint32_t)fd >= h->fds_cap) {
        atomic_fetch_add_explicit(&h->fd_untracked, 1, memory_order_relaxed);
        return;
    }
    fdt_own_remove(fd); /* the program closed our descriptor and got its number */
    struct lks_fd *e = &lks_fd_table(h)[fd];
    if (e->in_use) {
        struct lks_fd prev = entry_take(h, fd);
        if (prev.in_use) {
            count_closed(h, &prev);
            atomic_fetch_add_explicit(&h->fd_closed_unseen, 1, memory_order_relaxed);
        }
    }
    entry_write(e, kind, subsys, site, port, flags, created, inode);
    hiwater(h, fd);

    struct lks_subsys *ss = subsys_of(h, subsys);
    atomic_fetch_add_explicit(&ss->fd_open, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ss->fd_opened, 1, memory_order_relaxed);
    struct lks_site *s = flags & LKS_FD_FORKED ? NULL : lks_site_get(site);
    if (s) {
        atomic_fetch_add_explicit(&s->fd_open, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->fd_opened, 1, memory_order_relaxed);
    }
}

/* The fields of an entry, without its sequence number. */
static struct lks_fd entry_copy(const struct lks_fd *e) {
    struct lks_fd out;
    memset(&out, 0, sizeof out);
    out.in_use = e->in_use;
    out.kind = e->kind;
    out.subsys = e->subsys;
    out.site = e->site;
    out.port = e->port;
    out.flags = e->flags;
    out.created_mono_ns = e->created_mono_ns;
    out.inode = e->inode;
    return out;
}

/* Removes an entry; returns a copy (in_use 0 if there was none). */
static struct lks_fd entry_take(struct lks_header *h, int fd) {
    struct lks_fd out;
    memset(&out, 0, sizeof out);
    if (fd < 0 || (uint32_t)fd >= h->fds_cap) return out;
    struct lks_fd *e = &lks_fd_table(h)[fd];
    if (!e->in_use) return out;
    uint32_t seq = atomic_load_explicit(&e->seq, memory_order_relaxed);
    atomic_store_explicit(&e->seq, seq | 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    out = entry_copy(e);
    e->in_use = 0;
    atomic_store_explicit(&e->seq, (seq | 1) + 1, memory_order_release);
    return out;
}

/* A socket's inode, so a reader can ask the kernel (sock_diag) about it. */
static uint64_t socket_inode(int fd, int kind) {
    struct stat st;
    if (kind != LKS_KIND_SOCKET && kind != LKS_KIND_UNIX && kind != LKS_KIND_OTHER_SOCKET) return 0;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static void count_closed(struct lks_header *h, const struct lks_fd *e) {
    struct lks_subsys *ss = subsys_of(h, e->subsys);
    atomic_fetch_sub_explicit(&ss->fd_open, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ss->fd_closed, 1, memory_order_relaxed);
    struct lks_site *s = e->flags & LKS_FD_FORKED ? NULL : lks_site_get(e->site);
    if (s) atomic_fetch_sub_explicit(&s->fd_open, 1, memory_order_relaxed);
}

/* At the descriptor limit, who holds the descriptors matters more than who
 * failed (seed 002): keep a snapshot of every subsystem's open count. */
static void snapshot_holders(struct lks_header *h) {
    struct lks_subsys *ss = lks_subsys_table(h);
    uint32_t n = atomic_load_explicit(&h->subsys_used, memory_order_relaxed);
    for (uint32_t i = 0; i < n && i < LKS_MAX_SUBSYS; i++)
        atomic_store_explicit(&ss[i].fd_open_at_limit,
                              atomic_load_explicit(&ss[i].fd_open, memory_order_relaxed),
                              memory_order_relaxed);
    atomic_store_explicit(&h->fd_limit_hit_mono_ns, lks_now_ns(), memory_order_release);
}

static void count_failed(struct lks_header *h, int subsys, uint32_t site, int err) {
    if (err == EMFILE || err == ENFILE) snapshot_holders(h);
    atomic_fetch_add_explicit(&subsys_of(h, subsys)->fd_failed[lks_errno_slot(err)], 1,
                              memory_order_relaxed);
    struct lks_site *s = lks_site_get(site);
    if (s) atomic_fetch_add_explicit(&s->fd_failed, 1, memory_order_relaxed);
}

/* The call site of the hook's caller and its subsystem. Inlined into the
 * noinline fdt_* entry points, which the hooks call directly: the frame
 * above is the hook's (the shims keep frame pointers), and its caller's
 * return address and stack pointer start the walk (lks_stack_walk). */
struct origin {
    uint64_t hash, bits;
    uint64_t frames[LKS_MAX_FRAMES];
    int n;
    struct lks_pystack py; /* py.n > 0: a Python thread (pystack.h) */
};

static inline __attribute__((always_inline)) void origin_capture(struct origin *o) {
    const uintptr_t *hook_fp = *(const uintptr_t *const *)__builtin_frame_address(0);
    o->n = lks_stack_walk(hook_fp[1], (uintptr_t)(hook_fp + 2), o->frames, LKS_MAX_FRAMES);
    o->hash = lks_stack_hash(o->frames, o->n);
    o->bits = lks_stack_rule_bits(o->hash, o->frames, o->n);
    if (lks_pystack_capture(&o->py, LKS_PY_MAX_FRAMES)) {
        /* Keyed by the native leaf (up to the interpreter) and the Python
         * stack, not by the eval loop's C frames. */
        int leaf = 0;
        while (leaf < o->n && !lks_py_in_interpreter(o->frames[leaf])) leaf++;
        o->hash = lks_pystack_key(lks_stack_hash(o->frames, leaf < o->n ? leaf + 1 : o->n), &o->py);
        o->bits |= lks_pystack_rule_bits(&o->py);
    }
}

/* The site of an origin in subsys: merged Python + native, or native. */
static uint32_t origin_site(const struct origin *o, int subsys) {
    if (o->py.n) return lks_pystack_site(o->hash, o->frames, o->n, &o->py, o->bits, subsys);
    return lks_site_intern(o->hash, o->frames, o->n, o->bits, subsys);
}

/* Subject -> subsystem for subjects with a path: a program opening the same
 * files again and again pays one hash of the path instead of a glob match
 * per rule (a third of fdtrack's cost on file churn). Direct-mapped, one
 * word per entry holding the top 56 bits of the subject's 64-bit hash and
 * the subsystem, so a racing writer can never pair one subject's hash with
 * another's answer; two subjects agreeing on all 64 bits would share one. */
#define CLASS_CACHE_BITS 12
_Static_assert(LKS_MAX_SUBSYS < 255, "a subsystem fits the cache word's low byte");
static _Atomic uint64_t class_cache[1u << CLASS_CACHE_BITS];

static uint64_t subject_hash(int kind, const char *path, unsigned port, uint64_t bits) {
    uint64_t h = 0xcbf29ce484222325ull ^ ((uint64_t)kind << 32 | port);
    for (const unsigned char *c = (const unsigned char *)path; *c; c++)
        h = (h ^ *c) * 0x100000001b3ull;
    h ^= bits * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 31);
}

static int classify(const struct origin *o, int kind, const char *path, unsigned port) {
    struct lks_subject subj = {.kind = kind, .port = port, .path = path, .stack_bits = o->bits};
    if (!path) return lks_rules_classify(lks_trace_rules(), &subj);
    uint64_t hash = subject_hash(kind, path, port, o->bits);
    _Atomic uint64_t *slot = &class_cache[hash & ((1u << CLASS_CACHE_BITS) - 1)];
    uint64_t cached = atomic_load_explicit(slot, memory_order_relaxed);
    if (cached && (cached >> 8) == (hash >> 8)) return (int)(cached & 0xff) - 1;
    int subsys = lks_rules_classify(lks_trace_rules(), &subj);
    atomic_store_explicit(slot, (hash & ~0xffull) | (uint64_t)(subsys + 1), memory_order_relaxed);
    return subsys;
}

/* Absolute form of a path: as given, or what the kernel says fd points at. */
static const char *absolute_path(int fd, const char *path, char *buf, size_t len) {
    if (!path || path[0] == '/') return path;
    if (fd < 0) return path;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, len - 1);
    if (n <= 0) return path;
    buf[n] = 0;
    return buf;
}

__attribute__((noinline)) void fdt_created(struct lks_header *h, int fd, int err, int kind,
                                           const char *path, unsigned port) {
    struct origin o;
    char abs[512];
    origin_capture(&o);
    path = absolute_path(fd, path, abs, sizeof abs);
    if (kind == LKS_KIND_FILE && path && strncmp(path, "/dev/", 5) == 0 &&
        strncmp(path, "/dev/shm/", 9) != 0)
        kind = LKS_KIND_DEVICE;
    int subsys = classify(&o, kind, path, port);
    uint32_t site = origin_site(&o, subsys);
    if (fd < 0) {
        count_failed(h, subsys, site, err);
        return;
    }
    entry_put(h, fd, kind, subsys, site, port, 0, lks_now_ns(), socket_inode(fd, kind));
}

__attribute__((noinline)) void fdt_created_pair(struct lks_header *h, const int fds[2], int ok,
                                                int err, int kind) {
    struct origin o;
    origin_capture(&o);
    int subsys = classify(&o, kind, NULL, 0);
    uint32_t site = origin_site(&o, subsys);
    if (!ok) {
        count_failed(h, subsys, site, err);
        return;
    }
    int64_t now = lks_now_ns();
    entry_put(h, fds[0], kind, subsys, site, 0, LKS_FD_PAIR, now, socket_inode(fds[0], kind));
    entry_put(h, fds[1], kind, subsys, site, 0, LKS_FD_PAIR, now, socket_inode(fds[1], kind));
}

static struct lks_fd entry_peek(struct lks_header *h, int fd) {
    struct lks_fd out;
    memset(&out, 0, sizeof out);
    if (fd >= 0 && (uint32_t)fd < h->fds_cap) out = entry_copy(&lks_fd_table(h)[fd]);
    return out;
}

__attribute__((noinline)) void fdt_duplicated(struct lks_header *h, int oldfd, int newfd,
                                              int err) {
    struct origin o;
    origin_capture(&o);
    struct lks_fd orig = entry_peek(h, oldfd);
    int subsys = orig.in_use ? orig.subsys : classify(&o, LKS_KIND_UNKNOWN, NULL, 0);
    uint32_t site = origin_site(&o, subsys);
    if (newfd < 0) {
        count_failed(h, subsys, site, err);
        return;
    }
    struct lks_fd prev = entry_take(h, newfd); /* dup2 onto an open descriptor */
    if (prev.in_use) count_closed(h, &prev);
    entry_put(h, newfd, orig.in_use ? orig.kind : LKS_KIND_UNKNOWN, subsys, site, orig.port,
              orig.flags & LKS_FD_LISTENER, lks_now_ns(), orig.inode);
}

__attribute__((noinline)) void fdt_accepted(struct lks_header *h, int listener, int fd,
                                            int err) {
    struct origin o;
    origin_capture(&o);
    struct lks_fd l = entry_peek(h, listener);
    int kind = l.in_use && l.kind == LKS_KIND_UNIX ? LKS_KIND_UNIX : LKS_KIND_SOCKET;
    int subsys = classify(&o, kind, NULL, l.port);
    uint32_t site = origin_site(&o, subsys);
    if (fd < 0) {
        count_failed(h, subsys, site, err);
        return;
    }
    entry_put(h, fd, kind, subsys, site, l.port, 0, lks_now_ns(), socket_inode(fd, kind));
}

/* A close of the shim's own descriptor (a daemon's close-all loop takes
 * libunwind's pipe with the rest) is marked, so it is not counted as a close
 * of an unknown program descriptor. */
struct lks_fd fdt_close_begin(struct lks_header *h, int fd) {
    int own = fdt_own_remove(fd);
    struct lks_fd taken = entry_take(h, fd);
    if (own && !taken.in_use) taken.flags = FDT_TAKEN_OWN;
    return taken;
}

void fdt_close_done(struct lks_header *h, int fd, struct lks_fd taken, int ok) {
    if (taken.in_use) {
        count_closed(h, &taken);
        if (!ok) atomic_fetch_add_explicit(&h->fd_stale, 1, memory_order_relaxed);
    } else if (ok && !(taken.flags & FDT_TAKEN_OWN)) {
        if (fd >= 0 && (uint32_t)fd >= h->fds_cap)
            atomic_fetch_sub_explicit(&h->fd_untracked, 1, memory_order_relaxed);
        else
            atomic_fetch_add_explicit(&h->fd_unknown_close, 1, memory_order_relaxed);
    }
}

void fdt_close_range(struct lks_header *h, unsigned first, unsigned last) {
    for (int i = 0; i < OWN_MAX; i++) {
        int fd = atomic_load(&own_fds[i]) - 1;
        if (fd >= 0 && (unsigned)fd >= first && (unsigned)fd <= last) fdt_own_remove(fd);
    }
    unsigned top = (unsigned)atomic_load(&h->fd_hiwater);
    if (top > h->fds_cap) top = h->fds_cap;
    for (unsigned fd = first; fd < top && fd <= last; fd++) {
        struct lks_fd e = entry_take(h, (int)fd);
        if (e.in_use) count_closed(h, &e);
    }
}

/* Moves an open descriptor to the subsystem its new port selects. */
void fdt_set_port(struct lks_header *h, int fd, unsigned port, int listener) {
    if (fd < 0 || (uint32_t)fd >= h->fds_cap || port == 0) return;
    struct lks_fd *e = &lks_fd_table(h)[fd];
    if (!e->in_use) return;
    struct lks_site *site = lks_site_get(e->site);
    uint64_t bits = 0;
    int ready = site && atomic_load_explicit(&site->ready, memory_order_acquire);
    if (ready) bits = site->stack_rule_bits;
    struct lks_subject subj = {.kind = e->kind, .port = port, .stack_bits = bits};
    int subsys = lks_rules_classify(lks_trace_rules(), &subj);
    struct lks_fd old = entry_take(h, fd);
    if (!old.in_use) return;
    uint32_t new_site = old.site;
    if (subsys != old.subsys) {
        new_site = ready ? lks_site_resubsys(old.site, subsys) : 0;
        struct lks_subsys *from = subsys_of(h, old.subsys);
        atomic_fetch_sub_explicit(&from->fd_open, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&from->fd_opened, 1, memory_order_relaxed);
        if (site && !(old.flags & LKS_FD_FORKED)) {
            atomic_fetch_sub_explicit(&site->fd_open, 1, memory_order_relaxed);
            atomic_fetch_sub_explicit(&site->fd_opened, 1, memory_order_relaxed);
        }
        entry_put(h, fd, old.kind, subsys, new_site, port,
                  (uint16_t)(old.flags | (listener ? LKS_FD_LISTENER : 0)), old.created_mono_ns,
                  old.inode);
        return;
    }
    /* Same subsystem: restore the entry without counting it again. */
    entry_write(&lks_fd_table(h)[fd], old.kind, old.subsys, old.site, port,
                (uint16_t)(old.flags | (listener ? LKS_FD_LISTENER : 0)), old.created_mono_ns,
                old.inode);
}

/* Kind, path and port of an existing descriptor, from the kernel. */
static int probe_fd(int fd, char *path, size_t len, unsigned *port) {
    char link[64];
    *port = 0;
    path[0] = 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, len - 1);
    if (n <= 0) return LKS_KIND_UNKNOWN;
    path[n] = 0;
    if (strncmp(path, "socket:", 7) == 0) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int kind = LKS_KIND_OTHER_SOCKET;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_UNIX) return LKS_KIND_UNIX;
            if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
                kind = LKS_KIND_SOCKET;
                struct sockaddr_storage peer;
                socklen_t pl = sizeof peer;
                const struct sockaddr_storage *use =
                    getpeername(fd, (struct sockaddr *)&peer, &pl) == 0 ? &peer : &ss;
                *port = use->ss_family == AF_INET
                            ? ntohs(((const struct sockaddr_in *)use)->sin_port)
                            : ntohs(((const struct sockaddr_in6 *)use)->sin6_port);
            }
        }
        return kind;
    }
    if (strncmp(path, "pipe:", 5) == 0) return LKS_KIND_PIPE;
    if (strncmp(path, "anon_inode:", 11) == 0) {
        const char *what = path + 11;
        if (strstr(what, "eventpoll")) return LKS_KIND_EPOLL;
        if (strstr(what, "eventfd")) return LKS_KIND_EVENTFD;
        if (strstr(what, "timerfd")) return LKS_KIND_TIMERFD;
        if (strstr(what, "signalfd")) return LKS_KIND_SIGNALFD;
        if (strstr(what, "inotify")) return LKS_KIND_INOTIFY;
        return LKS_KIND_UNKNOWN;
    }
    if (strncmp(path, "/memfd:", 7) == 0) return LKS_KIND_MEMFD;
    struct stat st;
    if (fstat(fd, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return LKS_KIND_DIR;
        if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return LKS_KIND_DEVICE;
        if (S_ISFIFO(st.st_mode)) return LKS_KIND_PIPE;
        if (S_ISSOCK(st.st_mode)) return LKS_KIND_UNIX;
    }
    return LKS_KIND_FILE;
}

/* A descriptor passed by another process (multiprocessing's forkserver sends
 * each child its pipes this way) is a creation like any other: without it
 * the receiver's dup and close of it were of a descriptor nobody knew. */
__attribute__((noinline)) void fdt_received(struct lks_header *h, const struct msghdr *msg) {
    struct origin o;
    origin_capture(&o);
    int64_t now = lks_now_ns();
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(c);
        for (size_t i = 0; i < n; i++) {
            int fd;
            char path[512];
            unsigned port;
            memcpy(&fd, data + i * sizeof fd, sizeof fd);
            int kind = probe_fd(fd, path, sizeof path, &port);
            int subsys = classify(&o, kind, path[0] == '/' ? path : NULL, port);
            entry_put(h, fd, kind, subsys, origin_site(&o, subsys), port, 0, now,
                      socket_inode(fd, kind));
        }
    }
}

void fdt_adopt(struct lks_header *h, int fd, int subsys_override, uint16_t flags) {
    char path[512];
    unsigned port;
    int kind = probe_fd(fd, path, sizeof path, &port);
    if (fd <= 2 && (flags & LKS_FD_INHERITED)) kind = LKS_KIND_STDIO;
    int subsys = subsys_override;
    if (subsys < 0) {
        struct lks_subject subj = {.kind = kind, .port = port, .path = path[0] == '/' ? path : NULL};
        subsys = lks_rules_classify(lks_trace_rules(), &subj);
    }
    entry_put(h, fd, kind, subsys, 0, port, flags, lks_now_ns(), socket_inode(fd, kind));
}

void fdt_own_add(int fd) {
    struct lks_header *h = lks_trace_seg();
    for (int i = 0; h && i < OWN_MAX; i++) {
        int zero = 0;
        if (atomic_compare_exchange_strong(&own_fds[i], &zero, fd + 1)) {
            atomic_fetch_or(&own_slots, 1u << i);
            atomic_fetch_add(&h->fd_own, 1);
            return;
        }
    }
}

/* Called on every creation and close: usually two slots to look at.
 * Returns 1 if fd was ours. */
int fdt_own_remove(int fd) {
    unsigned slots = atomic_load_explicit(&own_slots, memory_order_relaxed);
    while (slots) {
        int i = __builtin_ctz(slots);
        slots &= slots - 1;
        int want = fd + 1;
        if (atomic_load_explicit(&own_fds[i], memory_order_relaxed) != want) continue;
        if (atomic_compare_exchange_strong(&own_fds[i], &want, 0)) {
            atomic_fetch_and(&own_slots, ~(1u << i));
            struct lks_header *h = lks_trace_seg();
            if (h) atomic_fetch_sub(&h->fd_own, 1);
            return 1;
        }
    }
    return 0;
}

int fdt_is_own(int fd) {
    unsigned slots = atomic_load_explicit(&own_slots, memory_order_relaxed);
    for (; slots; slots &= slots - 1)
        if (atomic_load_explicit(&own_fds[__builtin_ctz(slots)], memory_order_relaxed) == fd + 1)
            return 1;
    return 0;
}

/* segment.h - the one file format every leakscope producer writes and every
 * consumer reads.
 *
 * One segment per traced process: <dir>/<pid>.seg, mode 0600 in a 0700
 * directory. A producer (the preload shims, or the eBPF loader) is the single
 * writer; counters are atomics so readers need no lock. Records that must be
 * read whole (descriptor entries, sites) are published with a sequence number
 * or a key written last.
 *
 * Contract for readers: never trust the file. lks_segment_load() copies the
 * file into private memory and checks magic, version, sizes and every offset
 * before handing it out; anything else is refused with a message.
 *
 * Layout (offsets are in the header, all 64-byte aligned):
 *   struct lks_header
 *   struct lks_subsys   [LKS_MAX_SUBSYS]
 *   struct lks_module   [LKS_MAX_MODULES]
 *   struct lks_site     [sites_cap]        claimed in order by the traced
 *   struct lks_frame    [frames_cap]       process (a dense prefix); by key
 *                                          under attach
 *   struct lks_strkey   [strkeys_cap]      string interning index
 *   strings             [strings_size]     NUL-terminated, offset 0 is ""
 *   struct lks_fd       [fds_cap]          indexed by descriptor number
 *   heap area           [heap_size bytes]  owned by memtrack (heapseg.h)
 *
 * The file is sparse: a section costs memory only for the pages written, so
 * a short process with a few sites uses a few pages, not the capacities.
 *
 * Sites and frames (docs/CALLSITES.md): a site is a stack of frame ids plus
 * its counters; frames are interned once, apart from sites, and are either a
 * native return address (with its module) or an interpreter frame (code
 * identity + line, function and file names in the string area).
 */
#ifndef LKS_SEGMENT_H
#define LKS_SEGMENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define LKS_MAGIC "LKSSEG\0\1"
#define LKS_VERSION 2

#define LKS_MAX_SUBSYS 48
#define LKS_SUBSYS_NAME 24
#define LKS_MAX_MODULES 256
#define LKS_MODULE_PATH 240
#define LKS_MAX_FRAMES 16
#define LKS_DEFAULT_SITES 16384   /* power of two */
#define LKS_DEFAULT_FRAMES 32768  /* power of two */
#define LKS_DEFAULT_STRKEYS 4096  /* power of two */
#define LKS_DEFAULT_STRINGS (128u << 10)
#define LKS_DEFAULT_FDS 65536
#define LKS_MIN_FDS 1024
#define LKS_MAX_SITES_CAP (1u << 20)
#define LKS_MAX_FDS_CAP (1u << 20)
/* The heap area is memtrack's (heapseg.h): a fixed part plus one word per
 * site. Anything beyond this bound is refused by readers and clamped by
 * lks_segment_create, so a header cannot make a reader map gigabytes. */
#define LKS_HEAP_AREA_MAX(sites_cap) (((uint64_t)1 << 20) + (uint64_t)(sites_cap) * 64)

enum lks_producer { LKS_PRODUCER_PRELOAD = 1, LKS_PRODUCER_EBPF = 2 };

/* Which views a producer fills in (header.features). */
#define LKS_FEATURE_FD 1u
#define LKS_FEATURE_HEAP 2u

/* Open failures are counted per subsystem in these errno slots. */
enum lks_errno_slot {
    LKS_ERR_EMFILE,
    LKS_ERR_ENFILE,
    LKS_ERR_ENOMEM,
    LKS_ERR_EACCES,
    LKS_ERR_ENOENT,
    LKS_ERR_OTHER,
    LKS_ERR_SLOTS
};

/* What a descriptor is, as the kernel sees it. Rules can match on it. */
enum lks_fd_kind {
    LKS_KIND_UNKNOWN,
    LKS_KIND_FILE,
    LKS_KIND_DIR,
    LKS_KIND_PIPE,
    LKS_KIND_SOCKET, /* AF_INET / AF_INET6 */
    LKS_KIND_UNIX,   /* AF_UNIX and socketpair */
    LKS_KIND_OTHER_SOCKET,
    LKS_KIND_EPOLL,
    LKS_KIND_EVENTFD,
    LKS_KIND_TIMERFD,
    LKS_KIND_SIGNALFD,
    LKS_KIND_INOTIFY,
    LKS_KIND_MEMFD,
    LKS_KIND_STDIO,
    LKS_KIND_DEVICE,
    LKS_KIND_COUNT
};

struct lks_header {
    char magic[8];
    uint32_t version;
    uint32_t header_size;
    uint64_t total_size;
    uint32_t producer;
    _Atomic uint32_t features;
    int32_t pid;
    int32_t ppid;
    uint32_t uid;
    uint32_t _pad0;
    uint64_t proc_start_ticks; /* /proc/pid/stat field 22: tells pid reuse apart */
    int64_t start_realtime_ns;
    int64_t start_mono_ns; /* ages: CLOCK_MONOTONIC_COARSE differences */
    char comm[16];
    char role[32];    /* LEAKSCOPE_ROLE, free text */
    char session[40]; /* LEAKSCOPE_SESSION: the `leakscope run` that started us */
    char exe[256];
    uint64_t rlimit_nofile_cur;
    uint64_t rlimit_nofile_max;

    _Atomic uint32_t exited; /* 1 once exit() ran our destructor */
    _Atomic uint32_t kept;   /* 1: `leakscope run --keep` asked to keep it (never swept) */
    _Atomic int64_t exit_realtime_ns;

    /* Reconciliation with /proc/<pid>/fd, done by the writer at exit. */
    _Atomic int64_t fd_unattributed; /* open in the kernel, unknown to the hooks */
    _Atomic int64_t fd_stale;        /* known to the hooks, gone from the kernel */
    _Atomic int64_t fd_untracked;    /* open descriptors >= fds_cap, counted only */
    _Atomic uint64_t fd_unknown_close; /* successful close of an unknown fd */
    _Atomic int32_t fd_hiwater;      /* highest descriptor number seen + 1 */
    _Atomic int32_t fd_own;          /* the shim's own (libunwind's pipe): never counted */
    _Atomic int64_t fd_limit_hit_mono_ns; /* last EMFILE/ENFILE; subsystems' fd_open_at_limit */

    /* Mark/diff: a reader bumps mark_seq (and mark_mono_ns); the writer
     * resets the per-site "since mark" counters when it sees a new value. */
    _Atomic uint64_t mark_seq;
    _Atomic int64_t mark_mono_ns;
    _Atomic uint64_t mark_applied_seq;

    uint64_t subsys_off;
    uint64_t modules_off;
    uint64_t sites_off;
    uint64_t fds_off;
    uint64_t heap_off;
    uint64_t heap_size;
    uint32_t sites_cap;
    uint32_t fds_cap;
    _Atomic uint32_t subsys_used;
    _Atomic uint32_t modules_used;
    _Atomic uint32_t sites_used;
    _Atomic uint32_t sites_dropped; /* 1 once a stack found no slot, even coarse */
    _Atomic uint64_t sites_dropped_events; /* events counted without a site */

    /* Frames and strings (see struct lks_frame). */
    uint64_t frames_off;
    uint64_t strkeys_off;
    uint64_t strings_off;
    uint32_t frames_cap;
    uint32_t strkeys_cap;
    uint32_t strings_size;
    _Atomic uint32_t frames_used;
    _Atomic uint32_t strings_used; /* bytes of the string area in use (>= 1) */
    /* The shims claim sites in order: entries at and past sites_claimed are
     * empty, so readers need not copy them. 0: unknown (another producer's
     * layout), the whole table may be in use. */
    _Atomic uint32_t sites_claimed;
    _Atomic uint64_t frames_dropped;  /* frames stored as 0 (table full) */
    _Atomic uint64_t strings_dropped; /* strings stored as "" (area full) */
    _Atomic uint64_t sites_coarse;    /* sites interned on a shortened stack */
    _Atomic uint64_t sites_recycled;  /* slots reused after their last holder left */

    /* Descriptor truth at the edges (ARCHITECTURE.md, "Edges"). */
    _Atomic uint64_t fd_closed_unseen; /* a number created again while we held it open */
    int32_t forked_from;               /* parent pid if made by fork without exec, else 0 */
    _Atomic uint32_t fd_reconciled;    /* LKS_RECONCILE_*: how the exit reconciliation went */

    /* CPython in this process (core/pyframes.h, docs/PYTHON.md). */
    uint32_t py_version;          /* major << 8 | minor; 0: no CPython found */
    uint32_t py_frames;           /* LKS_PYFRAMES_*: are its frames read */
    _Atomic uint32_t py_alloc;    /* LKS_PYMEM_*: how its objects reach memtrack */
    uint32_t _pad_py;
};

/* header.fd_reconciled */
#define LKS_RECONCILE_NONE 0  /* not (yet) done: live, or ended without exit() */
#define LKS_RECONCILE_PROC 1  /* against a listing of /proc/self/fd */
#define LKS_RECONCILE_PROBE 2 /* no descriptor to spare: each number probed with fcntl */

/* header.py_frames, header.py_alloc */
#define LKS_PYFRAMES_READ 1    /* a known layout: call sites have Python frames */
#define LKS_PYFRAMES_UNKNOWN 2 /* unknown version: native frames only */

#define LKS_PYMEM_NONE 0    /* memtrack not loaded, or no CPython */
#define LKS_PYMEM_WRAPPED 1 /* pymalloc wrapped through PyMem_SetAllocator */
#define LKS_PYMEM_MALLOC 2  /* PYTHONMALLOC=malloc: objects seen as mallocs */
#define LKS_PYMEM_UNSEEN 3  /* another allocator replaced ours: small objects unseen */

/* Per-subsystem counters. Invariant: fd_opened - fd_closed == fd_open. */
struct lks_subsys {
    char name[LKS_SUBSYS_NAME];
    uint32_t _pad;
    _Atomic uint32_t used;
    _Atomic int64_t fd_open;
    _Atomic uint64_t fd_opened;
    _Atomic uint64_t fd_closed;
    _Atomic uint64_t fd_failed[LKS_ERR_SLOTS];
    _Atomic int64_t fd_open_at_limit; /* fd_open when the last EMFILE/ENFILE happened */
    _Atomic int64_t heap_live_bytes;
    _Atomic int64_t heap_live_allocs;
    _Atomic uint64_t heap_alloc_bytes;
    _Atomic uint64_t heap_allocs;
    _Atomic uint64_t heap_frees;
};

/* A shared object that appears on some call stack. */
struct lks_module {
    uint64_t bias; /* link_map l_addr: runtime address - ELF vaddr */
    uint64_t base; /* lowest mapped address */
    char path[LKS_MODULE_PATH];
};

/* A frame of a call stack, interned once per process. key == 0 means empty;
 * the writer claims a slot by storing key, fills it, then sets ready.
 *   native:      key = addr = return address; module = index into modules.
 *   interpreter: key = any hash of (code identity, line) with bit 63 set (no
 *                native address has it); addr = code identity; line; func
 *                and file are offsets into the string area (0 = unknown). */
enum lks_frame_kind { LKS_FRAME_NATIVE = 1, LKS_FRAME_PYTHON = 2 };
#define LKS_FRAME_INTERP_BIT (1ull << 63)

struct lks_frame {
    _Atomic uint64_t key;
    _Atomic uint32_t ready;
    uint8_t kind;    /* enum lks_frame_kind */
    uint8_t _pad;
    uint16_t module; /* native: index into modules, LKS_NO_MODULE unknown */
    uint64_t addr;
    uint32_t line;
    uint32_t func;
    uint32_t file;
    uint32_t _pad2;
};

/* String interning index: hash -> offset in the string area. */
struct lks_strkey {
    _Atomic uint64_t hash; /* 0 empty */
    _Atomic uint32_t off;  /* 0 until the string is written */
    uint32_t len;
};

/* A call site: a bounded creating stack and the subsystem it was counted in.
 * key == 0 means empty. The writer claims a slot by storing key (counters
 * may be updated from then on), fills the frames, then sets ready.
 * frame[i] is a frame index + 1 (0: lost, the frame table was full);
 * frame[0] is the innermost frame. */
struct lks_site {
    _Atomic uint64_t key;
    uint16_t subsys;
    uint16_t nframes;
    _Atomic uint32_t ready; /* 1 once frames are written */
    uint64_t stack_rule_bits; /* bit i: stack rule i matches this stack */
    uint32_t frame[LKS_MAX_FRAMES];
    uint32_t flags; /* LKS_SITE_* */
    uint32_t _pad;
    _Atomic int64_t fd_open;
    _Atomic uint64_t fd_opened;
    _Atomic uint64_t fd_failed;
    _Atomic int64_t heap_live_bytes;
    _Atomic int64_t heap_live_allocs;
    _Atomic uint64_t heap_alloc_bytes;
    _Atomic uint64_t heap_allocs;
    _Atomic int64_t heap_mark_live_bytes; /* allocated since the mark, still live */
    _Atomic int64_t heap_mark_live_allocs;
};

/* The site's stack was shortened to fit the table (innermost frames kept). */
#define LKS_SITE_COARSE 1u

#define LKS_NO_MODULE 0xffff

/* Subsystems every segment has, at fixed ids. */
#define LKS_SUBSYS_UNATTRIBUTED 0 /* open in the kernel, never seen by a hook */
#define LKS_SUBSYS_OTHER 1        /* no rule matched */

/* One descriptor. seq is odd while the writer changes the entry. */
struct lks_fd {
    _Atomic uint32_t seq;
    uint8_t in_use;
    uint8_t kind;
    uint16_t subsys;
    uint32_t site; /* site index + 1; 0 = none */
    uint16_t port; /* peer port, or local port for listeners and accepted */
    uint16_t flags;
    int64_t created_mono_ns;
    uint64_t inode;
};

#define LKS_FD_INHERITED 1u /* found at start-up, not created under the shim */
#define LKS_FD_LISTENER 2u
#define LKS_FD_PAIR 4u      /* one end of a pipe()/socketpair(): two per call */
#define LKS_FD_FORKED 8u    /* inherited through fork from the parent, with its site */

/* Where segments live: $LEAKSCOPE_DIR, else /dev/shm/leakscope-<uid>.
 * Writes the path into buf; returns 0, or -1 if it does not fit. */
int lks_segment_dir(char *buf, size_t len);

/* Creates dir (0700) if missing and checks it is ours and private.
 * Returns 0, or -1 with a message in err. */
int lks_segment_dir_prepare(const char *dir, char *err, size_t errlen);

/* Writer: creates a fresh segment for pid (replacing any stale one by
 * unlink + exclusive create, so a reader's old copy is never truncated) and
 * maps it read-write. Returns the mapping or NULL with a message in err. */
struct lks_header *lks_segment_create(const char *dir, pid_t pid, uint32_t fds_cap,
                                      uint32_t sites_cap, uint64_t heap_size,
                                      char *err, size_t errlen);

/* The same, but unpublished: no magic yet, so readers skip it (and a sweep
 * removes it once its process is dead) until lks_segment_publish. For a
 * segment filled in several steps that a kill may interrupt (a fork child
 * copying its parent's tables). */
struct lks_header *lks_segment_create_unpublished(const char *dir, pid_t pid, uint32_t fds_cap,
                                                  uint32_t sites_cap, uint64_t heap_size,
                                                  char *err, size_t errlen);
void lks_segment_publish(struct lks_header *h);

/* Sites a reader must look at: the claimed prefix, or the whole table. */
static inline uint32_t lks_sites_in_use(struct lks_header *h) {
    uint32_t n = atomic_load(&h->sites_claimed);
    return n && n < h->sites_cap ? n : h->sites_cap;
}

/* Section accessors for a validated (or self-created) segment. */
static inline struct lks_subsys *lks_subsys_table(struct lks_header *h) {
    return (struct lks_subsys *)((char *)h + h->subsys_off);
}
static inline struct lks_module *lks_module_table(struct lks_header *h) {
    return (struct lks_module *)((char *)h + h->modules_off);
}
static inline struct lks_site *lks_site_table(struct lks_header *h) {
    return (struct lks_site *)((char *)h + h->sites_off);
}
static inline struct lks_frame *lks_frame_table(struct lks_header *h) {
    return (struct lks_frame *)((char *)h + h->frames_off);
}
static inline struct lks_strkey *lks_strkey_table(struct lks_header *h) {
    return (struct lks_strkey *)((char *)h + h->strkeys_off);
}
static inline char *lks_string_area(struct lks_header *h) {
    return (char *)h + h->strings_off;
}
static inline struct lks_fd *lks_fd_table(struct lks_header *h) {
    return (struct lks_fd *)((char *)h + h->fds_off);
}
static inline void *lks_heap_area(struct lks_header *h) {
    return (char *)h + h->heap_off;
}

/* Writer (attach's loader; the in-process runtime claims frames in order
 * instead, trace.c): the frame slot for key (a return address, or an
 * interpreter key with LKS_FRAME_INTERP_BIT), open-addressed by key: its id
 * (index + 1), or 0 when the table is full (counted in frames_dropped).
 * *fresh is set when this call claimed the slot: the caller fills it and
 * sets ready last. Lock-free, no allocation. */
uint32_t lks_frame_slot(struct lks_header *h, uint64_t key, struct lks_frame **fresh);

/* Frame f of a site, or NULL when lost or not yet written. */
static inline const struct lks_frame *lks_site_frame(struct lks_header *h,
                                                     const struct lks_site *s, int f) {
    if (f < 0 || f >= s->nframes || f >= LKS_MAX_FRAMES) return NULL;
    uint32_t id = s->frame[f];
    if (id == 0 || id > h->frames_cap) return NULL;
    const struct lks_frame *fr = &lks_frame_table(h)[id - 1];
    return atomic_load_explicit((_Atomic uint32_t *)&fr->ready, memory_order_acquire) ? fr : NULL;
}

/* A string of the string area ("" for 0 or out of range). Readers' copies
 * end the area with a NUL (lks_segment_load), so the result is bounded. */
static inline const char *lks_string(struct lks_header *h, uint32_t off) {
    if (off == 0 || off >= h->strings_size) return "";
    return lks_string_area(h) + off;
}

/* Reader: opens path read-only if, and only if, it is a regular file, and
 * never blocks doing so (a FIFO or device named by a segment, a rules file or
 * an environment variable must not hang a reader): stat first, then open
 * O_NONBLOCK (O_NOFOLLOW if nofollow) and check it is still the same regular
 * file. Fills st. Returns the descriptor, or -1 with errno set (EINVAL for
 * "not a regular file") and a message in err. */
int lks_open_regular(const char *path, int nofollow, struct stat *st, char *err, size_t errlen);

/* Reader: the header and subsystem counters of a segment, without the rest
 * (what `ls`, sweeps and exporters need: a few KiB whatever the file's size). */
struct lks_segment_head {
    struct lks_header h;
    struct lks_subsys subsys[LKS_MAX_SUBSYS];
    uint64_t file_size;
    int64_t mtime_ns;
};

/* Reads and validates the head of the segment at path: regular file, owned by
 * the reader (root included), header consistent with the file size and with
 * the layout its capacities imply. Returns 0, or -1 with a message in err. */
int lks_segment_load_head(const char *path, struct lks_segment_head *out, char *err,
                          size_t errlen);

/* Readers: checks that dir is a directory owned by the reader and not
 * writable by anyone else, so nobody else can plant segments in it.
 * Returns 0, or -1 with errno set and a message in err. */
int lks_segment_dir_check(const char *dir, char *err, size_t errlen);

/* Dead-segment policy (docs/SEGMENTS.md). A segment is removed when all of:
 * it is ours and valid; its process is gone (exited, or its pid now names
 * another process or none); it is not kept (header.kept); it does not belong
 * to a `leakscope run` session whose run process is still alive; and it has
 * been dead for at least grace_s seconds (since its exit time, or since the
 * file was last modified if the process was killed). A file its writer never
 * finished (empty or without magic) goes once the pid of its name is gone
 * and it is older than the grace period. Returns the number of
 * segments removed. Uses only syscalls and stack memory: the shims call it. */
int lks_segment_dir_sweep(const char *dir, int64_t grace_s);

/* The grace period: $LEAKSCOPE_SEGMENT_GRACE seconds, default 300. */
int64_t lks_segment_grace_s(void);

/* For the shims at start-up: sweeps at most once per min(grace, 60 s) per
 * directory (a stamp file, dir/.sweep, records the last sweep), so the usual
 * cost is one stat(). */
void lks_segment_dir_sweep_maybe(const char *dir);

/* Reader: a private, validated copy of a segment file. Caller owns it and
 * frees it with lks_segment_free(). Returns NULL with a message in err if the
 * file is missing, truncated, foreign (other magic, version, owner) or has
 * offsets that do not fit. */
struct lks_header *lks_segment_load(const char *path, char *err, size_t errlen);

/* Validates a segment image of len bytes in memory (what load uses).
 * Returns 0, or -1 with a message in err. */
int lks_segment_validate(const void *image, size_t len, char *err, size_t errlen);

void lks_segment_free(struct lks_header *h);

/* Reader: maps a segment read-write for the one thing a reader may write:
 * the mark. Validates like load. Unmap with lks_segment_unmap(). */
struct lks_header *lks_segment_map_rw(const char *path, size_t *len, char *err, size_t errlen);
void lks_segment_unmap(struct lks_header *h, size_t len);

/* Saturating arithmetic for readers combining counters they cannot trust. */
static inline int64_t lks_sat_add(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}
static inline int64_t lks_sat_sub(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_sub_overflow(a, b, &r) ? (b < 0 ? INT64_MAX : INT64_MIN) : r;
}

/* Is the process that wrote this segment still the one running as its pid? */
int lks_segment_process_alive(const struct lks_header *h);

/* snprintf into err (if err is not NULL): how every core function reports. */
void lks_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Name of an errno slot ("EMFILE", ...) and the slot of an errno value. */
const char *lks_errno_slot_name(int slot);
int lks_errno_slot(int err);

/* Name of a descriptor kind ("pipe", ...) and the kind of a name, or -1. */
const char *lks_kind_name(int kind);
int lks_kind_from_name(const char *name);

/* /proc/<pid>/stat field 22 (start time in clock ticks), 0 if unreadable.
 * Uses only syscalls and no allocation, so the shims may call it. */
uint64_t lks_proc_start_ticks(pid_t pid);

#endif

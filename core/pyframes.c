/* pyframes.c - CPython frames read in-process (contract in pyframes.h).
 *
 * Safety model: the walk only reads the calling thread's own chain (frames
 * of one thread are changed only by that thread, which is here, inside a
 * hook), and every address is first checked against a table of readable
 * mappings built from /proc/self/maps. A wrong layout or a torn chain ends
 * the walk early; it never faults.
 */
#define _GNU_SOURCE
#include "pyframes.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "pyoffsets.h"

#define MAX_WALK 256 /* frames followed at most, even when fewer are kept */
#define MAX_RANGES 8192

/* ---- readable mappings ---- */

struct range {
    uint64_t lo, hi;
};

/* Rebuilt under g_maps_busy; readers use the seqlock (odd while rebuilding,
 * a changed value means the answer may be torn: treated as unreadable). */
static struct {
    _Atomic uint32_t seq;
    _Atomic uint32_t n;
    struct range r[MAX_RANGES];
} g_maps;
static _Atomic int g_maps_busy;
static _Atomic int64_t g_maps_built_ns;

/* A few ranges this thread hit recently, valid while seq is unchanged. */
static __thread struct range t_hot[4] __attribute__((tls_model("initial-exec")));
static __thread uint32_t t_hot_seq __attribute__((tls_model("initial-exec")));
static __thread uint32_t t_hot_next __attribute__((tls_model("initial-exec")));

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t parse_hex(const char **p) {
    uint64_t v = 0;
    for (;; (*p)++) {
        char c = **p;
        if (c >= '0' && c <= '9') v = v * 16 + (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v = v * 16 + (uint64_t)(c - 'a' + 10);
        else return v;
    }
}

/* One line of /proc/self/maps: keep it if readable and not a special
 * kernel mapping ([vvar] pages may fault). */
static void maps_line(const char *line, uint32_t *n) {
    const char *p = line;
    uint64_t lo = parse_hex(&p);
    if (*p++ != '-') return;
    uint64_t hi = parse_hex(&p);
    if (*p++ != ' ' || *p != 'r' || hi <= lo) return;
    if (strstr(line, "[vvar") || strstr(line, "[vsyscall]")) return;
    if (*n > 0 && g_maps.r[*n - 1].hi == lo) {
        g_maps.r[*n - 1].hi = hi;
        return;
    }
    if (*n >= MAX_RANGES) return;
    g_maps.r[*n].lo = lo;
    g_maps.r[*n].hi = hi;
    (*n)++;
}

/* Re-reads /proc/self/maps with raw syscalls and no allocation, at most
 * every 2 ms, by one thread at a time. */
static void maps_refresh(void) {
    int64_t now = mono_ns();
    int64_t built = atomic_load(&g_maps_built_ns);
    if (built && now - built < 2000000) return;
    int expect = 0;
    if (!atomic_compare_exchange_strong(&g_maps_busy, &expect, 1)) return;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        atomic_fetch_add(&g_maps.seq, 1); /* odd: rebuilding */
        uint32_t n = 0;
        /* Not on the stack: a hook on an 8 KiB sigaltstack gets here (a
         * stack walk checking its bounds). One refresher at a time. */
        static char buf[4096], line[512];
        size_t ll = 0;
        ssize_t got;
        while ((got = syscall(SYS_read, fd, buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < got; i++) {
                if (buf[i] == '\n') {
                    line[ll] = 0;
                    maps_line(line, &n);
                    ll = 0;
                } else if (ll < sizeof line - 1) {
                    line[ll++] = buf[i];
                }
            }
        }
        syscall(SYS_close, fd);
        atomic_store(&g_maps.n, n);
        atomic_fetch_add(&g_maps.seq, 1);
    }
    atomic_store(&g_maps_built_ns, mono_ns());
    atomic_store(&g_maps_busy, 0);
}

/* Binary search under the seqlock: 1 readable, 0 not, -1 torn. */
static int maps_lookup(uint64_t addr, uint64_t end, struct range *found) {
    uint32_t s1 = atomic_load_explicit(&g_maps.seq, memory_order_acquire);
    if (s1 & 1) return -1;
    uint32_t n = atomic_load_explicit(&g_maps.n, memory_order_relaxed);
    if (n > MAX_RANGES) n = MAX_RANGES;
    uint32_t lo = 0, hi = n;
    int ok = 0;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (g_maps.r[mid].hi <= addr) lo = mid + 1;
        else hi = mid;
    }
    if (lo < n && g_maps.r[lo].lo <= addr && end <= g_maps.r[lo].hi) {
        *found = g_maps.r[lo];
        ok = 1;
    }
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&g_maps.seq, memory_order_relaxed) != s1) return -1;
    return ok;
}

/* The table missed (a mapping newer than the last rebuild, which is
 * rate-limited): ask the kernel whether these bytes can be read now. */
static int probe_readable(uint64_t addr, size_t len) {
    char byte;
    uint64_t last = addr + len - 1;
    for (uint64_t a = addr;; a = (a | 4095) + 1) {
        uint64_t at = a > last ? last : a; /* one byte per page, and the last */
        struct iovec local = {&byte, 1}, remote = {(void *)(uintptr_t)at, 1};
        if (syscall(SYS_process_vm_readv, getpid(), &local, 1UL, &remote, 1UL, 0UL) != 1) return 0;
        if (at == last) return 1;
    }
}

int lks_mem_readable(uint64_t addr, size_t len) {
    if (len == 0) len = 1;
    uint64_t end = addr + len;
    if (addr < 4096 || end < addr || end > 0x800000000000ull) return 0;
    uint32_t seq = atomic_load_explicit(&g_maps.seq, memory_order_relaxed);
    if (t_hot_seq != seq) {
        memset(t_hot, 0, sizeof t_hot);
        t_hot_seq = seq;
    }
    for (int i = 0; i < 4; i++)
        if (t_hot[i].lo <= addr && end <= t_hot[i].hi) return 1;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct range r;
        int ok = maps_lookup(addr, end, &r);
        if (ok == 1) {
            t_hot[t_hot_next++ & 3] = r;
            return 1;
        }
        if (attempt == 0) maps_refresh();
    }
    return probe_readable(addr, len);
}

uint64_t lks_mem_readable_end(uint64_t addr) {
    if (!lks_mem_readable(addr, 8)) return 0;
    for (int i = 0; i < 4; i++)
        if (t_hot[i].lo <= addr && addr + 8 <= t_hot[i].hi) return t_hot[i].hi;
    return (addr | 4095) + 1; /* found by the kernel probe: its page at least */
}

/* ---- the interpreter ---- */

static _Atomic int g_mode = -1; /* -1: not looked for yet */
static const struct lks_pylayout *g_lay;
static int g_major, g_minor;
static void *(*g_get_tstate)(void);
static uint64_t g_code_type, g_unicode_type, g_bytes_type;
static int g_code_head; /* bytes of a code object the walk reads */

static int read_u64(uint64_t addr, uint64_t *out) {
    if (!lks_mem_readable(addr, 8)) return 0;
    *out = *(const uint64_t *)(uintptr_t)addr;
    return 1;
}

static int read_i32(uint64_t addr, int32_t *out) {
    if (!lks_mem_readable(addr, 4)) return 0;
    *out = *(const int32_t *)(uintptr_t)addr;
    return 1;
}

/* Version from Py_Version (3.11+) or the text of Py_GetVersion(). */
static int find_version(int *major, int *minor) {
    const unsigned long *hex = dlsym(RTLD_DEFAULT, "Py_Version");
    if (hex) {
        *major = (int)((*hex >> 24) & 0xff);
        *minor = (int)((*hex >> 16) & 0xff);
        return 0;
    }
    const char *(*get_version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "Py_GetVersion");
    if (get_version && sscanf(get_version(), "%d.%d", major, minor) == 2) return 0;
    return -1;
}

int lks_py_init(int *major, int *minor) {
    int mode = atomic_load(&g_mode);
    if (mode < 0) {
        mode = LKS_PY_ABSENT;
        g_get_tstate = (void *(*)(void))dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
        g_code_type = (uint64_t)(uintptr_t)dlsym(RTLD_DEFAULT, "PyCode_Type");
        g_unicode_type = (uint64_t)(uintptr_t)dlsym(RTLD_DEFAULT, "PyUnicode_Type");
        g_bytes_type = (uint64_t)(uintptr_t)dlsym(RTLD_DEFAULT, "PyBytes_Type");
        if (g_get_tstate && g_code_type && g_unicode_type && g_bytes_type &&
            find_version(&g_major, &g_minor) == 0) {
            mode = LKS_PY_UNKNOWN;
            for (size_t i = 0; i < sizeof lks_pylayouts / sizeof lks_pylayouts[0]; i++)
                if (lks_pylayouts[i].major == g_major && lks_pylayouts[i].minor == g_minor) {
                    g_lay = &lks_pylayouts[i];
                    g_code_head = g_lay->code_firsttraceable >= 0 ? g_lay->code_firsttraceable + 4 : 16;
                    mode = LKS_PY_ACTIVE;
                }
            maps_refresh();
        }
        atomic_store(&g_mode, mode);
    }
    if (mode != LKS_PY_ABSENT) {
        if (major) *major = g_major;
        if (minor) *minor = g_minor;
    }
    return mode;
}

int lks_py_mode(void) {
    int mode = atomic_load_explicit(&g_mode, memory_order_relaxed);
    return mode < 0 ? LKS_PY_ABSENT : mode;
}

/* The calling thread's innermost frame, or 0. */
static uint64_t current_frame(void) {
    uint64_t ts = (uint64_t)(uintptr_t)g_get_tstate();
    uint64_t p;
    if (!ts || !read_u64(ts + (uint64_t)g_lay->tstate_frame, &p) || !p) return 0;
    if (g_lay->cframe_current >= 0 && !read_u64(p + (uint64_t)g_lay->cframe_current, &p)) return 0;
    return p;
}

int lks_py_top(uint64_t *frame, uint64_t *instr) {
    if (atomic_load_explicit(&g_mode, memory_order_relaxed) != LKS_PY_ACTIVE) return 0;
    uint64_t f = current_frame();
    if (!f || (f & 7) || !lks_mem_readable(f + (uint64_t)g_lay->frame_instr, 8)) return 0;
    *frame = f;
    *instr = *(const uint64_t *)(uintptr_t)(f + (uint64_t)g_lay->frame_instr);
    return 1;
}

int lks_py_capture(struct lks_pyframe *out, int max) {
    if (atomic_load_explicit(&g_mode, memory_order_relaxed) != LKS_PY_ACTIVE) return 0;
    const struct lks_pylayout *L = g_lay;
    int n = 0;
    uint64_t frame = current_frame();
    int top = L->frame_owner > L->frame_instr ? L->frame_owner + 1 : L->frame_instr + 8;
    if (L->frame_previous + 8 > top) top = L->frame_previous + 8;
    for (int depth = 0; frame && depth < MAX_WALK && n < max; depth++) {
        if ((frame & 7) || !lks_mem_readable(frame, (size_t)top)) break;
        const char *f = (const char *)(uintptr_t)frame;
        uint64_t code = *(const uint64_t *)(f + L->frame_code);
        uint64_t prev = *(const uint64_t *)(f + L->frame_previous);
        int owner = L->frame_owner >= 0 ? *(const signed char *)(f + L->frame_owner) : 0;
        uint64_t type;
        if (owner == 3) { /* FRAME_OWNED_BY_CSTACK (3.12+): an entry shim */
            frame = prev;
            continue;
        }
        if ((code & 7) || !lks_mem_readable(code, (size_t)g_code_head)) break;
        type = *(const uint64_t *)(uintptr_t)(code + 8);
        if (type != g_code_type) break;
        int64_t instr;
        if (L->code_code >= 0) {
            /* 3.11+: a pointer into the code units. Frames still being set
             * up (before _co_firsttraceable) are skipped as CPython does. */
            uint64_t ip = *(const uint64_t *)(f + L->frame_instr);
            int32_t first = *(const int32_t *)(uintptr_t)(code + (uint64_t)L->code_firsttraceable);
            uint64_t start = code + (uint64_t)L->code_code;
            if (owner != 1 && (int64_t)(ip - start) < 2 * (int64_t)first) {
                frame = prev;
                continue;
            }
            instr = (int64_t)(ip - start) / 2;
        } else {
            int32_t lasti = *(const int32_t *)(f + L->frame_instr);
            instr = g_minor >= 10 ? lasti : lasti / 2; /* 3.10: units; before: bytes */
        }
        out[n].code = code;
        out[n].instr = instr < 0 ? 0 : instr > 0x7fffffff ? 0x7fffffff : (uint32_t)instr;
        out[n]._pad = 0;
        n++;
        frame = prev;
    }
    return n;
}

/* ---- cold path: names and lines ---- */

static void copy_str(char *dst, size_t len, const char *src) {
    snprintf(dst, len, "%s", src);
}

/* A str object into dst (ASCII, or Latin-1/UCS as '?' for non-ASCII). */
static int read_unicode(uint64_t obj, char *dst, size_t len) {
    uint64_t type, length;
    int32_t state;
    if (!obj || !read_u64(obj + 8, &type) || type != g_unicode_type) return -1;
    if (!read_u64(obj + 16, &length) || !read_i32(obj + 32, &state)) return -1;
    unsigned kind = ((unsigned)state >> 2) & 7, compact = ((unsigned)state >> 5) & 1,
             ascii = ((unsigned)state >> 6) & 1;
    if (!compact || (kind != 1 && kind != 2 && kind != 4)) return -1;
    uint64_t data = obj + (uint64_t)(ascii ? g_lay->ascii_size : g_lay->compact_size);
    size_t take = length < len - 1 ? (size_t)length : len - 1;
    if (!lks_mem_readable(data, take * kind)) return -1;
    const unsigned char *p = (const unsigned char *)(uintptr_t)data;
    for (size_t i = 0; i < take; i++) {
        uint32_t c = kind == 1 ? p[i] : kind == 2 ? ((const uint16_t *)p)[i] : ((const uint32_t *)p)[i];
        dst[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    dst[take] = 0;
    return 0;
}

/* A bytes object: its data and size, both validated. */
static const unsigned char *read_bytes(uint64_t obj, size_t *size) {
    uint64_t type, n;
    if (!obj || !read_u64(obj + 8, &type) || type != g_bytes_type) return NULL;
    if (!read_u64(obj + 16, &n) || n > (1u << 24)) return NULL;
    uint64_t data = obj + (uint64_t)g_lay->bytes_data;
    if (!lks_mem_readable(data, n ? (size_t)n : 1)) return NULL;
    *size = (size_t)n;
    return (const unsigned char *)(uintptr_t)data;
}

/* 3.11+ location table (Objects/locations.md): entries of a header byte
 * (bit 7 set, code in bits 3-6, length-1 in bits 0-2) and varint payloads. */
static unsigned scan_varint(const unsigned char *p, const unsigned char *end, size_t *i) {
    unsigned val = 0, shift = 0;
    while (*i < (size_t)(end - p) && shift < 30) {
        unsigned b = p[(*i)++];
        val |= (b & 63) << shift;
        shift += 6;
        if (!(b & 64)) break;
    }
    return val;
}

static int line_from_locations(const unsigned char *t, size_t size, int firstline, uint32_t instr) {
    int line = firstline;
    uint64_t addr = 0;
    size_t i = 0;
    while (i < size) {
        unsigned head = t[i++];
        if (!(head & 0x80)) continue; /* not an entry start: resync */
        unsigned code = (head >> 3) & 15, len = (head & 7) + 1;
        int delta = 0;
        if (code == 13 || code == 14) {
            unsigned u = scan_varint(t, t + size, &i);
            delta = (u & 1) ? -(int)(u >> 1) : (int)(u >> 1);
        } else if (code >= 10 && code <= 12) {
            delta = (int)code - 10;
        }
        line += delta;
        while (i < size && !(t[i] & 0x80)) i++; /* skip the payload */
        if (instr >= addr && instr < addr + len) return code == 15 ? -1 : line;
        addr += len;
    }
    return -1;
}

/* 3.10 co_linetable: (bytes of code, signed line delta or -128) pairs. */
static int line_from_linetable310(const unsigned char *t, size_t size, int firstline, uint32_t instr) {
    int line = firstline;
    uint64_t addr = 0, target = (uint64_t)instr * 2;
    for (size_t i = 0; i + 1 < size; i += 2) {
        uint64_t end = addr + t[i];
        signed char ld = (signed char)t[i + 1];
        if (ld != -128) line += ld;
        if (target >= addr && target < end) return ld == -128 ? -1 : line;
        addr = end;
    }
    return -1;
}

/* 3.8-3.9 co_lnotab: (bytes of code, signed line delta) pairs. */
static int line_from_lnotab(const unsigned char *t, size_t size, int firstline, uint32_t instr) {
    int line = firstline;
    uint64_t addr = 0, target = (uint64_t)instr * 2;
    for (size_t i = 0; i + 1 < size; i += 2) {
        addr += t[i];
        if (addr > target) break;
        line += (signed char)t[i + 1];
    }
    return line;
}

int lks_py_code_ids(uint64_t code, uint64_t *name_obj, uint64_t *file_obj) {
    uint64_t type;
    *name_obj = *file_obj = 0;
    if (lks_py_mode() != LKS_PY_ACTIVE) return -1;
    const struct lks_pylayout *L = g_lay;
    if (!read_u64(code + 8, &type) || type != g_code_type) return -1;
    if (!read_u64(code + (uint64_t)(L->code_qualname >= 0 ? L->code_qualname : L->code_name), name_obj) ||
        !read_u64(code + (uint64_t)L->code_filename, file_obj))
        return -1;
    return 0;
}

int lks_py_line(const struct lks_pyframe *f) {
    uint64_t code = f->code, type, table;
    int32_t firstline;
    size_t size;
    const unsigned char *t;
    if (lks_py_mode() != LKS_PY_ACTIVE) return -1;
    const struct lks_pylayout *L = g_lay;
    if (!read_u64(code + 8, &type) || type != g_code_type) return -1;
    if (!read_i32(code + (uint64_t)L->code_firstlineno, &firstline)) return -1;
    if (!read_u64(code + (uint64_t)L->code_linetable, &table) || !(t = read_bytes(table, &size)))
        return -1;
    if (g_minor >= 11) return line_from_locations(t, size, firstline, f->instr);
    if (g_minor == 10) return line_from_linetable310(t, size, firstline, f->instr);
    return line_from_lnotab(t, size, firstline, f->instr);
}

int lks_py_describe(const struct lks_pyframe *f, char *func, size_t funclen, char *file,
                    size_t filelen, int *line) {
    copy_str(func, funclen, "?");
    copy_str(file, filelen, "?");
    *line = -1;
    if (lks_py_mode() != LKS_PY_ACTIVE) return -1;
    const struct lks_pylayout *L = g_lay;
    uint64_t code = f->code, type, name = 0, filename;
    if (!read_u64(code + 8, &type) || type != g_code_type) return -1;
    if (L->code_qualname >= 0) read_u64(code + (uint64_t)L->code_qualname, &name);
    if (!name || read_unicode(name, func, funclen) != 0) {
        if (!read_u64(code + (uint64_t)L->code_name, &name) || read_unicode(name, func, funclen) != 0)
            copy_str(func, funclen, "?");
    }
    if (read_u64(code + (uint64_t)L->code_filename, &filename)) read_unicode(filename, file, filelen);
    *line = lks_py_line(f);
    return 0;
}

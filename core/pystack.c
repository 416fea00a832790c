/* pystack.c - merged Python + native call sites (contract in pystack.h). */
#define _GNU_SOURCE
#include "pystack.h"

#include <dlfcn.h>
#include <link.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <string.h>

#include "trace.h"

/* The executable segments of the module that holds the interpreter. */
#define INTERP_RANGES 4
static struct {
    uint64_t lo, hi;
} g_interp[INTERP_RANGES];
static int g_ninterp;
static _Atomic int g_interp_state; /* 0 not looked, 1 busy, 2 done */

static void find_interpreter(void) {
    int expect = 0;
    if (!atomic_compare_exchange_strong(&g_interp_state, &expect, 1)) return;
    void *sym = dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
    Dl_info info;
    struct link_map *lm = NULL;
    if (sym && dladdr1(sym, &info, (void **)&lm, RTLD_DL_LINKMAP) && lm) {
        const ElfW(Ehdr) *eh = info.dli_fbase;
        const ElfW(Phdr) *ph = (const ElfW(Phdr) *)((const char *)eh + eh->e_phoff);
        for (int i = 0; i < eh->e_phnum && g_ninterp < INTERP_RANGES; i++) {
            if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_X)) continue;
            g_interp[g_ninterp].lo = lm->l_addr + ph[i].p_vaddr;
            g_interp[g_ninterp].hi = lm->l_addr + ph[i].p_vaddr + ph[i].p_memsz;
            g_ninterp++;
        }
    }
    atomic_store(&g_interp_state, 2);
}

LKS_EXPORT int lks_py_in_interpreter(uint64_t addr) {
    if (atomic_load(&g_interp_state) != 2) find_interpreter();
    if (atomic_load(&g_interp_state) != 2) return 0;
    for (int i = 0; i < g_ninterp; i++)
        if (addr - 1 >= g_interp[i].lo && addr - 1 < g_interp[i].hi) return 1;
    return 0;
}

/* A frame as the site will store it: names, file, line. */
struct described {
    char func[128];
    char file[256];
    int line;
    uint64_t bits; /* pyfile/pyfunc rule bits */
};

/* Names, file and rule bits per code object, so a new site reads strings
 * only for code it has not seen. Private memory, filled on cold paths; an
 * entry is used only if the code object still has the same name and file
 * objects (an address reused by another code object is noticed). */
struct code_entry {
    _Atomic uint32_t seq; /* 0 empty, odd while written */
    uint32_t _pad;
    uint64_t code, name_obj, file_obj, bits;
    char func[128];
    char file[256];
};
#define CODE_CACHE 4096
static struct code_entry *g_codes;

static void codes_init(void) {
    static _Atomic int once;
    int expect = 0;
    if (!atomic_compare_exchange_strong(&once, &expect, 1)) return;
    void *p = mmap(NULL, sizeof(struct code_entry) * CODE_CACHE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) atomic_store((_Atomic(struct code_entry *) *)&g_codes, p);
}

/* Lines per (code object, instruction): decoding a line table walks it from
 * the start, which adds up over the many one-off sites of an import. One
 * word per entry: a 40-bit tag of the pair and the line (+1) in 24 bits. */
#define LINE_CACHE 16384
static _Atomic uint64_t g_lines[LINE_CACHE];

static int line_of(const struct lks_pyframe *f) {
    uint64_t h = (f->code ^ (uint64_t)f->instr * 0x9E3779B97F4A7C15ull) * 0xC2B2AE3D27D4EB4Full;
    uint64_t tag = h >> 24; /* 40 bits */
    _Atomic uint64_t *e = &g_lines[h % LINE_CACHE];
    uint64_t v = atomic_load_explicit(e, memory_order_relaxed);
    if (v >> 24 == tag && (v & 0xffffff)) return (int)(v & 0xffffff) - 1;
    int line = lks_py_line(f);
    if (line >= -1 && line < 0xfffffe)
        atomic_store_explicit(e, tag << 24 | (uint64_t)(line + 1), memory_order_relaxed);
    return line;
}

/* Is this code object part of the import system (<frozen importlib...>)?
 * Cached per code object: one word, tag in the high bits, answer + 1 low. */
#define IMPORT_CACHE 8192
static _Atomic uint64_t g_import[IMPORT_CACHE];

static int import_machinery(uint64_t code) {
    uint64_t h = code * 0x9E3779B97F4A7C15ull;
    uint64_t tag = h >> 2;
    _Atomic uint64_t *e = &g_import[(h >> 40) % IMPORT_CACHE];
    uint64_t v = atomic_load_explicit(e, memory_order_relaxed);
    if (v >> 2 == tag && (v & 3)) return (int)(v & 3) - 1;
    char func[8], file[64];
    int line;
    struct lks_pyframe f = {code, 0, 0};
    lks_py_describe(&f, func, sizeof func, file, sizeof file, &line);
    int yes = strncmp(file, "<frozen importlib._bootstrap", 28) == 0;
    atomic_store_explicit(e, tag << 2 | (uint64_t)(yes + 1), memory_order_relaxed);
    return yes;
}

LKS_EXPORT int lks_pystack_capture(struct lks_pystack *ps, int max) {
    int n = lks_py_capture(ps->f, LKS_PY_MAX_FRAMES);
    /* Code run by an import ends at the import system: who imported the
     * module does not change what its body allocates, and keying on it
     * multiplies a program's sites by its import graph. */
    for (int i = 0; i < n; i++) {
        if (!import_machinery(ps->f[i].code)) continue;
        n = i ? i : 1;
        break;
    }
    if (n > max) n = max;
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)n;
    for (int i = 0; i < n; i++) {
        h = (h ^ ps->f[i].code) * 0x100000001b3ull;
        h = (h ^ (uint64_t)(uint32_t)line_of(&ps->f[i])) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    ps->n = n;
    ps->hash = h ? h : 1;
    return n;
}

static void describe(const struct lks_pyframe *f, struct described *d) {
    uint64_t name_obj = 0, file_obj = 0;
    if (!g_codes) codes_init();
    struct code_entry *e = g_codes ? &g_codes[(f->code >> 4) % CODE_CACHE] : NULL;
    lks_py_code_ids(f->code, &name_obj, &file_obj);
    if (e) {
        uint32_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
        if (s1 && !(s1 & 1) && e->code == f->code && e->name_obj == name_obj &&
            e->file_obj == file_obj && name_obj) {
            memcpy(d->func, e->func, sizeof d->func);
            memcpy(d->file, e->file, sizeof d->file);
            d->bits = e->bits;
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&e->seq, memory_order_relaxed) == s1) {
                d->line = line_of(f);
                return;
            }
        }
    }
    lks_py_describe(f, d->func, sizeof d->func, d->file, sizeof d->file, &d->line);
    d->bits = lks_rules_pyframe_bits(lks_trace_rules(), d->file, d->func);
    if (!e || !name_obj) return;
    uint32_t s = atomic_load(&e->seq);
    if ((s & 1) || !atomic_compare_exchange_strong(&e->seq, &s, s + 1)) return;
    e->code = f->code;
    e->name_obj = name_obj;
    e->file_obj = file_obj;
    e->bits = d->bits;
    memcpy(e->func, d->func, sizeof e->func);
    memcpy(e->file, d->file, sizeof e->file);
    atomic_store_explicit(&e->seq, s + 2, memory_order_release);
}

LKS_EXPORT uint64_t lks_pystack_rule_bits(const struct lks_pystack *ps) {
    uint64_t bits = 0;
    lks_in_hook++;
    for (int i = 0; i < ps->n; i++) {
        struct described d;
        describe(&ps->f[i], &d);
        bits |= d.bits;
    }
    lks_in_hook--;
    return bits;
}

/* Frame key: the code object and its line, with the kind's bit set. */
static uint64_t pyframe_key(uint64_t code, int line) {
    uint64_t k = code * 0x9E3779B97F4A7C15ull ^ ((uint64_t)(uint32_t)line + 1) * 0xC2B2AE3D27D4EB4Full;
    k ^= k >> 29;
    k *= 0xBF58476D1CE4E5B9ull;
    return k ^ (k >> 32);
}

LKS_EXPORT uint32_t lks_pystack_site(uint64_t key, const uint64_t *native, int nnative,
                                     const struct lks_pystack *ps, uint64_t rule_bits,
                                     int subsys) {
    uint32_t ids[LKS_MAX_FRAMES];
    int n = 0;
    uint32_t known = lks_site_inherited(key, subsys);
    if (known) return known;
    lks_in_hook++;
    /* The native leaf: up to and including the first interpreter frame. */
    for (int i = 0; i < nnative && n < LKS_MAX_FRAMES - 1; i++) {
        ids[n++] = lks_frame_intern_native(native[i]);
        if (lks_py_in_interpreter(native[i])) break;
    }
    for (int i = 0; i < ps->n && n < LKS_MAX_FRAMES; i++) {
        struct described d;
        describe(&ps->f[i], &d);
        uint32_t line = d.line > 0 ? (uint32_t)d.line : 0;
        ids[n++] = lks_frame_intern_interp(LKS_FRAME_PYTHON, pyframe_key(ps->f[i].code, d.line),
                                           ps->f[i].code, line, d.func, d.file);
    }
    uint32_t site = lks_site_intern_frames(key, ids, n, rule_bits, subsys, 0);
    lks_in_hook--;
    return site;
}

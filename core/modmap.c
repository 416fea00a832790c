/* modmap.c - module address table and compiled func rules (see modmap.h). */
#define _GNU_SOURCE
#include "modmap.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "segment.h"

#define MAX_MODS 2048 /* executable ranges; modules beyond are "unknown" */

/* Func rule ranges of one module, compiled on first use. */
struct func_range {
    uint64_t lo, hi, bits;
};
struct mod_funcs {
    _Atomic uint64_t base; /* 0 = free slot */
    _Atomic int state;     /* 0 not compiled, 1 compiling, 2 ready */
    uint32_t n;
    struct func_range *r;
};

struct mod {
    uint64_t lo, hi; /* one executable PT_LOAD, [lo, hi) */
    uint64_t bias, base, module_bits;
    uint32_t funcs; /* index into g_funcs */
    char path[LKS_MODULE_PATH];
};

struct modtab {
    uint32_t n;
    struct mod m[];
};

static const struct lks_rules *g_rules;
static int g_have_func_rules;
static uint64_t g_func_first[4]; /* bytes a func-rule match can start with */
static char g_exe[LKS_MODULE_PATH];
static _Atomic(struct modtab *) g_tab;
static _Atomic int g_rebuilding;
static _Atomic int64_t g_last_rebuild_ns;
static struct mod_funcs g_funcs[MAX_MODS];

static int64_t coarse_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *map_anon(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void lks_modmap_init(const struct lks_rules *rules) {
    g_rules = rules;
    g_have_func_rules = 0;
    for (int i = 0; i < rules->nrules; i++)
        if (rules->rule[i].matcher == LKS_MATCH_FUNC) g_have_func_rules = 1;
    lks_rules_func_first_bytes(rules, g_func_first);
    ssize_t n = readlink("/proc/self/exe", g_exe, sizeof g_exe - 1);
    g_exe[n > 0 ? n : 0] = 0;
}

/* The func-table slot of a module (by its lowest address), created empty. */
static uint32_t funcs_slot(uint64_t base) {
    for (uint32_t i = 0; i < MAX_MODS; i++) {
        uint64_t b = atomic_load(&g_funcs[i].base);
        if (b == base) return i;
        if (b == 0) {
            uint64_t zero = 0;
            if (atomic_compare_exchange_strong(&g_funcs[i].base, &zero, base) || zero == base)
                return i;
        }
    }
    return UINT32_MAX;
}

struct build {
    struct modtab *tab;
    uint32_t cap;
};

static int count_cb(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    uint32_t *n = arg;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_LOAD && (info->dlpi_phdr[i].p_flags & PF_X)) (*n)++;
    return 0;
}

static int fill_cb(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    struct build *b = arg;
    uint64_t base = UINT64_MAX;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_LOAD && info->dlpi_addr + info->dlpi_phdr[i].p_vaddr < base)
            base = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
    const char *path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : g_exe;
    for (int i = 0; i < info->dlpi_phnum && b->tab->n < b->cap; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        struct mod *m = &b->tab->m[b->tab->n++];
        m->lo = info->dlpi_addr + ph->p_vaddr;
        m->hi = m->lo + ph->p_memsz;
        m->bias = info->dlpi_addr;
        m->base = base;
        snprintf(m->path, sizeof m->path, "%s", path);
        const char *p = m->path;
        m->module_bits = lks_rules_stack_bits(g_rules, 1, &p, NULL);
        m->funcs = funcs_slot(base);
    }
    return 0;
}

/* Publishes a fresh table of every loaded module, sorted by address. */
static void rebuild(void) {
    int zero = 0;
    if (!atomic_compare_exchange_strong(&g_rebuilding, &zero, 1)) return;
    atomic_store(&g_last_rebuild_ns, coarse_ns());
    uint32_t n = 0;
    dl_iterate_phdr(count_cb, &n);
    n += 8; /* modules loaded between the two walks */
    if (n > MAX_MODS) n = MAX_MODS;
    struct build b = {map_anon(sizeof(struct modtab) + sizeof(struct mod) * n), n};
    if (b.tab) {
        dl_iterate_phdr(fill_cb, &b);
        for (uint32_t i = 1; i < b.tab->n; i++) { /* insertion sort: n is small */
            struct mod t = b.tab->m[i];
            uint32_t j = i;
            for (; j > 0 && b.tab->m[j - 1].lo > t.lo; j--) b.tab->m[j] = b.tab->m[j - 1];
            b.tab->m[j] = t;
        }
        atomic_store_explicit(&g_tab, b.tab, memory_order_release);
    }
    atomic_store(&g_rebuilding, 0);
}

static const struct mod *find_in(const struct modtab *t, uint64_t addr) {
    if (!t) return NULL;
    uint32_t lo = 0, hi = t->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (t->m[mid].lo <= addr) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return NULL;
    const struct mod *m = &t->m[lo - 1];
    return addr < m->hi ? m : NULL;
}

/* The module holding addr; a miss rebuilds the table once per clock tick
 * (a dlopen since the last build), JIT code just stays unknown. */
static const struct mod *find(uint64_t addr) {
    const struct modtab *t = atomic_load_explicit(&g_tab, memory_order_acquire);
    const struct mod *m = find_in(t, addr);
    if (m) return m;
    if (t && atomic_load(&g_last_rebuild_ns) == coarse_ns()) return NULL;
    rebuild();
    return find_in(atomic_load_explicit(&g_tab, memory_order_acquire), addr);
}

/* Sorts ranges by lo: heap sort, in place, no allocation. */
static void sift(struct func_range *r, uint32_t i, uint32_t n) {
    for (;;) {
        uint32_t big = i, l = 2 * i + 1, rt = l + 1;
        if (l < n && r[l].lo > r[big].lo) big = l;
        if (rt < n && r[rt].lo > r[big].lo) big = rt;
        if (big == i) return;
        struct func_range t = r[i];
        r[i] = r[big];
        r[big] = t;
        i = big;
    }
}
static void sort_ranges(struct func_range *r, uint32_t n) {
    for (uint32_t i = n / 2; i-- > 0;) sift(r, i, n);
    for (uint32_t end = n; end-- > 1;) {
        struct func_range t = r[0];
        r[0] = r[end];
        r[end] = t;
        sift(r, 0, end);
    }
}

/* Walks .symtab and .dynsym of an ELF image; with out, stores the ranges of
 * functions whose names match a func rule (only those holding only_addr,
 * unless it is 0). Returns how many matched. Every
 * offset is checked against the file size: the file is not trusted. */
static uint32_t scan_symbols(const unsigned char *img, size_t size, uint64_t bias,
                             uint64_t only_addr, struct func_range *out, uint32_t cap) {
    const ElfW(Ehdr) *eh = (const void *)img;
    if (size < sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
        eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_shentsize != sizeof(ElfW(Shdr)) ||
        eh->e_shoff > size || (uint64_t)eh->e_shnum * sizeof(ElfW(Shdr)) > size - eh->e_shoff)
        return 0;
    const ElfW(Shdr) *sh = (const void *)(img + eh->e_shoff);
    uint32_t found = 0;
    for (int s = 0; s < eh->e_shnum; s++) {
        if (sh[s].sh_type != SHT_SYMTAB && sh[s].sh_type != SHT_DYNSYM) continue;
        if (sh[s].sh_link >= eh->e_shnum) continue;
        const ElfW(Shdr) *strs = &sh[sh[s].sh_link];
        if (sh[s].sh_offset > size || sh[s].sh_size > size - sh[s].sh_offset ||
            strs->sh_offset > size || strs->sh_size > size - strs->sh_offset || strs->sh_size == 0)
            continue;
        const ElfW(Sym) *sym = (const void *)(img + sh[s].sh_offset);
        const char *names = (const char *)img + strs->sh_offset;
        size_t nsym = sh[s].sh_size / sizeof(ElfW(Sym));
        /* A string table that ends in NUL terminates every name in it. */
        int terminated = names[strs->sh_size - 1] == 0;
        for (size_t i = 0; i < nsym; i++) {
            int type = ELF64_ST_TYPE(sym[i].st_info);
            if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym[i].st_shndx == SHN_UNDEF ||
                sym[i].st_size == 0 || sym[i].st_name >= strs->sh_size)
                continue;
            if (only_addr && (only_addr < bias + sym[i].st_value ||
                              only_addr >= bias + sym[i].st_value + sym[i].st_size))
                continue;
            const char *name = names + sym[i].st_name;
            unsigned char c0 = (unsigned char)name[0];
            if (!((g_func_first[c0 >> 6] >> (c0 & 63)) & 1)) continue; /* most symbols */
            if (!terminated && !memchr(name, 0, strs->sh_size - sym[i].st_name)) continue;
            uint64_t bits = lks_rules_stack_bits(g_rules, 1, NULL, &name);
            if (!bits) continue;
            if (out && found < cap)
                out[found] = (struct func_range){bias + sym[i].st_value,
                                                 bias + sym[i].st_value + sym[i].st_size, bits};
            found++;
        }
    }
    return found;
}

/* Compiles the func rules of one module from its file (raw syscalls: the
 * fd hooks must not see the shim's own reads). Returns -1 if the file could
 * not be opened for a reason that may pass (no descriptor to spare). */
static int compile_funcs(struct mod_funcs *f, const struct mod *m) {
    int fd = (int)syscall(SYS_openat, AT_FDCWD, m->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return errno == EMFILE || errno == ENFILE || errno == ENOMEM ? -1 : 0;
    struct stat st;
    void *img = MAP_FAILED;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    syscall(SYS_close, fd);
    if (img == MAP_FAILED) return 0;
    uint32_t n = scan_symbols(img, (size_t)st.st_size, m->bias, 0, NULL, 0);
    struct func_range *r = n ? map_anon(sizeof *r * n) : NULL;
    if (r) {
        n = scan_symbols(img, (size_t)st.st_size, m->bias, 0, r, n);
        sort_ranges(r, n);
        f->r = r;
        f->n = n;
    }
    munmap(img, (size_t)st.st_size);
    return 0;
}

/* Func bits from the dynamic symbols only (dladdr, no descriptor needed):
 * what a process at its descriptor limit can still know. */
static uint64_t func_bits_dynamic(uint64_t addr) {
    Dl_info info;
    if (!dladdr((void *)(uintptr_t)addr, &info) || !info.dli_sname) return 0;
    const char *name = info.dli_sname;
    return lks_rules_stack_bits(g_rules, 1, NULL, &name);
}

/* Func bits of one address straight from the module file: for a thread
 * that finds the module being compiled by another (or by a thread that
 * vanished in a fork). Slower, but never a wrong answer to cache. */
static uint64_t func_bits_uncompiled(const struct mod *m, uint64_t addr) {
    struct func_range one[8];
    uint64_t bits = 0;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, m->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return func_bits_dynamic(addr);
    struct stat st;
    void *img = MAP_FAILED;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    syscall(SYS_close, fd);
    if (img == MAP_FAILED) return func_bits_dynamic(addr);
    uint32_t n = scan_symbols(img, (size_t)st.st_size, m->bias, addr, one, 8);
    for (uint32_t i = 0; i < n && i < 8; i++) bits |= one[i].bits;
    munmap(img, (size_t)st.st_size);
    return bits;
}

static uint64_t func_bits(const struct mod *m, uint64_t addr) {
    if (!g_have_func_rules || m->funcs >= MAX_MODS) return 0;
    struct mod_funcs *f = &g_funcs[m->funcs];
    int st = atomic_load_explicit(&f->state, memory_order_acquire);
    if (st != 2) {
        int zero = 0;
        if (st != 0 || !atomic_compare_exchange_strong(&f->state, &zero, 1))
            return func_bits_uncompiled(m, addr);
        if (compile_funcs(f, m) != 0) { /* at the descriptor limit: try again later */
            atomic_store(&f->state, 0);
            return func_bits_dynamic(addr);
        }
        atomic_store_explicit(&f->state, 2, memory_order_release);
    }
    uint32_t lo = 0, hi = f->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (f->r[mid].lo <= addr) lo = mid + 1;
        else hi = mid;
    }
    uint64_t bits = 0;
    for (uint32_t i = lo; i > 0 && lo - i < 4; i--) /* aliases share a range */
        if (addr < f->r[i - 1].hi) bits |= f->r[i - 1].bits;
    return bits;
}

void lks_modmap_after_fork(void) {
    /* A compile in progress belonged to a thread the child does not have. */
    for (uint32_t i = 0; i < MAX_MODS; i++) {
        int one = 1;
        atomic_compare_exchange_strong(&g_funcs[i].state, &one, 0);
    }
    atomic_store(&g_rebuilding, 0);
}

uint64_t lks_modmap_bits(uint64_t ra) {
    uint64_t addr = ra - 1;
    const struct mod *m = find(addr);
    return m ? m->module_bits | func_bits(m, addr) : 0;
}

int lks_modmap_module(uint64_t ra, const char **path, uint64_t *bias, uint64_t *base) {
    const struct mod *m = find(ra - 1);
    if (!m) return 0;
    *path = m->path;
    *bias = m->bias;
    *base = m->base;
    return 1;
}

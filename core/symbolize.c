/* symbolize.c - offline symbolization with elfutils' libdwfl: each module of
 * the segment is reported at its recorded load bias, then addresses are
 * looked up for function names and source lines (DWARF where present,
 * .symtab/.dynsym otherwise).
 */
#include "symbolize.h"

#include <elfutils/libdwfl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct lks_symbolizer {
    struct lks_header *seg;
    Dwfl *dwfl;
    Dwfl_Module *mod[LKS_MAX_MODULES];
    char reported[LKS_MAX_MODULES]; /* 0 not tried, 1 ok, 2 failed */
};

/* Separate debug info only by build id (under /usr/lib/debug): the standard
 * lookup would also open files named by the module's .gnu_debuglink next to
 * a path the segment chose, which a reader must not trust. */
static const Dwfl_Callbacks offline_callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_build_id_find_debuginfo,
    .section_address = dwfl_offline_section_address,
};

struct lks_symbolizer *lks_symbolizer_new(struct lks_header *seg) {
    struct lks_symbolizer *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->seg = seg;
    s->dwfl = dwfl_begin(&offline_callbacks);
    return s;
}

void lks_symbolizer_free(struct lks_symbolizer *s) {
    if (!s) return;
    if (s->dwfl) dwfl_end(s->dwfl);
    free(s);
}

/* Reports a module lazily: one Dwfl per segment, modules added on demand. */
static Dwfl_Module *module_get(struct lks_symbolizer *s, uint16_t module) {
    if (!s->dwfl || module >= LKS_MAX_MODULES ||
        module >= atomic_load(&s->seg->modules_used))
        return NULL;
    if (s->reported[module]) return s->reported[module] == 1 ? s->mod[module] : NULL;
    struct lks_module *m = &lks_module_table(s->seg)[module];
    /* The path is the segment's word: open it ourselves, only if it is a
     * regular file, without blocking (a FIFO must not hang a reader). */
    struct stat st;
    char err[LKS_MODULE_PATH + 100];
    int fd = lks_open_regular(m->path, 0, &st, err, sizeof err);
    if (fd < 0) {
        if (errno == EINVAL) fprintf(stderr, "leakscope: not symbolizing %s\n", err);
        s->reported[module] = 2;
        return NULL;
    }
    dwfl_report_begin_add(s->dwfl);
    s->mod[module] = dwfl_report_elf(s->dwfl, m->path, m->path, fd, m->bias, false);
    dwfl_report_end(s->dwfl, NULL, NULL);
    if (!s->mod[module]) close(fd); /* consumed only on success */
    s->reported[module] = s->mod[module] ? 1 : 2;
    return s->mod[module];
}

static const char *base_name(const char *path) {
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

const char *lks_symbolize_func(struct lks_symbolizer *s, uint64_t addr, uint16_t module) {
    Dwfl_Module *m = module_get(s, module);
    if (!m) return NULL;
    return dwfl_module_addrname(m, (Dwarf_Addr)(addr - 1));
}

const char *lks_symbolize_frame(struct lks_symbolizer *s, uint64_t addr, uint16_t module,
                                char *buf, size_t len) {
    const char *modname = "?";
    if (module < LKS_MAX_MODULES && module < atomic_load(&s->seg->modules_used))
        modname = base_name(lks_module_table(s->seg)[module].path);
    Dwfl_Module *m = module_get(s, module);
    const char *func = m ? dwfl_module_addrname(m, (Dwarf_Addr)(addr - 1)) : NULL;
    if (!func) {
        snprintf(buf, len, "0x%llx [%s]", (unsigned long long)addr, modname);
        return buf;
    }
    Dwfl_Line *line = dwfl_module_getsrc(m, (Dwarf_Addr)(addr - 1));
    int lineno = 0;
    const char *file = line ? dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;
    if (file)
        snprintf(buf, len, "%s (%s:%d) [%s]", func, base_name(file), lineno, modname);
    else
        snprintf(buf, len, "%s [%s]", func, modname);
    return buf;
}

/* Libraries whose frames are plumbing, not the code that made the leak. */
static int system_module(const char *path) {
    static const char *const plumbing[] = {"libc.so", "ld-linux", "libpthread", "libunwind",
                                           "libdl.so", "libleakscope-trace", "libfdtrack",
                                           "libmemtrack"};
    const char *b = base_name(path);
    for (size_t i = 0; i < sizeof plumbing / sizeof plumbing[0]; i++)
        if (strncmp(b, plumbing[i], strlen(plumbing[i])) == 0) return 1;
    return 0;
}

const char *lks_symbolize_site_frame(struct lks_symbolizer *s, const struct lks_site *site,
                                     int f, char *buf, size_t len) {
    const struct lks_frame *fr = lks_site_frame(s->seg, site, f);
    if (!fr) {
        snprintf(buf, len, "(frame not recorded)");
        return buf;
    }
    if (fr->kind == LKS_FRAME_NATIVE) return lks_symbolize_frame(s, fr->addr, fr->module, buf, len);
    const char *func = lks_string(s->seg, fr->func), *file = lks_string(s->seg, fr->file);
    snprintf(buf, len, "%s (%s:%u) [python]", func[0] ? func : "?", file[0] ? base_name(file) : "?",
             (unsigned)fr->line);
    return buf;
}

const char *lks_symbolize_site_func(struct lks_symbolizer *s, const struct lks_site *site, int f) {
    const struct lks_frame *fr = lks_site_frame(s->seg, site, f);
    if (!fr) return NULL;
    if (fr->kind == LKS_FRAME_NATIVE) return lks_symbolize_func(s, fr->addr, fr->module);
    const char *func = lks_string(s->seg, fr->func);
    return func[0] ? func : NULL;
}

const char *lks_symbolize_headline(struct lks_symbolizer *s, const struct lks_site *site,
                                   char *buf, size_t len) {
    uint32_t nmods = atomic_load(&s->seg->modules_used);
    int n = site->nframes > LKS_MAX_FRAMES ? LKS_MAX_FRAMES : site->nframes;
    /* Two passes: the program's own code (or interpreted code) first, then
     * any library's. */
    for (int own = 1; own >= 0; own--) {
        for (int f = 0; f < n; f++) {
            const struct lks_frame *fr = lks_site_frame(s->seg, site, f);
            if (!fr) continue;
            if (fr->kind != LKS_FRAME_NATIVE) {
                if (own && lks_string(s->seg, fr->func)[0])
                    return lks_symbolize_site_frame(s, site, f, buf, len);
                continue;
            }
            uint16_t m = fr->module;
            if (m >= nmods || m >= LKS_MAX_MODULES) continue;
            const char *path = lks_module_table(s->seg)[m].path;
            if (own ? strcmp(path, s->seg->exe) != 0 : system_module(path)) continue;
            if (!lks_symbolize_func(s, fr->addr, m)) continue;
            return lks_symbolize_frame(s, fr->addr, m, buf, len);
        }
    }
    if (n > 0) return lks_symbolize_site_frame(s, site, 0, buf, len);
    snprintf(buf, len, "(no stack)");
    return buf;
}

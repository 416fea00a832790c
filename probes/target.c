/* target.c - the segment of a process traced from outside: identity from
 * /proc, modules from /proc/PID/maps, call sites interned from stacks the
 * probes captured, and fdtrack's descriptor bookkeeping (fdtrack/fdtable.c)
 * redone for a writer that is not the traced process.
 */
#define _GNU_SOURCE
#include "target.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../memtrack/heapseg.h"

static int64_t now_coarse_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void read_proc_line(pid_t pid, const char *what, char *buf, size_t len) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (!fgets(buf, (int)len, f)) buf[0] = 0;
    fclose(f);
    buf[strcspn(buf, "\n")] = 0;
}

static pid_t proc_ppid(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int ppid = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "PPid: %d", &ppid) == 1) break;
    fclose(f);
    return ppid;
}

static void fill_identity(struct lks_target *t, const char *session) {
    struct lks_header *h = t->seg;
    struct timespec ts;
    struct rlimit rl;
    h->producer = LKS_PRODUCER_EBPF;
    h->pid = t->pid;
    h->ppid = proc_ppid(t->pid);
    h->proc_start_ticks = lks_proc_start_ticks(t->pid);
    clock_gettime(CLOCK_REALTIME, &ts);
    h->start_realtime_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    h->start_mono_ns = now_coarse_ns();
    read_proc_line(t->pid, "comm", h->comm, sizeof h->comm);
    char link[64];
    snprintf(link, sizeof link, "/proc/%d/exe", (int)t->pid);
    ssize_t n = readlink(link, h->exe, sizeof h->exe - 1);
    h->exe[n > 0 ? n : 0] = 0;
    snprintf(h->session, sizeof h->session, "%s", session);
    if (prlimit(t->pid, RLIMIT_NOFILE, NULL, &rl) == 0) {
        h->rlimit_nofile_cur = rl.rlim_cur;
        h->rlimit_nofile_max = rl.rlim_max;
    }
}

/* Prepares the heap area as libmemtrack does, so heap readers accept it. */
static void init_heap_area(struct lks_header *h) {
    struct lks_heapseg *hs = (struct lks_heapseg *)lks_heap_area(h);
    memcpy(hs->magic, LKS_HEAP_MAGIC, 8);
    hs->version = LKS_HEAP_VERSION;
    hs->sites_cap = h->sites_cap;
    hs->area_size = (uint32_t)lks_heapseg_size(h->sites_cap);
}

int target_open(struct lks_target *t, pid_t pid, const char *dir, const char *session,
                const struct lks_rules *rules, uint32_t features, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    t->pid = pid;
    t->rules = rules;
    snprintf(t->path, sizeof t->path, "%s/%d.seg", dir, (int)pid);
    char lerr[200];
    struct lks_header *old = lks_segment_load(t->path, lerr, sizeof lerr);
    if (old) {
        int live = lks_segment_process_alive(old) && !old->exited;
        int producer = (int)old->producer;
        lks_segment_free(old);
        if (live) {
            lks_set_err(err, errlen,
                        "pid %d already has a live segment in %s (producer %s); it is traced "
                        "already",
                        (int)pid, dir, producer == LKS_PRODUCER_EBPF ? "ebpf" : "preload shims");
            return -1;
        }
    }
    struct rlimit rl;
    uint32_t fds_cap = LKS_DEFAULT_FDS;
    if (prlimit(pid, RLIMIT_NOFILE, NULL, &rl) == 0 && rl.rlim_max < fds_cap)
        fds_cap = rl.rlim_max < LKS_MIN_FDS ? LKS_MIN_FDS : (uint32_t)rl.rlim_max;
    uint64_t heap = lks_heapseg_size(LKS_DEFAULT_SITES);
    t->seg = lks_segment_create(dir, pid, fds_cap, LKS_DEFAULT_SITES, heap, err, errlen);
    if (!t->seg) return -1;
    fill_identity(t, session);
    struct lks_subsys *ss = lks_subsys_table(t->seg);
    for (int i = 0; i < rules->nnames; i++) {
        memcpy(ss[i].name, rules->names[i], LKS_SUBSYS_NAME);
        atomic_store(&ss[i].used, 1);
    }
    atomic_store(&t->seg->subsys_used, (uint32_t)rules->nnames);
    if (features & LKS_FEATURE_HEAP) init_heap_area(t->seg);
    atomic_store(&t->seg->features, features);
    t->sym = lks_symbolizer_new(t->seg);
    return 0;
}

void target_close(struct lks_target *t) {
    if (!t->seg) return;
    if (t->gone || kill(t->pid, 0) != 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        atomic_store(&t->seg->exit_realtime_ns, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
        atomic_store(&t->seg->exited, 1);
    }
    lks_symbolizer_free(t->sym);
    munmap(t->seg, t->seg->total_size);
    free(t->maps);
    memset(t, 0, sizeof *t);
}

/* Load bias of an ELF file mapped with its offset-0 page at start: start
 * minus the page-aligned vaddr of its first PT_LOAD (0 for PIE and DSOs). */
static uint64_t elf_bias(pid_t pid, const char *path, uint64_t start) {
    char real[700];
    snprintf(real, sizeof real, "/proc/%d/root%s", (int)pid, path);
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return start;
    Elf64_Ehdr eh;
    uint64_t first = 0;
    if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && memcmp(eh.e_ident, ELFMAG, 4) == 0 &&
        eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr)) {
        for (int i = 0; i < eh.e_phnum && i < 64; i++) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph)) !=
                (ssize_t)sizeof ph)
                break;
            if (ph.p_type == PT_LOAD) {
                first = ph.p_vaddr & ~(uint64_t)0xfff;
                break;
            }
        }
    }
    close(fd);
    return start - first;
}

static uint16_t module_add(struct lks_target *t, const char *path, uint64_t base) {
    struct lks_header *h = t->seg;
    struct lks_module *mods = lks_module_table(h);
    uint32_t used = atomic_load(&h->modules_used);
    for (uint32_t i = 0; i < used && i < LKS_MAX_MODULES; i++)
        if (mods[i].base == base && strcmp(mods[i].path, path) == 0) return (uint16_t)i;
    if (used >= LKS_MAX_MODULES) return LKS_NO_MODULE;
    mods[used].base = base;
    mods[used].bias = elf_bias(t->pid, path, base);
    snprintf(mods[used].path, LKS_MODULE_PATH, "%.*s", LKS_MODULE_PATH - 1, path);
    atomic_store(&h->modules_used, used + 1);
    return (uint16_t)used;
}

/* Rereads the executable file mappings of the target. */
static void maps_load(struct lks_target *t) {
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)t->pid);
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t cap = 0, n = 0;
    struct target_map *maps = NULL;
    char base_path[512] = "";
    uint64_t base = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long start, end, off;
        char perms[8], file[512] = "";
        if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %511[^\n]", &start, &end, perms, &off,
                   file) < 4)
            continue;
        char *p = file;
        while (*p == ' ') p++;
        if (*p != '/') continue;
        if (off == 0 || strcmp(p, base_path) != 0) {
            snprintf(base_path, sizeof base_path, "%s", p);
            base = start;
        }
        if (perms[2] != 'x') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            struct target_map *grown = realloc(maps, cap * sizeof *maps);
            if (!grown) break;
            maps = grown;
        }
        maps[n].start = start;
        maps[n].end = end;
        maps[n].module = module_add(t, p, base);
        n++;
    }
    fclose(f);
    free(t->maps);
    t->maps = maps;
    t->nmaps = n;
    t->maps_gen++;
}

static int maps_find(const struct lks_target *t, uint64_t addr, uint16_t *module) {
    for (size_t i = 0; i < t->nmaps; i++)
        if (addr >= t->maps[i].start && addr < t->maps[i].end) {
            *module = t->maps[i].module;
            return 1;
        }
    return 0;
}

uint16_t target_module(struct lks_target *t, uint64_t addr) {
    uint16_t m = LKS_NO_MODULE;
    if (maps_find(t, addr, &m)) return m;
    maps_load(t);
    maps_find(t, addr, &m);
    return m;
}

uint64_t target_stack_bits(struct lks_target *t, const uint64_t *frames, int n) {
    if (t->rules->nstack == 0) return 0;
    const char *mods[LKS_MAX_FRAMES], *funcs[LKS_MAX_FRAMES];
    char names[LKS_MAX_FRAMES][128];
    if (n > LKS_MAX_FRAMES) n = LKS_MAX_FRAMES;
    for (int i = 0; i < n; i++) {
        uint16_t m = target_module(t, frames[i] - 1);
        mods[i] = m == LKS_NO_MODULE ? NULL : lks_module_table(t->seg)[m].path;
        const char *f = m == LKS_NO_MODULE ? NULL : lks_symbolize_func(t->sym, frames[i], m);
        snprintf(names[i], sizeof names[i], "%s", f ? f : "");
        funcs[i] = f ? names[i] : NULL;
    }
    return lks_rules_stack_bits(t->rules, n, mods, funcs);
}

/* The same hash as the shims' lks_stack_hash, so keys mean the same. */
static uint64_t stack_hash(const uint64_t *frames, int n) {
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)n;
    for (int i = 0; i < n; i++) {
        h ^= frames[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h ? h : 1;
}

/* The frame id of return address ra in the segment's frame table (0 when
 * the table is full). */
static uint32_t target_frame(struct lks_target *t, uint64_t ra) {
    struct lks_frame *f;
    if (ra == 0 || (ra & LKS_FRAME_INTERP_BIT)) return 0;
    uint32_t id = lks_frame_slot(t->seg, ra, &f);
    if (f) {
        f->kind = LKS_FRAME_NATIVE;
        f->addr = ra;
        f->module = target_module(t, ra - 1);
        atomic_store_explicit(&f->ready, 1, memory_order_release);
    }
    return id;
}

uint32_t target_site(struct lks_target *t, const uint64_t *frames, int n, uint64_t bits,
                     int subsys) {
    struct lks_header *h = t->seg;
    if (n > LKS_MAX_FRAMES) n = LKS_MAX_FRAMES;
    uint64_t key = stack_hash(frames, n) ^ ((uint64_t)(subsys + 1) * 0x9E3779B97F4A7C15ull);
    if (!key) key = 1;
    struct lks_site *sites = lks_site_table(h);
    uint32_t mask = h->sites_cap - 1;
    for (uint32_t probe = 0; probe <= mask && probe < 256; probe++) {
        uint32_t i = (uint32_t)(key + probe) & mask;
        uint64_t k = atomic_load(&sites[i].key);
        if (k == key) return i + 1;
        if (k != 0) continue;
        struct lks_site *s = &sites[i];
        atomic_store(&s->key, key);
        s->subsys = (uint16_t)subsys;
        s->stack_rule_bits = bits;
        for (int f = 0; f < n; f++) s->frame[f] = target_frame(t, frames[f]);
        s->nframes = (uint16_t)n;
        atomic_store(&s->ready, 1);
        atomic_fetch_add(&h->sites_used, 1);
        return i + 1;
    }
    atomic_fetch_add(&h->sites_dropped_events, 1);
    atomic_store(&h->sites_dropped, 1);
    return 0;
}

struct lks_site *target_site_get(struct lks_target *t, uint32_t site) {
    if (site == 0 || site > t->seg->sites_cap) return NULL;
    return &lks_site_table(t->seg)[site - 1];
}

/* ---- descriptors ---- */

static void entry_write(struct lks_fd *e, int kind, int subsys, uint32_t site, unsigned port,
                        uint16_t flags, int64_t created, uint64_t inode) {
    uint32_t seq = atomic_load(&e->seq);
    atomic_store(&e->seq, seq | 1);
    e->kind = (uint8_t)kind;
    e->subsys = (uint16_t)subsys;
    e->site = site;
    e->port = (uint16_t)port;
    e->flags = flags;
    e->created_mono_ns = created;
    e->inode = inode;
    e->in_use = 1;
    atomic_store(&e->seq, (seq | 1) + 1);
}

static struct lks_fd entry_take(struct lks_target *t, int fd);
static void count_closed(struct lks_target *t, const struct lks_fd *e);

/* Stores an entry and counts it open in its subsystem and (unless inherited
 * through fork: never the child's leak) its site. A number still held is
 * being created again. If the entry is the snapshot's and the creation came
 * before the snapshot was read, the snapshot saw this very descriptor: its
 * entry is replaced uncounted. Otherwise its predecessor was closed where no
 * probe saw it (SCM_RIGHTS, io_uring): closed out and counted, as fdtrack
 * does. */
static void entry_put(struct lks_target *t, int fd, int kind, int subsys, uint32_t site,
                      unsigned port, uint16_t flags, uint64_t inode, int64_t created) {
    struct lks_header *h = t->seg;
    if (fd < 0) return;
    if ((uint32_t)fd >= h->fds_cap) {
        atomic_fetch_add(&h->fd_untracked, 1);
        return;
    }
    struct lks_fd prev = entry_take(t, fd);
    if (prev.in_use && (prev.flags & (LKS_FD_INHERITED | LKS_FD_FORKED)) == LKS_FD_INHERITED &&
        created < t->snapshot_ns) {
        struct lks_subsys *from = &lks_subsys_table(h)[prev.subsys];
        atomic_fetch_sub(&from->fd_open, 1);
        atomic_fetch_sub(&from->fd_opened, 1);
    } else if (prev.in_use) {
        count_closed(t, &prev);
        atomic_fetch_add(&h->fd_closed_unseen, 1);
    }
    entry_write(&lks_fd_table(h)[fd], kind, subsys, site, port, flags, created, inode);
    if (fd + 1 > atomic_load(&h->fd_hiwater)) atomic_store(&h->fd_hiwater, fd + 1);
    struct lks_subsys *ss = &lks_subsys_table(h)[subsys];
    atomic_fetch_add(&ss->fd_open, 1);
    atomic_fetch_add(&ss->fd_opened, 1);
    struct lks_site *s = flags & LKS_FD_FORKED ? NULL : target_site_get(t, site);
    if (s) {
        atomic_fetch_add(&s->fd_open, 1);
        atomic_fetch_add(&s->fd_opened, 1);
    }
}

static struct lks_fd entry_take(struct lks_target *t, int fd) {
    struct lks_fd out;
    memset(&out, 0, sizeof out);
    if (fd < 0 || (uint32_t)fd >= t->seg->fds_cap) return out;
    struct lks_fd *e = &lks_fd_table(t->seg)[fd];
    if (!e->in_use) return out;
    uint32_t seq = atomic_load(&e->seq);
    atomic_store(&e->seq, seq | 1);
    out.in_use = 1;
    out.kind = e->kind;
    out.subsys = e->subsys;
    out.site = e->site;
    out.port = e->port;
    out.flags = e->flags;
    out.created_mono_ns = e->created_mono_ns;
    out.inode = e->inode;
    e->in_use = 0;
    atomic_store(&e->seq, (seq | 1) + 1);
    return out;
}

static struct lks_fd entry_peek(struct lks_target *t, int fd) {
    struct lks_fd out;
    memset(&out, 0, sizeof out);
    if (fd >= 0 && (uint32_t)fd < t->seg->fds_cap) {
        struct lks_fd *e = &lks_fd_table(t->seg)[fd];
        out.in_use = e->in_use;
        out.kind = e->kind;
        out.subsys = e->subsys;
        out.port = e->port;
        out.flags = e->flags;
        out.inode = e->inode;
    }
    return out;
}

static void count_closed(struct lks_target *t, const struct lks_fd *e) {
    struct lks_subsys *ss = &lks_subsys_table(t->seg)[e->subsys];
    atomic_fetch_sub(&ss->fd_open, 1);
    atomic_fetch_add(&ss->fd_closed, 1);
    struct lks_site *s = e->flags & LKS_FD_FORKED ? NULL : target_site_get(t, e->site);
    if (s) atomic_fetch_sub(&s->fd_open, 1);
}

static void count_failed(struct lks_target *t, int subsys, uint32_t site, int err) {
    struct lks_header *h = t->seg;
    if (err == EMFILE || err == ENFILE) {
        struct lks_subsys *ss = lks_subsys_table(h);
        for (uint32_t i = 0; i < atomic_load(&h->subsys_used) && i < LKS_MAX_SUBSYS; i++)
            atomic_store(&ss[i].fd_open_at_limit, atomic_load(&ss[i].fd_open));
        atomic_store(&h->fd_limit_hit_mono_ns, now_coarse_ns());
    }
    atomic_fetch_add(&lks_subsys_table(h)[subsys].fd_failed[lks_errno_slot(err)], 1);
    struct lks_site *s = target_site_get(t, site);
    if (s) atomic_fetch_add(&s->fd_failed, 1);
}

static int classify(struct lks_target *t, uint64_t bits, int kind, const char *path,
                    unsigned port) {
    struct lks_subject subj = {.kind = kind, .port = port, .path = path, .stack_bits = bits};
    return lks_rules_classify(t->rules, &subj);
}

void target_fd_created(struct lks_target *t, int fd, int err, int kind, const char *path,
                       unsigned port, const uint64_t *frames, int n) {
    uint64_t bits = target_stack_bits(t, frames, n);
    int subsys = classify(t, bits, kind, path && path[0] == '/' ? path : NULL, port);
    uint32_t site = target_site(t, frames, n, bits, subsys);
    if (fd < 0) {
        count_failed(t, subsys, site, err);
        return;
    }
    entry_put(t, fd, kind, subsys, site, port, 0, 0, t->event_ns);
}

void target_fd_dup(struct lks_target *t, int oldfd, int newfd, int err, const uint64_t *frames,
                   int n) {
    uint64_t bits = target_stack_bits(t, frames, n);
    struct lks_fd orig = entry_peek(t, oldfd);
    int subsys = orig.in_use ? orig.subsys : classify(t, bits, LKS_KIND_UNKNOWN, NULL, 0);
    uint32_t site = target_site(t, frames, n, bits, subsys);
    if (newfd < 0) {
        count_failed(t, subsys, site, err);
        return;
    }
    struct lks_fd prev = entry_take(t, newfd);
    if (prev.in_use) count_closed(t, &prev);
    entry_put(t, newfd, orig.in_use ? orig.kind : LKS_KIND_UNKNOWN, subsys, site, orig.port,
              orig.flags & LKS_FD_LISTENER, orig.inode, t->event_ns);
}

void target_fd_accepted(struct lks_target *t, int listener, int fd, int err,
                        const uint64_t *frames, int n) {
    uint64_t bits = target_stack_bits(t, frames, n);
    struct lks_fd l = entry_peek(t, listener);
    int kind = l.in_use && l.kind == LKS_KIND_UNIX ? LKS_KIND_UNIX : LKS_KIND_SOCKET;
    int subsys = classify(t, bits, kind, NULL, l.port);
    uint32_t site = target_site(t, frames, n, bits, subsys);
    if (fd < 0) {
        count_failed(t, subsys, site, err);
        return;
    }
    entry_put(t, fd, kind, subsys, site, l.port, 0, 0, t->event_ns);
}

void target_fd_closed(struct lks_target *t, int fd) {
    struct lks_fd e = entry_take(t, fd);
    if (e.in_use) count_closed(t, &e);
    else if (fd >= 0 && (uint32_t)fd >= t->seg->fds_cap) atomic_fetch_sub(&t->seg->fd_untracked, 1);
    else atomic_fetch_add(&t->seg->fd_unknown_close, 1);
}

void target_fd_close_range(struct lks_target *t, unsigned first, unsigned last) {
    unsigned top = (unsigned)atomic_load(&t->seg->fd_hiwater);
    if (top > t->seg->fds_cap) top = t->seg->fds_cap;
    for (unsigned fd = first; fd < top && fd <= last; fd++) {
        struct lks_fd e = entry_take(t, (int)fd);
        if (e.in_use) count_closed(t, &e);
    }
}

/* The return addresses of a site's frames (0 where a frame was lost). */
static int site_addrs(struct lks_header *h, const struct lks_site *site, uint64_t *addrs) {
    int n = 0;
    for (; site && n < site->nframes && n < LKS_MAX_FRAMES; n++) {
        const struct lks_frame *fr = lks_site_frame(h, site, n);
        addrs[n] = fr ? fr->addr : 0;
    }
    return n;
}

void target_fd_set_port(struct lks_target *t, int fd, unsigned port, int listener) {
    if (fd < 0 || (uint32_t)fd >= t->seg->fds_cap || port == 0) return;
    struct lks_fd *e = &lks_fd_table(t->seg)[fd];
    if (!e->in_use) return;
    struct lks_site *site = target_site_get(t, e->site);
    uint64_t bits = site ? site->stack_rule_bits : 0;
    int subsys = classify(t, bits, e->kind, NULL, port);
    struct lks_fd old = entry_take(t, fd);
    uint16_t flags = (uint16_t)(old.flags | (listener ? LKS_FD_LISTENER : 0));
    if (subsys != old.subsys) {
        uint64_t addrs[LKS_MAX_FRAMES];
        int n = site_addrs(t->seg, site, addrs);
        uint32_t new_site = site ? target_site(t, addrs, n, bits, subsys) : 0;
        struct lks_subsys *from = &lks_subsys_table(t->seg)[old.subsys];
        atomic_fetch_sub(&from->fd_open, 1);
        atomic_fetch_sub(&from->fd_opened, 1);
        if (site && !(old.flags & LKS_FD_FORKED)) {
            atomic_fetch_sub(&site->fd_open, 1);
            atomic_fetch_sub(&site->fd_opened, 1);
        }
        entry_put(t, fd, old.kind, subsys, new_site, port, flags, old.inode, old.created_mono_ns);
        return;
    }
    entry_write(e, old.kind, old.subsys, old.site, port, flags, old.created_mono_ns, old.inode);
}

/* Kind, path, port and inode of the target's descriptor fd: the link in
 * /proc, and for sockets a duplicate taken with pidfd_getfd to ask the
 * socket itself (what fdtrack's probe_fd asks in-process). */
static int probe_remote_fd(struct lks_target *t, int pidfd, int fd, char *path, size_t len,
                           unsigned *port, uint64_t *inode) {
    char link[64];
    *port = 0;
    *inode = 0;
    snprintf(link, sizeof link, "/proc/%d/fd/%d", (int)t->pid, fd);
    ssize_t n = readlink(link, path, len - 1);
    if (n <= 0) return -1;
    path[n] = 0;
    struct stat st;
    if (stat(link, &st) == 0) *inode = (uint64_t)st.st_ino;
    if (strncmp(path, "socket:", 7) == 0) {
        int kind = LKS_KIND_OTHER_SOCKET;
        int local = pidfd >= 0 ? (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0) : -1;
        if (local < 0) return kind;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(local, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_UNIX) kind = LKS_KIND_UNIX;
            else if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
                kind = LKS_KIND_SOCKET;
                struct sockaddr_storage peer;
                socklen_t pl = sizeof peer;
                const struct sockaddr_storage *use =
                    getpeername(local, (struct sockaddr *)&peer, &pl) == 0 ? &peer : &ss;
                *port = use->ss_family == AF_INET
                            ? ntohs(((const struct sockaddr_in *)use)->sin_port)
                            : ntohs(((const struct sockaddr_in6 *)use)->sin6_port);
            }
        }
        close(local);
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
    if (stat(link, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return LKS_KIND_DIR;
        if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return LKS_KIND_DEVICE;
        if (S_ISFIFO(st.st_mode)) return LKS_KIND_PIPE;
        if (S_ISSOCK(st.st_mode)) return LKS_KIND_UNIX;
    }
    return LKS_KIND_FILE;
}

int target_fd_snapshot(struct lks_target *t) {
    char dirpath[64];
    snprintf(dirpath, sizeof dirpath, "/proc/%d/fd", (int)t->pid);
    DIR *d = opendir(dirpath);
    if (!d) return 0;
    int pidfd = (int)syscall(SYS_pidfd_open, t->pid, 0);
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        int fd = atoi(de->d_name);
        char path[512];
        unsigned port;
        uint64_t inode;
        int kind = probe_remote_fd(t, pidfd, fd, path, sizeof path, &port, &inode);
        if (kind < 0) continue;
        if (fd <= 2) kind = LKS_KIND_STDIO;
        struct lks_subject subj = {.kind = kind, .port = port, .path = path[0] == '/' ? path : NULL};
        int subsys = lks_rules_classify(t->rules, &subj);
        entry_put(t, fd, kind, subsys, 0, port, LKS_FD_INHERITED, inode, now_coarse_ns());
        count++;
    }
    closedir(d);
    if (pidfd >= 0) close(pidfd);
    struct timespec ts; /* the precise clock: event times are bpf_ktime_get_ns() */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t->snapshot_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    return count;
}

void target_fork_from(struct lks_target *c, struct lks_target *p) {
    struct lks_header *ch = c->seg, *ph = p->seg;
    ch->ppid = ph->pid;
    ch->forked_from = ph->pid;
    memcpy(ch->comm, ph->comm, sizeof ch->comm);
    memcpy(ch->exe, ph->exe, sizeof ch->exe);
    uint32_t nmod = atomic_load(&ph->modules_used);
    if (nmod > LKS_MAX_MODULES) nmod = LKS_MAX_MODULES;
    memcpy(lks_module_table(ch), lks_module_table(ph), sizeof(struct lks_module) * nmod);
    atomic_store(&ch->modules_used, nmod);
    free(c->maps);
    c->maps = p->nmaps ? malloc(sizeof *c->maps * p->nmaps) : NULL;
    c->nmaps = c->maps ? p->nmaps : 0;
    if (c->maps) memcpy(c->maps, p->maps, sizeof *c->maps * p->nmaps);
    unsigned top = (unsigned)atomic_load(&ph->fd_hiwater);
    if (top > ph->fds_cap) top = ph->fds_cap;
    for (unsigned fd = 0; fd < top; fd++) {
        const struct lks_fd *e = &lks_fd_table(ph)[fd];
        if (!e->in_use) continue;
        struct lks_site *s = target_site_get(p, e->site);
        uint64_t addrs[LKS_MAX_FRAMES];
        int n = site_addrs(ph, s, addrs);
        uint32_t site = s ? target_site(c, addrs, n, s->stack_rule_bits, e->subsys) : 0;
        entry_put(c, (int)fd, e->kind, e->subsys, site, e->port,
                  (uint16_t)(e->flags | LKS_FD_INHERITED | LKS_FD_FORKED), e->inode,
                  e->created_mono_ns);
    }
}

void target_fd_reconcile(struct lks_target *t, const unsigned char *open, unsigned nbits) {
    unsigned top = (unsigned)atomic_load(&t->seg->fd_hiwater);
    if (top > t->seg->fds_cap) top = t->seg->fds_cap;
    for (unsigned fd = 0; fd < top; fd++) {
        if (!lks_fd_table(t->seg)[fd].in_use) continue;
        char link[64], buf[8];
        snprintf(link, sizeof link, "/proc/%d/fd/%u", (int)t->pid, fd);
        int gone = fd < nbits ? !(open[fd / 8] & (1u << (fd % 8)))
                              : readlink(link, buf, sizeof buf) < 0 && errno == ENOENT;
        if (gone) {
            struct lks_fd e = entry_take(t, (int)fd);
            if (e.in_use) count_closed(t, &e);
        }
    }
    free(t->maps); /* a new program image */
    t->maps = NULL;
    t->nmaps = 0;
}

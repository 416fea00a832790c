/* segment.c - create, validate and load segments (format in segment.h).
 *
 * The writer side is called from inside traced processes, with the hooks'
 * re-entrancy guard held: it uses plain syscalls and no stdio.
 */
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ALIGN64(x) (((x) + 63) & ~(uint64_t)63)

void lks_set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int lks_segment_dir(char *buf, size_t len) {
    const char *env = getenv("LEAKSCOPE_DIR");
    int n;
    if (env && *env)
        n = snprintf(buf, len, "%s", env);
    else
        n = snprintf(buf, len, "/dev/shm/leakscope-%u", (unsigned)getuid());
    return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

int lks_segment_dir_prepare(const char *dir, char *err, size_t errlen) {
    struct stat st;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        lks_set_err(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    if (lstat(dir, &st) != 0) {
        lks_set_err(err, errlen, "cannot stat %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        lks_set_err(err, errlen, "%s is not a directory", dir);
        return -1;
    }
    if (st.st_uid != getuid()) {
        lks_set_err(err, errlen, "%s belongs to uid %u, not to us", dir, (unsigned)st.st_uid);
        return -1;
    }
    if (st.st_mode & 077) {
        lks_set_err(err, errlen, "%s is accessible to others (mode %o); expected 0700", dir,
                (unsigned)(st.st_mode & 0777));
        return -1;
    }
    return 0;
}

/* Section offsets for the given capacities; returns the total size. */
static uint64_t layout(struct lks_header *h, uint32_t fds_cap, uint32_t sites_cap,
                       uint64_t heap_size) {
    uint64_t off = ALIGN64(sizeof(struct lks_header));
    h->subsys_off = off;
    off = ALIGN64(off + sizeof(struct lks_subsys) * LKS_MAX_SUBSYS);
    h->modules_off = off;
    off = ALIGN64(off + sizeof(struct lks_module) * LKS_MAX_MODULES);
    h->sites_off = off;
    off = ALIGN64(off + sizeof(struct lks_site) * (uint64_t)sites_cap);
    /* Frames, string keys and strings scale with the sites (sparse anyway). */
    h->frames_cap = sites_cap * 2 < 256 ? 256 : sites_cap * 2;
    h->strkeys_cap = sites_cap / 4 < 64 ? 64 : sites_cap / 4;
    h->strings_size = sites_cap * 8 < 4096 ? 4096 : sites_cap * 8;
    h->strings_used = 1; /* offset 0 is "" */
    h->frames_off = off;
    off = ALIGN64(off + sizeof(struct lks_frame) * (uint64_t)h->frames_cap);
    h->strkeys_off = off;
    off = ALIGN64(off + sizeof(struct lks_strkey) * (uint64_t)h->strkeys_cap);
    h->strings_off = off;
    off = ALIGN64(off + h->strings_size);
    h->fds_off = off;
    off = ALIGN64(off + sizeof(struct lks_fd) * (uint64_t)fds_cap);
    h->heap_off = off;
    h->heap_size = heap_size;
    off = (off + heap_size + 4095) & ~(uint64_t)4095;
    h->sites_cap = sites_cap;
    h->fds_cap = fds_cap;
    return off;
}

struct lks_header *lks_segment_create(const char *dir, pid_t pid, uint32_t fds_cap,
                                      uint32_t sites_cap, uint64_t heap_size, char *err,
                                      size_t errlen) {
    char path[512];
    struct lks_header tmp;
    memset(&tmp, 0, sizeof tmp);
    uint64_t size = layout(&tmp, fds_cap, sites_cap, heap_size);

    if (snprintf(path, sizeof path, "%s/%d.seg", dir, (int)pid) >= (int)sizeof path) {
        lks_set_err(err, errlen, "segment path too long");
        return NULL;
    }
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        lks_set_err(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return NULL;
    }
    if (ftruncate(fd, (off_t)size) != 0) {
        lks_set_err(err, errlen, "cannot size %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return NULL;
    }
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        lks_set_err(err, errlen, "cannot map %s: %s", path, strerror(errno));
        unlink(path);
        return NULL;
    }
    struct lks_header *h = map;
    memcpy(h, &tmp, sizeof tmp);
    h->version = LKS_VERSION;
    h->header_size = sizeof(struct lks_header);
    h->total_size = size;
    h->pid = pid;
    h->uid = getuid();
    memcpy(h->magic, LKS_MAGIC, 8); /* last: the segment is now valid */
    return h;
}

void lks_segment_unmap(struct lks_header *h, size_t len) {
    if (h) munmap(h, len);
}

static int section_fits(uint64_t off, uint64_t count, uint64_t elem, uint64_t total) {
    if (off % 8 || off > total) return 0;
    if (elem && count > (total - off) / elem) return 0;
    return 1;
}

int lks_segment_validate(const void *image, size_t len, char *err, size_t errlen) {
    const struct lks_header *h = image;
    if (len < sizeof(struct lks_header)) {
        lks_set_err(err, errlen, "truncated segment (%zu bytes, header needs %zu)", len,
                sizeof(struct lks_header));
        return -1;
    }
    if (memcmp(h->magic, LKS_MAGIC, 8) != 0) {
        lks_set_err(err, errlen, "not a leakscope segment (bad magic)");
        return -1;
    }
    if (h->version != LKS_VERSION || h->header_size != sizeof(struct lks_header)) {
        lks_set_err(err, errlen, "segment version %u (header %u bytes) is not the supported %u",
                h->version, h->header_size, LKS_VERSION);
        return -1;
    }
    if (h->total_size != len) {
        lks_set_err(err, errlen, "truncated or corrupt segment: header says %llu bytes, file has %zu",
                (unsigned long long)h->total_size, len);
        return -1;
    }
    if (h->sites_cap == 0 || (h->sites_cap & (h->sites_cap - 1)) || h->sites_cap > (1u << 20) ||
        h->fds_cap > (1u << 22)) {
        lks_set_err(err, errlen, "corrupt segment: capacities sites=%u fds=%u", h->sites_cap,
                h->fds_cap);
        return -1;
    }
    if (!section_fits(h->subsys_off, LKS_MAX_SUBSYS, sizeof(struct lks_subsys), len) ||
        !section_fits(h->modules_off, LKS_MAX_MODULES, sizeof(struct lks_module), len) ||
        !section_fits(h->sites_off, h->sites_cap, sizeof(struct lks_site), len) ||
        !section_fits(h->frames_off, h->frames_cap, sizeof(struct lks_frame), len) ||
        !section_fits(h->strkeys_off, h->strkeys_cap, sizeof(struct lks_strkey), len) ||
        !section_fits(h->strings_off, h->strings_size, 1, len) || h->strings_size == 0 ||
        h->frames_cap > (1u << 22) || h->strkeys_cap > (1u << 22) ||
        !section_fits(h->fds_off, h->fds_cap, sizeof(struct lks_fd), len) ||
        !section_fits(h->heap_off, h->heap_size, 1, len) ||
        h->subsys_off < sizeof(struct lks_header)) {
        lks_set_err(err, errlen, "corrupt segment: a section lies outside the file");
        return -1;
    }
    if (atomic_load(&((struct lks_header *)h)->subsys_used) > LKS_MAX_SUBSYS ||
        atomic_load(&((struct lks_header *)h)->modules_used) > LKS_MAX_MODULES) {
        lks_set_err(err, errlen, "corrupt segment: table counts out of range");
        return -1;
    }
    return 0;
}

/* Makes every string and index in a private copy safe to use as-is. */
static void sanitize_copy(struct lks_header *h) {
    h->comm[sizeof h->comm - 1] = 0;
    h->role[sizeof h->role - 1] = 0;
    h->session[sizeof h->session - 1] = 0;
    h->exe[sizeof h->exe - 1] = 0;
    struct lks_subsys *ss = lks_subsys_table(h);
    for (int i = 0; i < LKS_MAX_SUBSYS; i++) ss[i].name[LKS_SUBSYS_NAME - 1] = 0;
    struct lks_module *mods = lks_module_table(h);
    for (int i = 0; i < LKS_MAX_MODULES; i++) mods[i].path[LKS_MODULE_PATH - 1] = 0;
    uint32_t nsub = atomic_load(&h->subsys_used);
    struct lks_site *sites = lks_site_table(h);
    for (uint32_t i = 0; i < h->sites_cap; i++) {
        if (sites[i].nframes > LKS_MAX_FRAMES) sites[i].nframes = LKS_MAX_FRAMES;
        if (sites[i].subsys >= nsub) sites[i].subsys = LKS_SUBSYS_OTHER;
        for (int f = 0; f < LKS_MAX_FRAMES; f++)
            if (sites[i].frame[f] > h->frames_cap) sites[i].frame[f] = 0;
    }
    struct lks_frame *frames = lks_frame_table(h);
    for (uint32_t i = 0; i < h->frames_cap; i++) {
        if (frames[i].module >= LKS_MAX_MODULES) frames[i].module = LKS_NO_MODULE;
        if (frames[i].func >= h->strings_size) frames[i].func = 0;
        if (frames[i].file >= h->strings_size) frames[i].file = 0;
    }
    lks_string_area(h)[h->strings_size - 1] = 0;
    struct lks_fd *fds = lks_fd_table(h);
    for (uint32_t i = 0; i < h->fds_cap; i++) {
        if (!fds[i].in_use) continue;
        if (fds[i].subsys >= nsub) fds[i].subsys = LKS_SUBSYS_OTHER;
        if (fds[i].site > h->sites_cap) fds[i].site = 0;
        if (fds[i].kind >= LKS_KIND_COUNT) fds[i].kind = LKS_KIND_UNKNOWN;
    }
}

struct lks_header *lks_segment_load(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        lks_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        lks_set_err(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_uid != getuid() && getuid() != 0) {
        lks_set_err(err, errlen, "%s: owned by uid %u, refusing to read", path, (unsigned)st.st_uid);
        close(fd);
        return NULL;
    }
    if (st.st_size < (off_t)sizeof(struct lks_header) || st.st_size > (off_t)1 << 32) {
        lks_set_err(err, errlen, "%s: truncated or corrupt segment (%lld bytes)", path,
                (long long)st.st_size);
        close(fd);
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    void *buf = aligned_alloc(64, (len + 63) & ~(size_t)63);
    if (!buf) {
        lks_set_err(err, errlen, "%s: out of memory", path);
        close(fd);
        return NULL;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    char why[200];
    if (lks_segment_validate(buf, got, why, sizeof why) != 0) {
        lks_set_err(err, errlen, "%s: %s", path, why);
        free(buf);
        return NULL;
    }
    sanitize_copy(buf);
    return buf;
}

void lks_segment_free(struct lks_header *h) { free(h); }

struct lks_header *lks_segment_map_rw(const char *path, size_t *lenp, char *err, size_t errlen) {
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        lks_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid() ||
        st.st_size < (off_t)sizeof(struct lks_header) || st.st_size > (off_t)1 << 32) {
        lks_set_err(err, errlen, "%s: not a segment of ours", path);
        close(fd);
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        lks_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char why[200];
    if (lks_segment_validate(map, len, why, sizeof why) != 0) {
        lks_set_err(err, errlen, "%s: %s", path, why);
        munmap(map, len);
        return NULL;
    }
    *lenp = len;
    return map;
}

uint64_t lks_proc_start_ticks(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    /* comm may hold spaces and parentheses: fields start after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    int field = 2;
    for (; *p && field < 22; p++)
        if (*p == ' ') field++;
    return strtoull(p, NULL, 10);
}

int lks_segment_process_alive(const struct lks_header *h) {
    if (atomic_load(&((struct lks_header *)h)->exited)) return 0;
    uint64_t ticks = lks_proc_start_ticks(h->pid);
    return ticks != 0 && ticks == h->proc_start_ticks;
}

static const char *const errno_names[LKS_ERR_SLOTS] = {"EMFILE", "ENFILE", "ENOMEM",
                                                       "EACCES", "ENOENT", "OTHER"};

const char *lks_errno_slot_name(int slot) {
    return (slot >= 0 && slot < LKS_ERR_SLOTS) ? errno_names[slot] : "OTHER";
}

int lks_errno_slot(int err) {
    switch (err) {
    case EMFILE: return LKS_ERR_EMFILE;
    case ENFILE: return LKS_ERR_ENFILE;
    case ENOMEM: return LKS_ERR_ENOMEM;
    case EACCES: return LKS_ERR_EACCES;
    case ENOENT: return LKS_ERR_ENOENT;
    default: return LKS_ERR_OTHER;
    }
}

static const char *const kind_names[LKS_KIND_COUNT] = {
    "unknown", "file",    "dir",     "pipe",     "socket",  "unix",  "other-socket", "epoll",
    "eventfd", "timerfd", "signalfd", "inotify", "memfd",   "stdio", "device"};

const char *lks_kind_name(int kind) {
    return (kind >= 0 && kind < LKS_KIND_COUNT) ? kind_names[kind] : "unknown";
}

int lks_kind_from_name(const char *name) {
    for (int i = 0; i < LKS_KIND_COUNT; i++)
        if (strcmp(kind_names[i], name) == 0) return i;
    return -1;
}

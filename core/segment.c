/* segment.c - create, validate and load segments (format in segment.h).
 *
 * The writer side is called from inside traced processes, with the hooks'
 * re-entrancy guard held: it uses plain syscalls and no stdio.
 */
#define _GNU_SOURCE
#include "segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
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
    if (env && *env && env[0] != '/') {
        /* Relative: anchor it now, so a process that changes directory
         * later still writes where the reader looks. */
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd)) return -1;
        n = snprintf(buf, len, "%s/%s", cwd, env);
    } else if (env && *env)
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

struct lks_header *lks_segment_create_unpublished(const char *dir, pid_t pid, uint32_t fds_cap,
                                                  uint32_t sites_cap, uint64_t heap_size,
                                                  char *err, size_t errlen) {
    char path[512];
    struct lks_header tmp;
    memset(&tmp, 0, sizeof tmp);
    if (sites_cap > LKS_MAX_SITES_CAP) sites_cap = LKS_MAX_SITES_CAP;
    if (fds_cap > LKS_MAX_FDS_CAP) fds_cap = LKS_MAX_FDS_CAP;
    if (heap_size > LKS_HEAP_AREA_MAX(sites_cap)) heap_size = LKS_HEAP_AREA_MAX(sites_cap);
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
    return h;
}

void lks_segment_publish(struct lks_header *h) {
    atomic_thread_fence(memory_order_release);
    memcpy(h->magic, LKS_MAGIC, 8); /* last: the segment is now valid */
}

struct lks_header *lks_segment_create(const char *dir, pid_t pid, uint32_t fds_cap,
                                      uint32_t sites_cap, uint64_t heap_size, char *err,
                                      size_t errlen) {
    struct lks_header *h =
        lks_segment_create_unpublished(dir, pid, fds_cap, sites_cap, heap_size, err, errlen);
    if (h) lks_segment_publish(h);
    return h;
}

uint32_t lks_frame_slot(struct lks_header *h, uint64_t key, struct lks_frame **fresh) {
    struct lks_frame *frames = lks_frame_table(h);
    uint32_t mask = h->frames_cap - 1;
    uint64_t x = key * 0x9E3779B97F4A7C15ull;
    uint32_t start = (uint32_t)(x >> 32);
    *fresh = NULL;
    for (uint32_t probe = 0; probe < 64 && probe <= mask; probe++) {
        uint32_t i = (start + probe) & mask;
        uint64_t k = atomic_load_explicit(&frames[i].key, memory_order_acquire);
        if (k == key) return i + 1;
        if (k != 0) continue;
        uint64_t zero = 0;
        if (!atomic_compare_exchange_strong(&frames[i].key, &zero, key)) {
            if (zero == key) return i + 1;
            continue;
        }
        atomic_fetch_add_explicit(&h->frames_used, 1, memory_order_relaxed);
        *fresh = &frames[i];
        return i + 1;
    }
    atomic_fetch_add_explicit(&h->frames_dropped, 1, memory_order_relaxed);
    return 0;
}

void lks_segment_unmap(struct lks_header *h, size_t len) {
    if (h) munmap(h, len);
}

/* The header's own consistency: everything a reader needs before it reads
 * more than the header. Every offset and the total size must be exactly what
 * the capacities imply (the layout is canonical), the capacities and the heap
 * area are bounded, and the file must be as long as the header says. */
static int header_check(const struct lks_header *h, uint64_t file_size, char *err,
                        size_t errlen) {
    if (memcmp(h->magic, LKS_MAGIC, 8) != 0) {
        lks_set_err(err, errlen, "not a leakscope segment (bad magic)");
        return -1;
    }
    if (h->version != LKS_VERSION || h->header_size != sizeof(struct lks_header)) {
        lks_set_err(err, errlen, "segment version %u (header %u bytes) is not the supported %u",
                h->version, h->header_size, LKS_VERSION);
        return -1;
    }
    if (h->sites_cap == 0 || (h->sites_cap & (h->sites_cap - 1)) ||
        h->sites_cap > LKS_MAX_SITES_CAP || h->fds_cap > LKS_MAX_FDS_CAP) {
        lks_set_err(err, errlen, "corrupt segment: capacities sites=%u fds=%u", h->sites_cap,
                h->fds_cap);
        return -1;
    }
    if (h->heap_size > LKS_HEAP_AREA_MAX(h->sites_cap)) {
        lks_set_err(err, errlen, "corrupt segment: heap area of %llu bytes exceeds the %llu its "
                "%u sites can need", (unsigned long long)h->heap_size,
                (unsigned long long)LKS_HEAP_AREA_MAX(h->sites_cap), h->sites_cap);
        return -1;
    }
    struct lks_header want;
    memset(&want, 0, sizeof want);
    uint64_t size = layout(&want, h->fds_cap, h->sites_cap, h->heap_size);
    if (h->subsys_off != want.subsys_off || h->modules_off != want.modules_off ||
        h->sites_off != want.sites_off || h->fds_off != want.fds_off ||
        h->frames_off != want.frames_off || h->strkeys_off != want.strkeys_off ||
        h->strings_off != want.strings_off || h->frames_cap != want.frames_cap ||
        h->strkeys_cap != want.strkeys_cap || h->strings_size != want.strings_size ||
        h->heap_off != want.heap_off || h->total_size != size) {
        lks_set_err(err, errlen, "corrupt segment: sizes or offsets do not match its capacities "
                "(header says %llu bytes, capacities need %llu)",
                (unsigned long long)h->total_size, (unsigned long long)size);
        return -1;
    }
    if (file_size != h->total_size) {
        lks_set_err(err, errlen, "truncated or corrupt segment: header says %llu bytes, file has %llu",
                (unsigned long long)h->total_size, (unsigned long long)file_size);
        return -1;
    }
    if (atomic_load(&((struct lks_header *)h)->subsys_used) > LKS_MAX_SUBSYS ||
        atomic_load(&((struct lks_header *)h)->modules_used) > LKS_MAX_MODULES) {
        lks_set_err(err, errlen, "corrupt segment: table counts out of range");
        return -1;
    }
    return 0;
}

int lks_segment_validate(const void *image, size_t len, char *err, size_t errlen) {
    if (len < sizeof(struct lks_header)) {
        lks_set_err(err, errlen, "truncated segment (%zu bytes, header needs %zu)", len,
                sizeof(struct lks_header));
        return -1;
    }
    return header_check(image, len, err, errlen);
}

/* Makes every string and index in a private copy safe to use as-is. */
static void sanitize_head(struct lks_header *h, struct lks_subsys *ss);

static void sanitize_copy(struct lks_header *h) {
    sanitize_head(h, lks_subsys_table(h));
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

static const char *file_type_name(mode_t m) {
    return S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
         : S_ISSOCK(m) ? "a socket" : S_ISDIR(m) ? "a directory" : S_ISLNK(m) ? "a symbolic link"
         : "not a regular file";
}

int lks_open_regular(const char *path, int nofollow, struct stat *st, char *err, size_t errlen) {
    struct stat pre;
    if ((nofollow ? lstat(path, &pre) : stat(path, &pre)) != 0) {
        int e = errno;
        lks_set_err(err, errlen, "%s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    if (!S_ISREG(pre.st_mode)) {
        lks_set_err(err, errlen, "%s: is %s, not a regular file; refusing to open it", path,
                file_type_name(pre.st_mode));
        errno = EINVAL;
        return -1;
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
    if (fd < 0) {
        int e = errno;
        lks_set_err(err, errlen, "%s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) || st->st_dev != pre.st_dev ||
        st->st_ino != pre.st_ino) {
        lks_set_err(err, errlen, "%s: changed while being opened; refusing it", path);
        close(fd);
        errno = EINVAL;
        return -1;
    }
    return fd;
}

/* Reads exactly len bytes at off; 0 on success. */
static int pread_full(int fd, void *buf, size_t len, off_t off) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, off + (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    return 0;
}

/* Opens a segment file for a reader and checks it before anything is read:
 * regular, ours (for root too: a file in our directory owned by someone else
 * was planted), header consistent with the file. Fills hdr and st. */
static int open_segment(const char *path, struct lks_header *hdr, struct stat *st, char *err,
                        size_t errlen) {
    int fd = lks_open_regular(path, 1, st, err, errlen);
    if (fd < 0) return -1;
    if (st->st_uid != getuid()) {
        lks_set_err(err, errlen, "%s: owned by uid %u, not by us (uid %u); refusing to read it",
                path, (unsigned)st->st_uid, (unsigned)getuid());
        close(fd);
        return -1;
    }
    if (st->st_size < (off_t)sizeof(struct lks_header)) {
        lks_set_err(err, errlen, "%s: truncated segment (%lld bytes)", path, (long long)st->st_size);
        close(fd);
        return -1;
    }
    char why[300];
    if (pread_full(fd, hdr, sizeof *hdr, 0) != 0) {
        lks_set_err(err, errlen, "%s: cannot read the header", path);
        close(fd);
        return -1;
    }
    if (header_check(hdr, (uint64_t)st->st_size, why, sizeof why) != 0) {
        lks_set_err(err, errlen, "%s: %s", path, why);
        close(fd);
        return -1;
    }
    if (hdr->uid != getuid()) {
        lks_set_err(err, errlen, "%s: written for uid %u, not for us; refusing it", path,
                (unsigned)hdr->uid);
        close(fd);
        return -1;
    }
    return fd;
}

static void sanitize_head(struct lks_header *h, struct lks_subsys *ss) {
    h->comm[sizeof h->comm - 1] = 0;
    h->role[sizeof h->role - 1] = 0;
    h->session[sizeof h->session - 1] = 0;
    h->exe[sizeof h->exe - 1] = 0;
    for (int i = 0; i < LKS_MAX_SUBSYS; i++) ss[i].name[LKS_SUBSYS_NAME - 1] = 0;
}

int lks_segment_load_head(const char *path, struct lks_segment_head *out, char *err,
                          size_t errlen) {
    struct stat st;
    int fd = open_segment(path, &out->h, &st, err, errlen);
    if (fd < 0) return -1;
    int rc = pread_full(fd, out->subsys, sizeof out->subsys, (off_t)out->h.subsys_off);
    close(fd);
    if (rc != 0) {
        lks_set_err(err, errlen, "%s: cannot read the subsystem table", path);
        return -1;
    }
    sanitize_head(&out->h, out->subsys);
    out->file_size = (uint64_t)st.st_size;
    out->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    return 0;
}

/* Reads the data of fd into buf (len bytes, zero-filled already): only the
 * ranges the file has data in (tmpfs keeps holes), so a reader's cost is
 * what the writer wrote, not the segment's capacity. 0, or -1 if the file
 * ended early. */
static int pread_present(int fd, char *buf, size_t len) {
    off_t off = 0;
    while ((size_t)off < len) {
        off_t data = lseek(fd, off, SEEK_DATA);
        if (data < 0) return errno == ENXIO ? 0 : pread_full(fd, buf + off, len - (size_t)off, off);
        if ((size_t)data >= len) return 0;
        off_t hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0 || (size_t)hole > len) hole = (off_t)len;
        if (pread_full(fd, buf + data, (size_t)(hole - data), data) != 0) return -1;
        off = hole;
    }
    return 0;
}

static size_t copy_len(size_t len) { return (len + 4095) & ~(size_t)4095; }

struct lks_header *lks_segment_load(const char *path, char *err, size_t errlen) {
    struct lks_header hdr;
    struct stat st;
    int fd = open_segment(path, &hdr, &st, err, errlen);
    if (fd < 0) return NULL;
    size_t len = (size_t)hdr.total_size;
    /* Anonymous pages: the holes cost neither a copy nor memory. */
    void *buf = mmap(NULL, copy_len(len), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (buf == MAP_FAILED) {
        lks_set_err(err, errlen, "%s: out of memory", path);
        close(fd);
        return NULL;
    }
    int rc = pread_present(fd, buf, len);
    close(fd);
    char why[300];
    if (rc != 0) {
        lks_set_err(err, errlen, "%s: truncated while being read", path);
        munmap(buf, copy_len(len));
        return NULL;
    }
    /* The writer may have replaced the file between the two reads. */
    if (lks_segment_validate(buf, len, why, sizeof why) != 0) {
        lks_set_err(err, errlen, "%s: %s", path, why);
        munmap(buf, copy_len(len));
        return NULL;
    }
    sanitize_copy(buf);
    return buf;
}

/* The copy's total_size was checked against its length by the load. */
void lks_segment_free(struct lks_header *h) {
    if (h) munmap(h, copy_len((size_t)h->total_size));
}

struct lks_header *lks_segment_map_rw(const char *path, size_t *lenp, char *err, size_t errlen) {
    struct lks_header hdr;
    struct stat st;
    int rfd = open_segment(path, &hdr, &st, err, errlen);
    if (rfd < 0) return NULL;
    close(rfd);
    int fd = open(path, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        lks_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat now;
    if (fstat(fd, &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
        lks_set_err(err, errlen, "%s: replaced while being opened", path);
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

/* State letter of a process (/proc/<pid>/stat field 3), 0 if unreadable. */
static char proc_state(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : 0;
}

/* A process that ended with _exit ran no destructor; until its parent reaps
 * it, it is a zombie with the same start time: ended all the same. */
int lks_segment_process_alive(const struct lks_header *h) {
    if (atomic_load(&((struct lks_header *)h)->exited)) return 0;
    uint64_t ticks = lks_proc_start_ticks(h->pid);
    if (ticks == 0 || ticks != h->proc_start_ticks) return 0;
    char state = proc_state(h->pid);
    return state != 'Z' && state != 'X';
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

int lks_segment_dir_check(const char *dir, char *err, size_t errlen) {
    struct stat st;
    if (stat(dir, &st) != 0) {
        int e = errno;
        if (e == ENOENT) lks_set_err(err, errlen, "%s does not exist", dir);
        else lks_set_err(err, errlen, "cannot read %s: %s", dir, strerror(e));
        errno = e;
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        lks_set_err(err, errlen, "%s is not a directory", dir);
        errno = ENOTDIR;
        return -1;
    }
    if (st.st_uid != getuid()) {
        lks_set_err(err, errlen, "%s belongs to uid %u, not to us (uid %u); refusing to read "
                "segments others could have planted", dir, (unsigned)st.st_uid, (unsigned)getuid());
        errno = EPERM;
        return -1;
    }
    if (st.st_mode & 022) {
        lks_set_err(err, errlen, "%s is writable by others (mode %o); refusing to read segments "
                "others could have planted", dir, (unsigned)(st.st_mode & 0777));
        errno = EPERM;
        return -1;
    }
    return 0;
}

int64_t lks_segment_grace_s(void) {
    const char *env = getenv("LEAKSCOPE_SEGMENT_GRACE");
    if (env && *env) {
        char *end;
        long long v = strtoll(env, &end, 10);
        if (*end == 0 && v >= 0) return v;
    }
    return 300;
}

static int64_t realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Is the `leakscope run` that started session ("run-<pid>-<secs>") alive?
 * Its segments wait for its summary, however long the run takes. */
static int session_run_alive(const char *session) {
    if (strncmp(session, "run-", 4) != 0) return 0;
    char *end;
    long pid = strtol(session + 4, &end, 10);
    if (end == session + 4 || *end != '-' || pid <= 0) return 0;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* A segment its writer never finished (killed between creating the file
 * and writing the magic: empty, or no magic yet) is removed once the pid in
 * its name is gone and the file is older than the grace period. Anything
 * else that fails validation (another version, foreign, corrupt) is left. */
static int sweep_unfinished(int dirfd, const char *dir, const char *name, int64_t grace_ns,
                            int64_t now) {
    char path[600], why[100];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return 0;
    struct stat st;
    int fd = lks_open_regular(path, 1, &st, why, sizeof why);
    if (fd < 0) return 0;
    char magic[8] = {0};
    ssize_t n = st.st_size >= 8 ? pread(fd, magic, sizeof magic, 0) : 0;
    close(fd);
    static const char none[8];
    if (st.st_uid != getuid() || (st.st_size >= 8 && (n != 8 || memcmp(magic, none, 8) != 0)))
        return 0;
    char *end;
    long pid = strtol(name, &end, 10);
    if (end == name || strcmp(end, ".seg") != 0 || pid <= 0) return 0;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) return 0;
    int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    if (now - mtime < grace_ns) return 0;
    struct stat again;
    if (fstatat(dirfd, name, &again, AT_SYMLINK_NOFOLLOW) != 0 || again.st_dev != st.st_dev ||
        again.st_ino != st.st_ino)
        return 0;
    return unlinkat(dirfd, name, 0) == 0;
}

/* One file of a sweep: removes it if the policy in segment.h says so. */
static int sweep_one(int dirfd, const char *dir, const char *name, int64_t grace_ns, int64_t now) {
    char path[600];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return 0;
    struct lks_header h;
    struct stat st;
    int fd = open_segment(path, &h, &st, NULL, 0);
    if (fd < 0) return sweep_unfinished(dirfd, dir, name, grace_ns, now);
    close(fd);
    h.session[sizeof h.session - 1] = 0;
    if (atomic_load(&h.kept) || lks_segment_process_alive(&h) || session_run_alive(h.session))
        return 0;
    int64_t dead_since = atomic_load(&h.exit_realtime_ns);
    if (!atomic_load(&h.exited) || dead_since <= 0) {
        /* Killed: no exit time. The file's mtime (or the start) is the last
         * sign of life we have. */
        int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        dead_since = mtime > h.start_realtime_ns ? mtime : h.start_realtime_ns;
    }
    if (now - dead_since < grace_ns) return 0;
    /* Remove the file we judged, not a new segment that took its name. */
    struct stat again;
    if (fstatat(dirfd, name, &again, AT_SYMLINK_NOFOLLOW) != 0 || again.st_dev != st.st_dev ||
        again.st_ino != st.st_ino)
        return 0;
    return unlinkat(dirfd, name, 0) == 0;
}

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

int lks_segment_dir_sweep(const char *dir, int64_t grace_s) {
    if (lks_segment_dir_check(dir, NULL, 0) != 0) return 0;
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dirfd < 0) return 0;
    int64_t grace_ns = grace_s > INT64_MAX / 1000000000 ? INT64_MAX : grace_s * 1000000000;
    int64_t now = realtime_ns();
    int removed = 0;
    char buf[1024] __attribute__((aligned(8)));
    for (;;) {
        long n = syscall(SYS_getdents64, dirfd, buf, sizeof buf);
        if (n <= 0) break;
        for (long off = 0; off < n;) {
            struct linux_dirent64 *de = (struct linux_dirent64 *)(buf + off);
            off += de->d_reclen;
            size_t len = strlen(de->d_name);
            if (len < 5 || strcmp(de->d_name + len - 4, ".seg") != 0) continue;
            if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN) continue;
            removed += sweep_one(dirfd, dir, de->d_name, grace_ns, now);
        }
    }
    close(dirfd);
    return removed;
}

void lks_segment_dir_sweep_maybe(const char *dir) {
    int64_t grace = lks_segment_grace_s();
    int64_t every_ns = (grace < 60 ? grace : 60) * 1000000000;
    char stamp[600];
    if (snprintf(stamp, sizeof stamp, "%s/.sweep", dir) >= (int)sizeof stamp) return;
    struct stat st;
    if (lstat(stamp, &st) == 0) {
        int64_t last = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        if (realtime_ns() - last < every_ns) return;
        if (!S_ISREG(st.st_mode) || utimensat(AT_FDCWD, stamp, NULL, AT_SYMLINK_NOFOLLOW) != 0)
            return;
    } else {
        int fd = open(stamp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) return;
        close(fd);
    }
    lks_segment_dir_sweep(dir, grace);
}

/* runtmp.c - the temporary recording directory of `leakscope run` (contract
 * in runtmp.h): made under a name that says whose it is, removed by the run
 * at its end (also on SIGINT/SIGTERM/SIGHUP), and swept by later commands
 * when the run was killed before it could.
 */
#define _GNU_SOURCE
#include "runtmp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "segment.h"

#define RUNTMP_PARENT "/tmp"
#define RUNTMP_PREFIX "leakscope-run-"

/* What a run's recording leaves in its directory: SQLite's database, its
 * write-ahead log, the log's index and a rollback journal. A directory that
 * holds anything else is not removed. */
static const char *const recording_files[] = {"run.db", "run.db-wal", "run.db-shm",
                                              "run.db-journal"};

int runtmp_create(char *buf, size_t len) {
    pid_t pid = getpid();
    int n = snprintf(buf, len, "%s/%s%d-%llu-XXXXXX", RUNTMP_PARENT, RUNTMP_PREFIX, (int)pid,
                     (unsigned long long)lks_proc_start_ticks(pid));
    if (n < 0 || (size_t)n >= len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkdtemp(buf) ? 0 : -1;
}

/* Removes the recording files in name (under the directory parent) and then
 * name itself, never following a symbolic link. Returns 1 if it is gone. */
static int remove_at(int parent, const char *name) {
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return 0;
    for (size_t i = 0; i < sizeof recording_files / sizeof recording_files[0]; i++)
        unlinkat(fd, recording_files[i], 0);
    close(fd);
    return unlinkat(parent, name, AT_REMOVEDIR) == 0;
}

void runtmp_remove(const char *dir) { remove_at(AT_FDCWD, dir); }

static int64_t mtime_ns(const struct stat *st) {
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* Is the run that made the directory name still running: its pid, started
 * at the same /proc start time? A name not made by runtmp_create (an older
 * leakscope's) counts as running: it is not ours to judge. */
static int run_alive(const char *name) {
    const char *p = name + strlen(RUNTMP_PREFIX);
    char *end;
    long pid = strtol(p, &end, 10);
    if (end == p || *end != '-' || pid <= 0) return 1;
    p = end + 1;
    unsigned long long start = strtoull(p, &end, 10);
    if (end == p || *end != '-' || strlen(end + 1) != 6) return 1;
    return lks_proc_start_ticks((pid_t)pid) == start && start != 0;
}

/* Latest write to the directory fd or to the recording in it, or -1 if it
 * holds anything but the recording's files. */
static int64_t last_write_ns(int fd, const struct stat *st) {
    int64_t latest = mtime_ns(st);
    int dup_fd = dup(fd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0) close(dup_fd);
        return -1;
    }
    struct dirent *de;
    while (latest >= 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        int known = 0;
        for (size_t i = 0; i < sizeof recording_files / sizeof recording_files[0]; i++)
            known |= strcmp(de->d_name, recording_files[i]) == 0;
        struct stat fst;
        if (!known || fstatat(fd, de->d_name, &fst, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(fst.st_mode))
            latest = -1;
        else if (mtime_ns(&fst) > latest)
            latest = mtime_ns(&fst);
    }
    closedir(d);
    return latest;
}

/* A directory to sweep: a run's, ours, its run gone, nothing in it but the
 * recording, and nothing written for grace_ns (a killed run's recorder
 * takes one last sample; a live run in another pid namespace, which looks
 * gone from here, writes every second). */
static int stale(int parent, const char *name, int64_t now_ns, int64_t grace_ns) {
    if (run_alive(name)) return 0;
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat st;
    int64_t latest = -1;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid())
        latest = last_write_ns(fd, &st);
    close(fd);
    return latest >= 0 && now_ns - latest >= grace_ns;
}

int runtmp_sweep(void) {
    int64_t grace = lks_segment_grace_s();
    int64_t grace_ns = grace > INT64_MAX / 1000000000 ? INT64_MAX : grace * 1000000000;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    DIR *d = opendir(RUNTMP_PARENT);
    if (!d) return 0;
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, RUNTMP_PREFIX, strlen(RUNTMP_PREFIX)) != 0) continue;
        if (stale(dirfd(d), de->d_name, now_ns, grace_ns)) removed += remove_at(dirfd(d), de->d_name);
    }
    closedir(d);
    return removed;
}

/* frontier.c - per-domain frontier files.
 *
 * Files rather than Redis lists keep the frontier (the largest part of a
 * crawl's state) on disk; Redis keeps only each domain's offset and size.
 * Every function here that opens a frontier file is named frontier_* so
 * that leakscope can tell frontier descriptors apart by call site. */
#include "frontier.h"
#include "inject.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

long frontier_files_open;
long frontier_open_errors;
long frontier_open_emfile;

/* Spread domains over 256 directories so none grows huge. */
static unsigned frontier_bucket(const char *domain) {
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)domain; *p; p++) h = (h ^ *p) * 16777619u;
    return h & 0xff;
}

int frontier_path(const char *data_dir, const char *domain, char *out, size_t outlen) {
    int n = snprintf(out, outlen, "%s/frontiers/%02x/%s.frontier", data_dir, frontier_bucket(domain), domain);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

static void frontier_count_open_error(void) {
    frontier_open_errors++;
    if (errno == EMFILE || errno == ENFILE) frontier_open_emfile++;
}

/* mkdir -p of the file's directory. */
static int frontier_make_dirs(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) return -1;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

int frontier_append(const char *data_dir, const char *domain, const char *data, size_t len, uint64_t *end) {
    char path[4096];
    if (frontier_path(data_dir, domain, path, sizeof(path)) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT && frontier_make_dirs(path) == 0)
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        frontier_count_open_error();
        return -1;
    }
    frontier_files_open++;
    ssize_t written = write(fd, data, len);
    int saved = errno;
    off_t pos = written == (ssize_t)len ? lseek(fd, 0, SEEK_CUR) : -1;
    close(fd);
    frontier_files_open--;
    if (written != (ssize_t)len || pos < 0) {
        errno = written < 0 ? saved : EIO;
        return -1;
    }
    *end = (uint64_t)pos;
    return 0;
}

long frontier_read_batch(const char *data_dir, const char *domain, uint64_t offset, uint64_t size,
                         char *buf, size_t cap) {
    char path[4096];
    if (offset >= size) return 0;
    if (frontier_path(data_dir, domain, path, sizeof(path)) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    FILE *f = fopen(path, "re");
    if (!f) {
        frontier_count_open_error();
        return -1;
    }
    frontier_files_open++;
    if (fseeko(f, (off_t)offset, SEEK_SET) != 0) {
        int saved = errno;
        fclose(f);
        frontier_files_open--;
        errno = saved;
        return -1;
    }
    size_t n = fread(buf, 1, cap, f);
    if (n < cap) {
        /* Short read: the file ended before the buffer was full. */
        if (ferror(f)) {
            fclose(f);
            frontier_files_open--;
            errno = EIO;
            return -1;
        }
        if (inject_mode != INJECT_FRONTIER_FD) {
            fclose(f);
            frontier_files_open--;
        }
        /* INJECT_FRONTIER_FD: this path returns without fclose(f). */
    } else {
        fclose(f);
        frontier_files_open--;
    }
    if (n > size - offset) n = (size_t)(size - offset);
    while (n > 0 && buf[n - 1] != '\n') n--;
    return (long)n;
}

void frontier_parse_line(char *line, const char **url, int *hops) {
    char *tab = strchr(line, '\t');
    *hops = 0;
    if (tab) {
        *tab = '\0';
        *hops = atoi(tab + 1);
    }
    *url = line;
}

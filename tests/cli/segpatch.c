/* segpatch.c - test helper: rewrites fields of a real segment file the way a
 * hostile or broken producer could, by field name, so the end-to-end tests
 * build their bad inputs without hard-coding the header layout.
 *
 *   lks-segpatch FILE huge SIZE      header claims SIZE bytes (heap area grown to
 *                                    fill it), offsets kept consistent
 *   lks-segpatch FILE modules PATH   every recorded module path becomes PATH
 *   lks-segpatch FILE clone DIR N    N copies in DIR as <pid>.seg, pids 4000000+i,
 *                                    sparse (only the non-zero pages written)
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segment.h"

static void die(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: lks-segpatch FILE huge SIZE | modules PATH | clone DIR N\n");
        return 2;
    }
    int fd = open(argv[1], O_RDWR);
    if (fd < 0) die(argv[1]);
    struct stat st;
    if (fstat(fd, &st) != 0) die("fstat");
    size_t len = (size_t)st.st_size;
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) die("mmap");
    struct lks_header *h = (struct lks_header *)map;
    if (strcmp(argv[2], "huge") == 0) {
        uint64_t size = strtoull(argv[3], NULL, 10);
        h->heap_size = size - h->heap_off;
        h->total_size = size;
    } else if (strcmp(argv[2], "modules") == 0) {
        struct lks_module *m = lks_module_table(h);
        for (uint32_t i = 0; i < h->modules_used && i < LKS_MAX_MODULES; i++)
            snprintf(m[i].path, sizeof m[i].path, "%s", argv[3]);
    } else if (strcmp(argv[2], "clone") == 0 && argc == 5) {
        int n = atoi(argv[4]);
        int32_t pid0 = h->pid;
        for (int i = 0; i < n; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%d.seg", argv[3], 4000000 + i);
            int out = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
            if (out < 0) die(path);
            if (ftruncate(out, (off_t)len) != 0) die("ftruncate");
            h->pid = 4000000 + i;
            static const char zero[4096];
            for (size_t off = 0; off < len; off += 4096) {
                size_t chunk = len - off < 4096 ? len - off : 4096;
                if (memcmp(map + off, zero, chunk) != 0 &&
                    pwrite(out, map + off, chunk, (off_t)off) != (ssize_t)chunk)
                    die("pwrite");
            }
            close(out);
        }
        h->pid = pid0;
    } else {
        fprintf(stderr, "lks-segpatch: unknown request %s\n", argv[2]);
        return 2;
    }
    munmap(map, len);
    close(fd);
    return 0;
}

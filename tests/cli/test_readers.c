/* test_readers.c - the readers must survive any segment content: valid
 * headers over random tables (counts, indices, strings, the heap area) go
 * through every report; run under ASan/UBSan this catches any read out of
 * bounds, overflow or crash. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd_report.h"
#include "heap_report.h"
#include "segment.h"
#include "symbolize.h"

static char dir[128];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/lks-readers-XXXXXX");
    cr_assert(mkdtemp(dir));
    chmod(dir, 0700);
}

static void teardown(void) {
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) cr_log_warn("cannot remove %s", dir);
}

TestSuite(readers, .init = setup, .fini = teardown, .timeout = 120);

static void fill_random(void *p, size_t len, unsigned *seed) {
    unsigned char *b = p;
    for (size_t i = 0; i < len; i++) b[i] = (unsigned char)rand_r(seed);
}

/* Random bytes, but mostly small numbers, so loops actually run. */
static void fill_plausible(void *p, size_t len, unsigned *seed) {
    int64_t *v = p;
    for (size_t i = 0; i < len / 8; i++) v[i] = rand_r(seed) % 7 ? rand_r(seed) % 300 : rand_r(seed);
}

Test(readers, survive_random_tables) {
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/%d.seg", dir, 77);
    for (unsigned iter = 0; iter < 60; iter++) {
        unsigned seed = iter * 2654435761u;
        struct lks_header *h = lks_segment_create(dir, 77, 1024, 256, 1 << 16, err, sizeof err);
        cr_assert(h, "%s", err);
        h->features = LKS_FEATURE_FD | LKS_FEATURE_HEAP;
        h->subsys_used = (uint32_t)(rand_r(&seed) % (LKS_MAX_SUBSYS + 1));
        h->modules_used = (uint32_t)(rand_r(&seed) % (LKS_MAX_MODULES + 1));
        h->fd_hiwater = rand_r(&seed) % 3 ? rand_r(&seed) % 2000 : -5;
        h->exited = rand_r(&seed) % 2;
        void (*fill)(void *, size_t, unsigned *) = iter % 2 ? fill_random : fill_plausible;
        fill(lks_subsys_table(h), sizeof(struct lks_subsys) * LKS_MAX_SUBSYS, &seed);
        fill(lks_module_table(h), sizeof(struct lks_module) * LKS_MAX_MODULES, &seed);
        fill(lks_site_table(h), sizeof(struct lks_site) * h->sites_cap, &seed);
        fill(lks_fd_table(h), sizeof(struct lks_fd) * h->fds_cap, &seed);
        fill(lks_heap_area(h), h->heap_size, &seed);
        size_t total = h->total_size;
        lks_segment_unmap(h, total);

        struct lks_header *c = lks_segment_load(path, err, sizeof err);
        cr_assert(c, "iteration %u: %s", iter, err);
        struct lks_symbolizer *sym = lks_symbolizer_new(c);
        FILE *out = fopen("/dev/null", "w");
        fd_report_json(out, c, sym);
        fd_report_text(out, c, sym);
        heap_report_json(out, c, sym);
        heap_report_text(out, c, sym);
        fclose(out);
        lks_symbolizer_free(sym);
        lks_segment_free(c);
    }
}

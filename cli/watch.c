/* watch.c - sample for a while, then judge (see watch.h). */
#include "watch.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "series.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int watch_verdicts(const char *dir, const pid_t *pids, size_t npids, double seconds,
                   struct history *h, struct diag_list *l) {
    memset(h, 0, sizeof *h);
    memset(l, 0, sizeof *l);
    struct series_reader *reader = series_reader_new(10, 60000);
    if (!reader) return -1;
    h->idle_after_s = 60;
    double start = now_s();
    int rc = 0;
    for (;;) {
        struct series_round r;
        if (series_scan(reader, dir, pids, npids, &r) != 0) {
            fprintf(stderr, "leakscope: cannot read %s: %s\n", dir, strerror(errno));
            rc = -1;
            break;
        }
        size_t alive = 0;
        for (size_t i = 0; i < r.n; i++) alive += r.procs[i].alive;
        int bad = history_add_round(h, &r, now_s(), 0);
        series_round_free(&r);
        if (bad) {
            rc = -1;
            break;
        }
        /* The first round symbolizes every site (slow on a loaded machine):
         * the watch counts from its end. */
        if (h->nt == 1) start = now_s();
        double elapsed = now_s() - start;
        if (alive == 0 || elapsed >= seconds) break;
        /* The next whole second, however long this round took. */
        double next = start + ceil(elapsed + 0.01);
        if (next > start + seconds) next = start + seconds;
        while (now_s() < next) usleep(20000);
    }
    series_reader_free(reader);
    if (rc == 0 && diagnose(h, 0, l) != 0) rc = -1;
    return rc;
}

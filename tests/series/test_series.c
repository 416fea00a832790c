/* test_series.c - the numbers every view reads: idle sockets as the kernel
 * reports them (real loopback connections), and a segment turned into
 * samples (top K sites, heap ages, idle join by inode, producer/features). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "heapseg.h"
#include "segment.h"
#include "series.h"
#include "sockidle.h"

static uint64_t inode_of(int fd) {
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    return st.st_ino;
}

/* A listener and two connected pairs: c[i] client, a[i] accepted. */
static void connect_pairs(int *ls, int c[2], int a[2]) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    *ls = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(bind(*ls, (struct sockaddr *)&sa, len) == 0 && listen(*ls, 4) == 0);
    cr_assert_eq(getsockname(*ls, (struct sockaddr *)&sa, &len), 0);
    for (int i = 0; i < 2; i++) {
        c[i] = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert_eq(connect(c[i], (struct sockaddr *)&sa, sizeof sa), 0);
        a[i] = accept(*ls, NULL, NULL);
        cr_assert_geq(a[i], 0);
    }
}

Test(sockidle, silent_connections_are_idle_busy_ones_not) {
    int ls, c[2], a[2];
    connect_pairs(&ls, c, a);
    usleep(2000 * 1000);
    char b = 'x';
    cr_assert_eq(write(c[1], &b, 1), 1);
    cr_assert_eq(read(a[1], &b, 1), 1);
    char err[200];
    struct sockidle *s = sockidle_scan(1500, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    cr_expect(sockidle_is_idle(s, inode_of(c[0])), "silent client side");
    cr_expect(sockidle_is_idle(s, inode_of(a[0])), "silent accepted side");
    cr_expect(!sockidle_is_idle(s, inode_of(c[1])), "sent just now");
    cr_expect(!sockidle_is_idle(s, inode_of(a[1])), "received just now");
    cr_expect(!sockidle_is_idle(s, inode_of(ls)), "a listener is not established");
    cr_expect_geq(sockidle_established(s), 4);
    sockidle_free(s);
    s = sockidle_scan(3600 * 1000, err, sizeof err);
    cr_assert_not_null(s);
    cr_expect(!sockidle_is_idle(s, inode_of(c[0])), "not idle for an hour");
    sockidle_free(s);
    for (int i = 0; i < 2; i++) close(c[i]), close(a[i]);
    close(ls);
}

/* A segment of this process with subsystems, 30 sites and a heap area. */
static struct lks_header *make_segment(const char *dir, uint32_t producer, uint32_t features) {
    char err[300];
    cr_assert_eq(lks_segment_dir_prepare(dir, err, sizeof err), 0, "%s", err);
    struct lks_header *h = lks_segment_create(dir, getpid(), LKS_MIN_FDS, 64,
                                              lks_heapseg_size(64), err, sizeof err);
    cr_assert_not_null(h, "%s", err);
    h->producer = producer;
    h->proc_start_ticks = lks_proc_start_ticks(getpid());
    snprintf(h->comm, sizeof h->comm, "tester");
    struct lks_subsys *ss = lks_subsys_table(h);
    const char *names[3] = {"unattributed", "other", "redis"};
    for (int i = 0; i < 3; i++) snprintf(ss[i].name, sizeof ss[i].name, "%s", names[i]);
    h->subsys_used = 3;
    ss[2].fd_open = 30;
    ss[2].fd_opened = 40;
    ss[2].fd_closed = 10;
    ss[2].fd_failed[LKS_ERR_EMFILE] = 2;
    ss[2].heap_live_bytes = 5000;
    ss[2].heap_live_allocs = 5;
    ss[2].heap_allocs = 9;
    struct lks_site *s = lks_site_table(h);
    for (int i = 0; i < 30; i++) {
        s[i].key = 1000 + i;
        s[i].subsys = 2;
        s[i].fd_open = i;             /* top by fds: 29, 28, ... */
        s[i].heap_live_bytes = 30 - i; /* top by heap: 30, 29, ... (sites 0, 1, ...) */
        s[i].ready = 1;
    }
    struct lks_heapseg *hs = lks_heap_area(h);
    memcpy(hs->magic, LKS_HEAP_MAGIC, 8);
    hs->version = LKS_HEAP_VERSION;
    hs->sites_cap = 64;
    hs->area_size = (uint32_t)lks_heapseg_size(64);
    /* < 1 s, < 10 s, < 1 min, < 10 min, < 1 h, older */
    int64_t ages[LKS_HEAP_AGES] = {1, 10, 100, 1000, 10000, 100000};
    memcpy(hs->age_bytes[2], ages, sizeof ages);
    h->features = features;
    return h;
}

Test(series, segment_to_samples) {
    char dir[] = "/tmp/lks-series-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char sub[64];
    snprintf(sub, sizeof sub, "%s/seg", dir);
    struct lks_header *h = make_segment(sub, LKS_PRODUCER_PRELOAD, LKS_FEATURE_FD | LKS_FEATURE_HEAP);
    int ls, c[2], a[2];
    connect_pairs(&ls, c, a);
    /* Two open socket descriptors of redis: one the kernel will call idle. */
    struct lks_fd *fds = lks_fd_table(h);
    fds[c[0]] = (struct lks_fd){.in_use = 1, .kind = LKS_KIND_SOCKET, .subsys = 2, .inode = inode_of(c[0])};
    fds[c[1]] = (struct lks_fd){.in_use = 1, .kind = LKS_KIND_SOCKET, .subsys = 2, .inode = inode_of(c[1])};
    h->fd_hiwater = (c[0] > c[1] ? c[0] : c[1]) + 1;
    usleep(1200 * 1000);
    char b = 'x';
    cr_assert_eq(write(c[1], &b, 1), 1);
    cr_assert_eq(read(a[1], &b, 1), 1);

    struct series_reader *r = series_reader_new(5, 1000);
    struct series_round rd;
    cr_assert_eq(series_scan(r, sub, NULL, 0, &rd), 0);
    cr_assert_eq(rd.n, 1);
    cr_expect(rd.sockdiag_ok);
    struct series_proc *p = &rd.procs[0];
    cr_expect_eq(p->pid, getpid());
    cr_expect(p->alive);
    cr_expect_str_eq(p->producer, "preload");
    cr_expect_gt(p->rss_bytes, 0);
    cr_assert_eq(p->nsubsys, 3);
    struct series_subsys *redis = &p->subsys[2];
    cr_expect_str_eq(redis->name, "redis");
    cr_expect(redis->has_fd && redis->has_heap);
    cr_expect(!p->subsys[1].has_fd, "a subsystem that saw nothing has no series");
    cr_expect_eq(redis->fds_open, 30);
    cr_expect_eq(redis->fd_failed[LKS_ERR_EMFILE], 2);
    cr_expect_eq(redis->sockets_idle, 1, "one of the two sockets is idle");
    cr_expect_eq(redis->heap_older[0], 100 + 1000 + 10000 + 100000, ">= 10 s");
    cr_expect_eq(redis->heap_older[1], 1000 + 10000 + 100000, ">= 1 min");
    cr_expect_eq(redis->heap_older[2], 10000 + 100000, ">= 10 min");
    cr_expect_eq(redis->heap_older[3], 100000, ">= 1 h");
    /* Top 5 by fds (sites 29..25) and top 5 by heap (sites 0..4): 10 sites. */
    cr_expect_eq(p->nsites, 10);
    int64_t fds_sum = 0, heap_sum = 0;
    for (size_t i = 0; i < p->nsites; i++) {
        if (p->sites[i].key >= 1025) fds_sum += p->sites[i].fds_open;
        if (p->sites[i].key <= 1004) heap_sum += p->sites[i].heap_live_bytes;
        cr_expect_str_eq(p->sites[i].subsystem, "redis");
        cr_expect_not_null(p->sites[i].headline);
    }
    cr_expect_eq(fds_sum, 29 + 28 + 27 + 26 + 25);
    cr_expect_eq(heap_sum, 30 + 29 + 28 + 27 + 26);
    series_round_free(&rd);

    /* Another producer with only the descriptor view: no heap series. */
    h->producer = LKS_PRODUCER_EBPF;
    h->features = LKS_FEATURE_FD;
    cr_assert_eq(series_scan(r, sub, NULL, 0, &rd), 0);
    cr_assert_eq(rd.n, 1);
    cr_expect_str_eq(rd.procs[0].producer, "ebpf");
    cr_expect(!rd.procs[0].subsys[2].has_heap);
    cr_expect(rd.procs[0].subsys[2].has_fd);
    series_round_free(&rd);

    /* A pid filter that matches nothing, and a corrupt file: skipped, counted. */
    pid_t other = 1;
    cr_assert_eq(series_scan(r, sub, &other, 1, &rd), 0);
    cr_expect_eq(rd.n, 0);
    series_round_free(&rd);
    char bad[128];
    snprintf(bad, sizeof bad, "%s/99999.seg", sub);
    FILE *f = fopen(bad, "w");
    fputs("not a segment", f);
    fclose(f);
    cr_assert_eq(series_scan(r, sub, NULL, 0, &rd), 0);
    cr_expect_eq(rd.n, 1);
    cr_expect_eq(rd.skipped[SERIES_SKIP_INVALID], 1);
    series_round_free(&rd);

    series_reader_free(r);
    for (int i = 0; i < 2; i++) close(c[i]), close(a[i]);
    close(ls);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* segfarm.c - N live "traced" processes for the series benchmarks: forks N
 * sleeping children and writes, for each, a segment shaped like a busy
 * producer's (8 subsystems, S call sites with distinct stacks, 1,000 open
 * sockets, a heap area), then waits for SIGTERM; the children die with it.
 * usage: segfarm DIR N S
 */
#define _GNU_SOURCE
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "../../memtrack/heapseg.h"
#include "segment.h"

#define SUBSYS 8
#define OPEN_FDS 1000

/* Functions whose addresses make the synthetic stacks symbolizable. */
__attribute__((noinline)) void farm_pool_connect(void) { __asm__ volatile("" ::: "memory"); }
__attribute__((noinline)) void farm_fetch_page(void) { __asm__ volatile("" ::: "memory"); }
__attribute__((noinline)) void farm_worker_loop(void) { __asm__ volatile("" ::: "memory"); }

static uint64_t main_bias;
static int first_object(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size, (void)data;
    main_bias = info->dlpi_addr;
    return 1;
}

static void fill(struct lks_header *h, pid_t pid, unsigned nsites, const char *exe) {
    static const char *names[SUBSYS] = {"redis", "http", "file", "log", "pipe", "epoll", "other", "parse"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h->producer = LKS_PRODUCER_PRELOAD;
    h->ppid = getpid();
    h->proc_start_ticks = lks_proc_start_ticks(pid);
    h->start_realtime_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    snprintf(h->comm, sizeof h->comm, "segfarm");
    snprintf(h->exe, sizeof h->exe, "%s", exe);
    h->rlimit_nofile_cur = 65536;
    struct lks_subsys *ss = lks_subsys_table(h);
    for (int i = 0; i < SUBSYS; i++) {
        snprintf(ss[i].name, sizeof ss[i].name, "%s", names[i]);
        ss[i].used = 1;
        ss[i].fd_open = OPEN_FDS / SUBSYS;
        ss[i].fd_opened = 10000 + i;
        ss[i].fd_closed = 10000 + i - OPEN_FDS / SUBSYS;
        ss[i].fd_failed[LKS_ERR_EMFILE] = i;
        ss[i].heap_live_bytes = 1 << 20;
        ss[i].heap_live_allocs = 1000;
        ss[i].heap_alloc_bytes = 1 << 24;
        ss[i].heap_allocs = 100000;
        ss[i].heap_frees = 99000;
    }
    h->subsys_used = SUBSYS;
    struct lks_module *m = lks_module_table(h);
    snprintf(m[0].path, sizeof m[0].path, "%s", exe);
    m[0].bias = main_bias;
    h->modules_used = 1;
    uint64_t fn[3] = {(uint64_t)farm_pool_connect, (uint64_t)farm_fetch_page, (uint64_t)farm_worker_loop};
    struct lks_frame *fr = lks_frame_table(h);
    for (int f = 0; f < 3; f++) {
        fr[f].key = fn[f] + 1;
        fr[f].kind = LKS_FRAME_NATIVE;
        fr[f].module = 0;
        fr[f].addr = fn[f] + 1;
        fr[f].ready = 1;
    }
    h->frames_used = 3;
    struct lks_site *s = lks_site_table(h);
    for (unsigned i = 0; i < nsites; i++) {
        s[i].key = 0x9E3779B97F4A7C15ull * (i + 1);
        s[i].subsys = (uint16_t)(i % SUBSYS);
        s[i].nframes = 3;
        for (int f = 0; f < 3; f++) s[i].frame[f] = (uint32_t)((i + f) % 3) + 1; /* index + 1 */
        s[i].fd_open = (int64_t)(i % 13) + 1;
        s[i].fd_opened = 100 + i;
        s[i].heap_live_bytes = (int64_t)((i * 7919u) % 100000) + 1;
        s[i].heap_live_allocs = 3;
        s[i].ready = 1;
    }
    h->sites_used = nsites;
    h->sites_claimed = nsites; /* the shims' layout: claimed sites are a prefix */
    struct lks_fd *fds = lks_fd_table(h);
    for (int fd = 0; fd < OPEN_FDS; fd++) {
        fds[fd].in_use = 1;
        fds[fd].kind = LKS_KIND_SOCKET;
        fds[fd].subsys = (uint16_t)(fd % SUBSYS);
        fds[fd].site = (uint32_t)(fd % nsites) + 1;
        fds[fd].inode = 900000000ull + (uint64_t)pid * OPEN_FDS + fd;
    }
    h->fd_hiwater = OPEN_FDS;
    struct lks_heapseg *hs = lks_heap_area(h);
    memcpy(hs->magic, LKS_HEAP_MAGIC, 8);
    hs->version = LKS_HEAP_VERSION;
    hs->sites_cap = h->sites_cap;
    hs->area_size = (uint32_t)lks_heapseg_size(h->sites_cap);
    for (int i = 0; i < SUBSYS; i++)
        for (int b = 0; b < LKS_HEAP_AGES; b++) hs->age_bytes[i][b] = 1000 * (b + 1);
    h->features = LKS_FEATURE_FD | LKS_FEATURE_HEAP;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: segfarm DIR N SITES\n");
        return 2;
    }
    const char *dir = argv[1];
    int n = atoi(argv[2]);
    unsigned nsites = (unsigned)atoi(argv[3]);
    if (n <= 0 || nsites == 0 || nsites > LKS_DEFAULT_SITES) {
        fprintf(stderr, "segfarm: bad N or SITES\n");
        return 2;
    }
    char exe[200], err[300];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return 2;
    exe[len] = 0;
    dl_iterate_phdr(first_object, NULL);
    if (lks_segment_dir_prepare(dir, err, sizeof err) != 0) {
        fprintf(stderr, "segfarm: %s\n", err);
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            for (;;) pause();
        }
        usleep(2000); /* let /proc/<pid>/stat settle */
        struct lks_header *h = lks_segment_create(dir, pid, LKS_DEFAULT_FDS, LKS_DEFAULT_SITES,
                                                  lks_heapseg_size(LKS_DEFAULT_SITES), err, sizeof err);
        if (!h) {
            fprintf(stderr, "segfarm: %s\n", err);
            return 1;
        }
        fill(h, pid, nsites, exe);
    }
    printf("ready\n");
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    return 0;
}

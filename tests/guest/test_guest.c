/* test_guest - the shims as guests: never crash or hang the host in signal
 * handlers, on small stacks or deep recursions; func rules match the
 * functions the report names; a leak after a million stacks keeps its site.
 * Each program is run many times (under the load of the rest of the suite)
 * and must exit 0 every time with the output it gives untraced. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "segment.h"
#include "symbolize.h"

extern char **environ;

struct run {
    int status; /* exit code, 128 + signal, or -1 on timeout */
    pid_t pid;
    char out[512];
};

static char g_dir[256];

static void make_dir(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/lks-guest-XXXXXX");
    cr_assert(mkdtemp(g_dir));
}

/* Runs argv with the given shims preloaded (and rules file, if any); kills
 * it after timeout_s seconds. */
static struct run run_traced(const char *preload, const char *rules, char *const argv[],
                             int timeout_s) {
    struct run r = {0};
    int pipefd[2];
    cr_assert(pipe(pipefd) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        close(null);
        setenv("LEAKSCOPE_DIR", g_dir, 1);
        if (preload) setenv("LD_PRELOAD", preload, 1);
        if (rules) setenv("LEAKSCOPE_RULES", rules, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pipefd[1]);
    r.pid = pid;
    size_t got = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    int st = 0, done = 0;
    while (!done) {
        ssize_t n = read(pipefd[0], r.out + got, sizeof r.out - 1 - got);
        if (n > 0) got += (size_t)n;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) done = 1;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (!done && t.tv_sec - t0.tv_sec > timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            r.status = -1;
            close(pipefd[0]);
            return r;
        }
        if (!done && n <= 0) usleep(2000);
    }
    ssize_t n;
    while ((n = read(pipefd[0], r.out + got, sizeof r.out - 1 - got)) > 0) got += (size_t)n;
    close(pipefd[0]);
    r.out[got] = 0;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

#define BOTH FDTRACK_PATH ":" MEMTRACK_PATH

static struct lks_header *load(pid_t pid) {
    char path[400], err[256];
    snprintf(path, sizeof path, "%s/%d.seg", g_dir, (int)pid);
    struct lks_header *h = lks_segment_load(path, err, sizeof err);
    cr_assert(h, "%s", err);
    return h;
}

static struct lks_subsys *subsys(struct lks_header *h, const char *name) {
    struct lks_subsys *ss = lks_subsys_table(h);
    for (uint32_t i = 0; i < atomic_load(&h->subsys_used); i++)
        if (!strcmp(ss[i].name, name)) return &ss[i];
    cr_assert_fail("no subsystem %s", name);
    return NULL;
}

/* The site with these open descriptors and live heap bytes (-1: any) whose
 * frames include func. */
static struct lks_site *site_with(struct lks_header *h, const char *func, int64_t fd_open,
                                  int64_t heap_live) {
    struct lks_symbolizer *sym = lks_symbolizer_new(h);
    struct lks_site *found = NULL;
    for (uint32_t i = 0; i < h->sites_cap && !found; i++) {
        struct lks_site *s = &lks_site_table(h)[i];
        if (!s->key || (fd_open >= 0 && s->fd_open != fd_open) ||
            (heap_live >= 0 && s->heap_live_bytes != heap_live))
            continue;
        for (int f = 0; f < s->nframes && !found; f++) {
            const char *fn = lks_symbolize_site_func(sym, s, f);
            if (fn && !strcmp(fn, func)) found = s;
        }
    }
    lks_symbolizer_free(sym);
    return found;
}

/* Issue 8: a handler on an 8 KiB sigaltstack that opens and allocates
 * crashed 20/20 under fdtrack (libunwind overflowed the small stack). */
Test(guest, small_sigaltstack_handlers_never_crash) {
    make_dir();
    for (int i = 0; i < 150; i++) {
        const char *preload = i % 3 == 0 ? FDTRACK_PATH : i % 3 == 1 ? MEMTRACK_PATH : BOTH;
        struct run r = run_traced(preload, NULL, (char *[]){SIGPROBE_PATH, "altstack", "40", NULL}, 30);
        cr_assert_eq(r.status, 0, "run %d (%s): status %d", i, preload, r.status);
        cr_assert_str_eq(r.out, "altstack runs=40 failed=0\n");
    }
}

/* A 50 us timer whose handler opens a file: the program must finish (a
 * costly capture in the handler livelocked 8 runs in 200). */
Test(guest, fast_timer_handlers_never_livelock) {
    make_dir();
    for (int i = 0; i < 100; i++) {
        struct run r = run_traced(BOTH, NULL, (char *[]){SIGPROBE_PATH, "timer", "300", NULL}, 30);
        cr_assert_eq(r.status, 0, "run %d: status %d (-1: hung)", i, r.status);
        cr_assert_str_eq(r.out, "timer runs>=300 failed=0\n");
    }
}

/* Opening a file with 4 KiB of stack left (deep recursion), and threads
 * with 16 KiB stacks. */
Test(guest, deep_recursion_and_small_thread_stacks) {
    make_dir();
    for (int i = 0; i < 20; i++) {
        struct run r = run_traced(BOTH, NULL, (char *[]){SIGPROBE_PATH, "deep", "4", NULL}, 30);
        cr_assert_eq(r.status, 0, "deep run %d: status %d", i, r.status);
        cr_assert_str_eq(r.out, "deep n=4 failed=0\n");
    }
    struct run r = run_traced(BOTH, NULL, (char *[]){SIGPROBE_PATH, "smallthread", "50", NULL}, 30);
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(r.out, "smallthread n=50 failed=0\n");
}

/* Issue 7 item 4: `http func http_*` must match the static function the
 * report prints, in a program linked without -rdynamic. */
Test(guest, func_rules_match_static_functions) {
    make_dir();
    char rules[400];
    snprintf(rules, sizeof rules, "%s/rules", g_dir);
    FILE *f = fopen(rules, "w");
    cr_assert(f);
    fputs("http func http_*\n", f);
    fclose(f);
    struct run r = run_traced(BOTH, rules, (char *[]){FUNCPROBE_PATH, "func", NULL}, 30);
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(r.out, "func ok\n");
    struct lks_header *h = load(r.pid);
    cr_expect_eq(subsys(h, "http")->fd_open, 3);
    cr_expect_eq(subsys(h, "http")->heap_live_bytes, 3000);
    cr_expect(site_with(h, "http_read_page", 3, -1), "the fd site is named http_read_page");
    cr_expect(site_with(h, "http_read_page", -1, 3000), "the heap site is named http_read_page");
    lks_segment_free(h);
}

/* Issue 7 item 5: 65536 distinct stacks of churn fill the site table; a
 * leak that begins afterwards is still named by its call site. */
Test(guest, late_leak_after_stack_churn_keeps_its_site) {
    make_dir();
    struct run r = run_traced(BOTH, NULL, (char *[]){FUNCPROBE_PATH, "churn", "200000", NULL}, 120);
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(r.out, "churn ok\n");
    struct lks_header *h = load(r.pid);
    cr_expect_gt(atomic_load(&h->sites_used), h->sites_cap / 2, "the churn filled the table");
    cr_expect(site_with(h, "late_leak", 5, -1), "the late fd leak has a site naming late_leak");
    cr_expect(site_with(h, "late_leak", -1, 5 * 777), "so has the late heap leak");
    cr_expect_gt(atomic_load(&h->sites_coarse), 0, "stacks past the table got coarse sites");
    lks_segment_free(h);
    /* Every view says what the table could not keep. */
    const char *views[][2] = {{"", "site(s) kept on a shortened stack"},
                              {"--json", "\"call_sites\":{\"used\":"}};
    for (int v = 0; v < 2; v++) {
        char cmd[600], out[65536];
        snprintf(cmd, sizeof cmd, "%s show %s --dir %s %d 2>&1", LEAKSCOPE_PATH, views[v][0],
                 g_dir, (int)r.pid);
        FILE *p = popen(cmd, "r");
        cr_assert(p);
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = 0;
        pclose(p);
        cr_expect(strstr(out, views[v][1]), "%s: no '%s' in: %.400s", cmd, views[v][1], out);
    }
}

/* Issue 8: 1,000 short processes left 1.1 MB of /dev/shm each. A small
 * process (and its forked child) now writes a few pages of its sparse
 * segment. Measured where segments live by default (tmpfs). */
Test(guest, small_processes_leave_small_segments) {
    snprintf(g_dir, sizeof g_dir, "/dev/shm/lks-guest-XXXXXX");
    cr_assert(mkdtemp(g_dir));
    struct run r = run_traced(BOTH, NULL, (char *[]){"/bin/sh", "-c", "/bin/true; echo ok", NULL}, 30);
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(r.out, "ok\n");
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ls %s", g_dir);
    FILE *p = popen(cmd, "r");
    char name[256];
    int n = 0;
    while (p && fgets(name, sizeof name, p)) {
        name[strcspn(name, "\n")] = 0;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", g_dir, name);
        struct stat st;
        cr_assert(stat(path, &st) == 0);
        cr_expect_lt((long long)st.st_blocks * 512, 400 << 10, "%s uses %lld KiB", name,
                     (long long)st.st_blocks / 2);
        unlink(path);
        n++;
    }
    if (p) pclose(p);
    rmdir(g_dir);
    cr_expect_geq(n, 2, "the shell and /bin/true each left a segment");
}

/* A CPython parent claims thousands of sites; they are a dense prefix of
 * the table (sites_claimed), so its fork child copies that prefix only:
 * the child's segment holds two MB, not the parent's whole 16 MB table,
 * and its sites are the parent's, at the same indices. Frames likewise. */
Test(guest, fork_child_of_python_copies_the_claimed_sites_only) {
    snprintf(g_dir, sizeof g_dir, "/dev/shm/lks-guest-XXXXXX");
    cr_assert(mkdtemp(g_dir));
    struct run r = run_traced(
        BOTH, NULL,
        (char *[]){"/usr/bin/python3", "-c",
                   "import json, os, sys\n"
                   "docs = [json.dumps({'k': i}) for i in range(2000)]\n"
                   "pid = os.fork()\n"
                   "if pid == 0:\n"
                   "    os._exit(0)\n"
                   "os.waitpid(pid, 0)\n"
                   "print(pid, flush=True)\n",
                   NULL},
        60);
    cr_assert_eq(r.status, 0, "python: %s", r.out);
    pid_t child = (pid_t)atoi(r.out);
    cr_assert_gt(child, 0);
    struct lks_header *parent = load(r.pid), *h = load(child);
    uint32_t claimed = atomic_load(&parent->sites_claimed);
    cr_expect_gt(claimed, 500u, "a CPython process claims many sites (%u)", claimed);
    cr_expect_leq(atomic_load(&parent->sites_used), claimed);
    struct lks_site *ps = lks_site_table(parent), *cs = lks_site_table(h);
    uint32_t past = 0, same = 0, both = atomic_load(&h->sites_claimed);
    if (both > claimed) both = claimed;
    for (uint32_t i = claimed; i < parent->sites_cap; i++) past += ps[i].key != 0;
    /* Up to the fork the two claimed the same sites; after it, each its own. */
    while (same < both && cs[same].key == ps[same].key) same++;
    cr_expect_eq(past, 0u, "no site past the claimed prefix");
    /* Frames too: the parent's are its first frames_used rows, nothing past. */
    struct lks_frame *pf = lks_frame_table(parent);
    uint32_t nfr = atomic_load(&parent->frames_used), frames_past = 0, frames_in = 0;
    for (uint32_t i = 0; i < parent->frames_cap; i++) {
        if (i < nfr) frames_in += pf[i].key != 0;
        else frames_past += pf[i].key != 0;
    }
    cr_expect_gt(nfr, 500u, "a CPython process interns many frames (%u)", nfr);
    cr_expect_eq(frames_in, nfr, "the claimed frames are the first rows");
    cr_expect_eq(frames_past, 0u, "no frame past the claimed prefix");
    cr_expect_gt(same, 500u, "the child's sites are its parent's, index for index, up to the fork "
                             "(%u of %u)", same, both);
    cr_expect_eq(h->forked_from, r.pid);
    char path[400];
    snprintf(path, sizeof path, "%s/%d.seg", g_dir, (int)child);
    struct stat st;
    cr_assert(stat(path, &st) == 0);
    cr_expect_lt((long long)st.st_blocks * 512, 4ll << 20, "the child's segment uses %lld KiB",
                 (long long)st.st_blocks / 2);
    lks_segment_free(parent);
    lks_segment_free(h);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    cr_expect_eq(system(cmd), 0);
}

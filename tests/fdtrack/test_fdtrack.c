/* test_fdtrack.c - libfdtrack.so against known truth: fdprobe does a known
 * thing per mode; each test runs it with and without the shim (same output
 * and exit status), then reads the segment and checks counts, subsystems and
 * the function names of the call sites holding descriptors. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "segment.h"
#include "symbolize.h"

static char dir[256];

static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/lks-fdtest-XXXXXX");
    cr_assert(mkdtemp(dir));
    char sub[300];
    snprintf(sub, sizeof sub, "%s/tmp", dir);
    mkdir(sub, 0700);
}

static void remove_dir(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) cr_log_warn("could not remove %s", dir);
}

TestSuite(fdtrack, .init = make_dir, .fini = remove_dir, .timeout = 120);

struct run {
    pid_t pid;
    int status;
    char out[8192];
};

/* Runs fdprobe ARGS, under the shim if preload, with stdout captured.
 * If hold_stdin, returns as soon as the first line is read (stdin stays
 * open in *stdin_fd). */
static void run_probe(struct run *r, int preload, const char *extra_env, char *const args[]) {
    int out[2];
    cr_assert(pipe(out) == 0);
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        if (fcntl(2, F_GETFD) < 0) dup2(devnull, 2);
        close_range(3, ~0U, 0); /* the test runner's own descriptors are not the probe's */
        char tmp[300];
        snprintf(tmp, sizeof tmp, "%s/tmp", dir);
        setenv("FDPROBE_TMP", tmp, 1);
        setenv("LEAKSCOPE_DIR", dir, 1);
        if (preload) setenv("LD_PRELOAD", SHIM_PATH, 1);
        else unsetenv("LD_PRELOAD");
        if (extra_env) putenv((char *)extra_env);
        char *argv[16] = {"fdprobe"};
        for (int i = 0; args[i] && i < 14; i++) argv[i + 1] = args[i];
        execv(FDPROBE_PATH, argv);
        _exit(127);
    }
    close(out[1]);
    size_t got = 0;
    ssize_t n;
    while ((n = read(out[0], r->out + got, sizeof r->out - 1 - got)) > 0) got += (size_t)n;
    r->out[got] = 0;
    close(out[0]);
    int st;
    waitpid(p, &st, 0);
    r->pid = p;
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* run_probe under the shim, with the probe's stderr captured into buf. */
static void run_probe_stderr(struct run *r, const char *extra_env, char *const args[], char *buf,
                             size_t len) {
    int errp[2];
    cr_assert(pipe(errp) == 0);
    int saved = dup(2);
    dup2(errp[1], 2);
    run_probe(r, 1, extra_env, args);
    dup2(saved, 2);
    close(saved);
    close(errp[1]);
    ssize_t n = read(errp[0], buf, len - 1);
    close(errp[0]);
    buf[n > 0 ? n : 0] = 0;
}

/* Runs the mode twice and checks the shim changed nothing visible. */
static void run_both(struct run *traced, char *const args[]) {
    struct run plain;
    run_probe(&plain, 0, NULL, args);
    run_probe(traced, 1, NULL, args);
    cr_assert_eq(traced->status, plain.status, "exit status %d under the shim, %d without",
                 traced->status, plain.status);
    cr_assert_str_eq(traced->out, plain.out);
}

static struct lks_header *load(pid_t pid) {
    char path[400], err[400];
    snprintf(path, sizeof path, "%s/%d.seg", dir, (int)pid);
    struct lks_header *h = lks_segment_load(path, err, sizeof err);
    cr_assert(h, "no segment for pid %d: %s", (int)pid, err);
    return h;
}

static struct lks_subsys *subsys(struct lks_header *h, const char *name) {
    struct lks_subsys *ss = lks_subsys_table(h);
    for (unsigned i = 0; i < h->subsys_used; i++)
        if (!strcmp(ss[i].name, name)) return &ss[i];
    cr_assert_fail("no subsystem %s", name);
    return NULL;
}

static int64_t open_total(struct lks_header *h) {
    int64_t n = 0;
    struct lks_subsys *ss = lks_subsys_table(h);
    for (unsigned i = 0; i < h->subsys_used; i++) n += ss[i].fd_open;
    return n;
}

/* Sum of fd_open over the sites in subsystem `name` whose stack names func. */
static int64_t site_open(struct lks_header *h, const char *name, const char *func,
                         uint64_t *failed) {
    struct lks_symbolizer *sym = lks_symbolizer_new(h);
    struct lks_site *sites = lks_site_table(h);
    int64_t n = 0;
    if (failed) *failed = 0;
    for (uint32_t i = 0; i < h->sites_cap; i++) {
        struct lks_site *s = &sites[i];
        if (!s->key || !s->ready || strcmp(lks_subsys_table(h)[s->subsys].name, name)) continue;
        for (int f = 0; f < s->nframes; f++) {
            const char *fn = lks_symbolize_site_func(sym, s, f);
            if (fn && !strcmp(fn, func)) {
                n += s->fd_open;
                if (failed) *failed += s->fd_failed;
                break;
            }
        }
    }
    lks_symbolizer_free(sym);
    return n;
}

/* Every subsystem obeys opened - closed == open. */
static void check_invariant(struct lks_header *h) {
    struct lks_subsys *ss = lks_subsys_table(h);
    for (unsigned i = 0; i < h->subsys_used; i++)
        cr_expect_eq((int64_t)(ss[i].fd_opened - ss[i].fd_closed), ss[i].fd_open,
                     "%s: opened %llu - closed %llu != open %lld", ss[i].name,
                     (unsigned long long)ss[i].fd_opened, (unsigned long long)ss[i].fd_closed,
                     (long long)ss[i].fd_open);
}

Test(fdtrack, classifies_and_names_the_leaking_call_sites) {
    struct run r;
    run_both(&r, (char *[]){"basic", NULL});
    struct lks_header *h = load(r.pid);
    cr_assert(h->exited);
    cr_expect_eq(subsys(h, "frontier")->fd_open, 5);
    cr_expect_eq(subsys(h, "pipe")->fd_open, 6);
    cr_expect_eq(site_open(h, "frontier", "frontier_leak_files", NULL), 5);
    cr_expect_eq(site_open(h, "pipe", "probe_leak_pipes", NULL), 6);
    cr_expect_eq(subsys(h, "stdio")->fd_open, 3, "stdio open %lld", (long long)subsys(h, "stdio")->fd_open);
    /* 20 rounds of churn: every kind opened and closed, none left. */
    cr_expect_eq(subsys(h, "epoll")->fd_opened, 20);
    cr_expect_eq(subsys(h, "epoll")->fd_open, 0);
    cr_expect_eq(subsys(h, "eventfd")->fd_closed, 20);
    cr_expect_eq(subsys(h, "unix")->fd_opened, 40);
    cr_expect_eq(subsys(h, "socket")->fd_closed, 20);
    cr_expect_eq(subsys(h, "dir")->fd_opened, 20);
    cr_expect_eq(subsys(h, "file")->fd_open, 0);
    /* open, dup, F_DUPFD, fopen, tmpfile, and fopen + two freopens */
    cr_expect_eq(subsys(h, "file")->fd_opened, 20 * 8);
    cr_expect_eq(subsys(h, "pipe")->fd_opened, 6 + 20); /* popen's end */
    cr_expect_eq(h->fd_unattributed, 0);
    cr_expect_eq(h->fd_stale, 0);
    cr_expect_eq(h->fd_unknown_close, 0);
    check_invariant(h);
    lks_segment_free(h);
}

Test(fdtrack, sixty_four_thread_storm) {
    struct run r;
    run_both(&r, (char *[]){"threads", NULL});
    cr_assert_str_eq(r.out, "threads bad=0\n");
    struct lks_header *h = load(r.pid);
    cr_expect_eq(subsys(h, "file")->fd_opened, 64 * 2000);
    cr_expect_eq(subsys(h, "file")->fd_open, 0);
    cr_expect_eq(site_open(h, "pipe", "probe_leak_pipes", NULL), 10);
    check_invariant(h);
    lks_segment_free(h);
}

static int count_segments(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".seg")) n++;
    closedir(d);
    return n;
}

Test(fdtrack, thousand_fork_exec_children) {
    struct run r;
    run_both(&r, (char *[]){"forkexec", "1000", NULL});
    cr_assert_str_eq(r.out, "forkexec n=1000 failed=0\n");
    /* The probe, and one segment per child (each exec re-initializes). */
    cr_expect_geq(count_segments(), 1001);
}

/* A fork child makes its segment at its first event; one that drops root
 * first (setuid to nobody) gets it made before the drop. */
Test(fdtrack, fork_child_that_drops_root_is_traced) {
    struct run r;
    run_probe(&r, 1, NULL, (char *[]){"fork_setuid", NULL});
    cr_assert_eq(r.status, 0);
    if (strcmp(r.out, "skip\n") == 0) cr_skip_test("needs root");
    int child = 0;
    cr_assert(sscanf(r.out, "child %d", &child) == 1, "output: %s", r.out);
    cr_expect(strstr(r.out, "parent done 0\n"), "output: %s", r.out);
    struct lks_header *c = load(child);
    cr_expect_eq(c->forked_from, r.pid);
    cr_expect_eq(subsys(c, "frontier")->fd_open, 3, "inherited before the drop");
    cr_expect_eq(site_open(c, "pipe", "probe_leak_pipes", NULL), 4, "its own pipes, after it");
    lks_segment_free(c);
}

Test(fdtrack, vfork_and_posix_spawn) {
    struct run r;
    run_both(&r, (char *[]){"spawn", NULL});
    cr_assert_str_eq(r.out, "from-vfork\nfrom-posix-spawn\nspawn status=0\n");
}

Test(fdtrack, fork_child_inherits_descriptors) {
    struct run r;
    run_probe(&r, 1, NULL, (char *[]){"fork", NULL});
    cr_assert_eq(r.status, 0);
    int child = 0;
    cr_assert(sscanf(r.out, "child %d", &child) == 1);
    struct lks_header *p = load(r.pid), *c = load(child);
    cr_expect_eq(c->ppid, r.pid);
    cr_expect_eq(subsys(p, "frontier")->fd_open, 3);
    cr_expect_eq(subsys(p, "pipe")->fd_open, 0);
    cr_expect_eq(subsys(c, "frontier")->fd_open, 3, "child inherits the parent's files");
    cr_expect_eq(c->forked_from, r.pid);
    /* Inherited: marked, with the parent's site, but never the child's site count. */
    cr_expect_eq(site_open(c, "frontier", "frontier_leak_files", NULL), 0);
    int inherited = 0;
    for (uint32_t fd = 0; fd < (uint32_t)c->fd_hiwater && fd < c->fds_cap; fd++) {
        const struct lks_fd *e = &lks_fd_table(c)[fd];
        if (!e->in_use || !(e->flags & LKS_FD_FORKED) || e->site == 0) continue;
        const struct lks_site *s = &lks_site_table(c)[e->site - 1];
        if (!strcmp(lks_subsys_table(c)[s->subsys].name, "frontier")) inherited++;
    }
    cr_expect_eq(inherited, 3);
    cr_expect_eq(site_open(c, "pipe", "probe_leak_pipes", NULL), 4);
    check_invariant(p);
    check_invariant(c);
    lks_segment_free(p);
    lks_segment_free(c);
}

Test(fdtrack, fork_child_keeps_what_it_had_at_the_fork) {
    struct run r;
    run_probe(&r, 1, NULL, (char *[]){"fork_then_close", NULL});
    cr_assert_eq(r.status, 0);
    int child = 0;
    cr_assert(sscanf(r.out, "child %d", &child) == 1);
    struct lks_header *p = load(r.pid), *c = load(child);
    cr_expect_eq(subsys(p, "pipe")->fd_open, 6, "the parent closed 2 of its 4 ends, made 4");
    cr_expect_eq(subsys(c, "pipe")->fd_open, 4, "the child holds the 4 ends of the fork");
    cr_expect_eq(subsys(c, "pipe")->fd_opened, 4, "and none the parent made after it");
    cr_expect_eq(subsys(c, "frontier")->fd_open, 3);
    cr_expect_eq(c->fd_unattributed, 0, "the child's exit found no descriptor it did not know");
    cr_expect_eq(c->fd_stale, 0);
    check_invariant(p);
    check_invariant(c);
    lks_segment_free(p);
    lks_segment_free(c);
}

Test(fdtrack, descriptors_received_over_a_unix_socket) {
    struct run r;
    run_both(&r, (char *[]){"scm_rights", NULL});
    struct lks_header *h = load(r.pid);
    cr_expect_eq(site_open(h, "frontier", "probe_receive_fds", NULL), 1,
                 "the received file is a frontier file, created where it was received");
    cr_expect_eq(site_open(h, "pipe", "probe_receive_fds", NULL), 1);
    cr_expect_eq(subsys(h, "pipe")->fd_open, 2, "the received end and the other one");
    cr_expect_eq(subsys(h, "pipe")->fd_closed, 2, "the sent end and the received end's dup");
    cr_expect_eq(h->fd_unknown_close, 0);
    cr_expect_eq(h->fd_unattributed, 0);
    check_invariant(h);
    lks_segment_free(h);
}

Test(fdtrack, close_range_closes_tracked_descriptors) {
    struct run r;
    run_both(&r, (char *[]){"close_range", NULL});
    struct lks_header *h = load(r.pid);
    cr_expect_eq(subsys(h, "frontier")->fd_opened, 10);
    cr_expect_eq(subsys(h, "frontier")->fd_open, 0);
    cr_expect_eq(subsys(h, "pipe")->fd_open, 2);
    cr_expect_eq(h->fd_unattributed, 0);
    cr_expect_eq(h->fd_stale, 0);
    check_invariant(h);
    lks_segment_free(h);
}

Test(fdtrack, dup2_onto_a_tracked_descriptor) {
    struct run r;
    run_both(&r, (char *[]){"dup2", NULL});
    struct lks_header *h = load(r.pid);
    cr_expect_eq(subsys(h, "pipe")->fd_open, 1, "the replaced pipe end counts as closed");
    cr_expect_eq(subsys(h, "pipe")->fd_closed, 1);
    cr_expect_eq(subsys(h, "file")->fd_open, 1, "the duplicate belongs to the file");
    cr_expect_eq(subsys(h, "frontier")->fd_open, 1);
    cr_expect_eq(h->fd_stale, 0);
    check_invariant(h);
    lks_segment_free(h);
}

Test(fdtrack, close_in_a_signal_handler) {
    struct run r;
    run_both(&r, (char *[]){"signal", NULL});
    struct lks_header *h = load(r.pid);
    cr_expect_eq(subsys(h, "file")->fd_opened, 16);
    cr_expect_eq(subsys(h, "file")->fd_open, 0);
    cr_expect_eq(subsys(h, "pipe")->fd_open, 2);
    check_invariant(h);
    lks_segment_free(h);
}

Test(fdtrack, emfile_storm_is_counted_per_subsystem_and_site) {
    struct run r;
    run_both(&r, (char *[]){"emfile", NULL});
    int failures = 0;
    cr_assert(sscanf(r.out, "emfile failures=%d", &failures) == 1);
    cr_assert_eq(failures, 50);
    struct lks_header *h = load(r.pid);
    cr_expect_eq(subsys(h, "file")->fd_failed[LKS_ERR_EMFILE], 50);
    uint64_t failed = 0;
    site_open(h, "file", "probe_exhaust_descriptors", &failed);
    cr_expect_eq(failed, 50);
    cr_expect_eq(subsys(h, "file")->fd_open, 0);
    cr_expect_eq(h->rlimit_nofile_cur, 64);
    /* At the limit: 3 stdio + the shim's own + every file the probe held. */
    cr_expect_neq(h->fd_limit_hit_mono_ns, 0);
    cr_expect_eq(subsys(h, "stdio")->fd_open_at_limit, 3);
    cr_expect_eq(subsys(h, "file")->fd_open_at_limit + 3 + h->fd_own, 64,
                 "file held %lld at the limit", (long long)subsys(h, "file")->fd_open_at_limit);
    check_invariant(h);
    lks_segment_free(h);
}

static int free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(s, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    return ntohs(a.sin_port);
}

Test(fdtrack, port_rule_from_a_rules_file_classifies_both_ends) {
    int port = free_port();
    char rules[400], env[500], portarg[16];
    snprintf(rules, sizeof rules, "%s/rules", dir);
    FILE *f = fopen(rules, "w");
    fprintf(f, "# test rules\nqueue port %d\n", port);
    fclose(f);
    snprintf(env, sizeof env, "LEAKSCOPE_RULES=%s", rules);
    snprintf(portarg, sizeof portarg, "%d", port);
    struct run r;
    run_probe(&r, 1, env, (char *[]){"connect", portarg, "4", NULL});
    cr_assert_str_eq(r.out, "connect ok\n");
    struct lks_header *h = load(r.pid);
    /* 4 client sockets + 4 accepted + the listener, all on the port. */
    cr_expect_eq(subsys(h, "queue")->fd_open, 9);
    cr_expect_eq(site_open(h, "queue", "probe_leak_connection", NULL), 4);
    cr_expect_eq(subsys(h, "socket")->fd_open, 0);
    check_invariant(h);
    lks_segment_free(h);
}

Test(fdtrack, bad_rules_file_falls_back_to_defaults_with_file_and_line) {
    char rules[400], env[500];
    snprintf(rules, sizeof rules, "%s/bad.rules", dir);
    FILE *f = fopen(rules, "w");
    fprintf(f, "redis port 6379\nhttp prot 80\n");
    fclose(f);
    snprintf(env, sizeof env, "LEAKSCOPE_RULES=%s", rules);
    struct run r;
    char buf[2048];
    run_probe_stderr(&r, env, (char *[]){"basic", NULL}, buf, sizeof buf);
    cr_expect(strstr(buf, "bad.rules:2:") != NULL, "stderr was: %s", buf);
    cr_expect_eq(r.status, 0);
    struct lks_header *h = load(r.pid);
    cr_expect_eq(subsys(h, "frontier")->fd_open, 5, "defaults still classify");
    lks_segment_free(h);
}

Test(fdtrack, exec_reinitializes_and_adopts_inherited) {
    struct run r;
    run_both(&r, (char *[]){"exec", "0", NULL});
    cr_assert_str_eq(r.out, "exec stage 1\n");
    struct lks_header *h = load(r.pid);
    /* The new image sees the two frontier files as inherited. */
    cr_expect_eq(subsys(h, "frontier")->fd_open, 2);
    cr_expect_eq(site_open(h, "pipe", "probe_leak_pipes", NULL), 2);
    check_invariant(h);
    lks_segment_free(h);
}

Test(fdtrack, live_open_count_equals_proc_fd_at_a_quiescent_point) {
    int in[2], out[2];
    cr_assert(pipe(in) == 0 && pipe(out) == 0);
    pid_t p = fork();
    if (p == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close_range(3, ~0U, 0);
        char tmp[300];
        snprintf(tmp, sizeof tmp, "%s/tmp", dir);
        setenv("FDPROBE_TMP", tmp, 1);
        setenv("LEAKSCOPE_DIR", dir, 1);
        setenv("LD_PRELOAD", SHIM_PATH, 1);
        execl(FDPROBE_PATH, "fdprobe", "hold", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    char line[64] = "";
    cr_assert(read(out[0], line, sizeof line - 1) > 0);
    struct lks_header *h = load(p);
    cr_expect(lks_segment_process_alive(h));
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)p);
    int kernel = 0;
    DIR *d = opendir(path);
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') kernel++;
    closedir(d);
    cr_expect_eq(open_total(h) + h->fd_own, kernel,
                 "shim says %lld open + %d own, /proc/%d/fd has %d", (long long)open_total(h),
                 (int)h->fd_own, (int)p, kernel);
    cr_expect_leq(h->fd_own, 2, "only libunwind's validation pipe is ours");
    cr_expect_eq(subsys(h, "frontier")->fd_open, 4);
    cr_expect_eq(subsys(h, "pipe")->fd_open, 6); /* our stdin/stdout pipes are stdio */
    /* Sockets carry their inode, as the kernel names it in /proc/PID/fd. */
    int sockets = 0;
    for (int fd = 0; fd < h->fd_hiwater; fd++) {
        struct lks_fd *e = &lks_fd_table(h)[fd];
        if (!e->in_use || e->kind != LKS_KIND_UNIX) continue;
        char link[64], target[64] = "", want[64];
        snprintf(link, sizeof link, "/proc/%d/fd/%d", (int)p, fd);
        cr_assert(readlink(link, target, sizeof target - 1) > 0);
        snprintf(want, sizeof want, "socket:[%llu]", (unsigned long long)e->inode);
        cr_expect_str_eq(target, want);
        sockets++;
    }
    cr_expect_eq(sockets, 2);
    lks_segment_free(h);
    close(in[1]);
    close(out[0]);
    waitpid(p, NULL, 0);
}

Test(fdtrack, unwritable_directory_leaves_the_program_untouched) {
    struct run r;
    char buf[2048];
    run_probe_stderr(&r, "LEAKSCOPE_DIR=/proc/no/such/dir", (char *[]){"basic", NULL}, buf, sizeof buf);
    cr_expect_eq(r.status, 0);
    cr_expect_str_eq(r.out, "basic ok\n");
    cr_expect(strstr(buf, "tracing off") != NULL, "stderr: %s", buf);
    int lines = 0;
    for (char *c = buf; *c; c++) lines += *c == '\n';
    cr_expect_eq(lines, 1, "one line on stderr, got: %s", buf);
}

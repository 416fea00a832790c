/* test_memtrack.c - libmemtrack.so against programs that know what they
 * leaked: counts must match to the byte, per subsystem and per site.
 * Every test runs heapprobe (or a real program) under the shim with a
 * private LEAKSCOPE_DIR and reads the segment it left behind.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "heapseg.h"
#include "segment.h"

#include "mtrun.h"

static struct lks_heapseg *heap_of(struct lks_header *h) {
    const char *why = NULL;
    struct lks_heapseg *hs = lks_heapseg_check(h, &why);
    cr_assert(hs, "heap area: %s", why);
    return hs;
}

static void check_subsys(struct lks_header *h, const char *out, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "\n%s ", name);
    char *line = strstr(out, key);
    if (!line && strncmp(out, key + 1, strlen(key + 1)) == 0) line = (char *)out - 1;
    cr_assert(line, "no truth for %s in: %s", name, out);
    long long lb, la, ac, fr, ab;
    cr_assert_eq(sscanf(line + strlen(key), "%lld %lld %lld %lld %lld", &lb, &la, &ac, &fr, &ab),
                 5);
    struct lks_subsys *ss = mt_subsys(h, name);
    cr_assert(ss, "no subsystem %s in the segment", name);
    cr_expect_eq(ss->heap_live_bytes, lb, "%s live_bytes %lld, truth %lld", name,
                 (long long)ss->heap_live_bytes, lb);
    cr_expect_eq(ss->heap_live_allocs, la, "%s live_allocs %lld, truth %lld", name,
                 (long long)ss->heap_live_allocs, la);
    cr_expect_eq((long long)ss->heap_allocs, ac, "%s allocs %llu, truth %lld", name,
                 (unsigned long long)ss->heap_allocs, ac);
    cr_expect_eq((long long)ss->heap_frees, fr, "%s frees %llu, truth %lld", name,
                 (unsigned long long)ss->heap_frees, fr);
    cr_expect_eq((long long)ss->heap_alloc_bytes, ab, "%s alloc_bytes %llu, truth %lld", name,
                 (unsigned long long)ss->heap_alloc_bytes, ab);
    /* The sites of a subsystem add up to it. */
    int id = (int)(ss - lks_subsys_table(h));
    long long site_bytes = 0, site_allocs = 0;
    struct lks_site *sites = lks_site_table(h);
    for (uint32_t i = 0; i < h->sites_cap; i++)
        if (sites[i].key && sites[i].subsys == id) {
            site_bytes += sites[i].heap_live_bytes;
            site_allocs += sites[i].heap_live_allocs;
        }
    cr_expect_eq(site_bytes, lb, "%s: sites hold %lld live bytes, truth %lld", name, site_bytes,
                 lb);
    cr_expect_eq(site_allocs, la, "%s: sites hold %lld live allocs, truth %lld", name,
                 site_allocs, la);
}

Test(memtrack, every_allocator_to_the_byte) {
    struct mt_run r = mt_run_probe("leak", NULL);
    cr_assert_eq(r.status, 0, "heapprobe leak exited %d; stderr: %s", r.status, r.err);
    struct lks_header *h = mt_segment(&r, r.pid);
    check_subsys(h, r.out, "frontier");
    check_subsys(h, r.out, "testlib");
    struct lks_heapseg *hs = heap_of(h);
    cr_expect_eq(hs->final, 1);
    /* Ages and largest allocations agree with the counters. */
    struct lks_subsys *fr = mt_subsys(h, "frontier");
    int id = (int)(fr - lks_subsys_table(h));
    long long aged = 0;
    for (int b = 0; b < LKS_HEAP_AGES; b++) aged += hs->age_bytes[id][b];
    cr_expect_eq(aged, fr->heap_live_bytes);
    cr_expect(hs->nretained > 0 && hs->retained[0].size == 10000,
              "largest live allocation is valloc(10000), got %llu",
              (unsigned long long)hs->retained[0].size);
    cr_expect_eq(hs->retained[0].subsys, id);
    lks_segment_free(h);
    mt_run_free(&r);
}

/* libfdtrack.so and libmemtrack.so together: one segment, nothing counted
 * twice, the descriptor view still there. */
Test(memtrack, both_shims_count_once) {
    struct mt_run r = mt_run_cmd((const char *[]){MT_HEAPPROBE, "leak", NULL}, 2);
    cr_assert_eq(r.status, 0, "heapprobe leak exited %d; stderr: %s", r.status, r.err);
    struct lks_header *h = mt_segment(&r, r.pid);
    cr_expect_eq(atomic_load(&h->features), LKS_FEATURE_FD | LKS_FEATURE_HEAP);
    check_subsys(h, r.out, "frontier");
    check_subsys(h, r.out, "testlib");
    lks_segment_free(h);
    mt_run_free(&r);
}

/* The summary of `leakscope run --heap` holds the same truth. */
Test(memtrack, run_summary_to_the_byte) {
    struct mt_run dir = mt_run_cmd((const char *[]){"true", NULL}, 0);
    char rules[300], segs[300], summary[300];
    snprintf(rules, sizeof rules, "%s/rules", dir.dir);
    snprintf(segs, sizeof segs, "%s/cli-segs", dir.dir);
    snprintf(summary, sizeof summary, "%s/summary.json", dir.dir);
    struct mt_run r = mt_run_in(&dir, (const char *[]){MT_LEAKSCOPE, "run", "--heap", "--quiet",
                                                        "--rules", rules, "--dir", segs,
                                                        "--summary", summary, "--",
                                                        MT_HEAPPROBE, "leak", NULL});
    cr_assert_eq(r.status, 0, "leakscope run: %s", r.err);
    FILE *f = fopen(summary, "r");
    cr_assert(f, "no summary");
    char json[1 << 16];
    size_t n = fread(json, 1, sizeof json - 1, f);
    json[n] = 0;
    fclose(f);
    const char *names[] = {"frontier", "testlib"};
    for (int i = 0; i < 2; i++) {
        char key[64], want[200];
        snprintf(key, sizeof key, "\n%s ", names[i]);
        const char *line = strstr(r.out, key + 1);
        cr_assert(line, "no truth for %s: %s", names[i], r.out);
        long long lb, la, ac, fr, ab;
        cr_assert_eq(sscanf(line + strlen(key + 1), "%lld %lld %lld %lld %lld", &lb, &la, &ac, &fr,
                            &ab), 5);
        snprintf(want, sizeof want,
                 "\"%s\":{\"live_bytes\":%lld,\"live_allocs\":%lld,\"alloc_bytes\":%lld,"
                 "\"allocs\":%lld,\"frees\":%lld",
                 names[i], lb, la, ab, ac, fr);
        cr_expect(strstr(json, want), "summary lacks %s", want);
    }
    cr_expect(strstr(json, "\"sites\":[{\"subsystem\":"), "no sites in the summary");
    mt_run_free(&r);
    mt_run_free(&dir);
}

Test(memtrack, sixteen_thread_storm) {
    struct mt_run r = mt_run_probe("storm", NULL);
    cr_assert_eq(r.status, 0, "heapprobe storm exited %d; stderr: %s", r.status, r.err);
    struct lks_header *h = mt_segment(&r, r.pid);
    check_subsys(h, r.out, "frontier");
    /* Everything the storm churned was freed: "other" holds only what the
     * C library keeps (stdio buffers, thread bookkeeping), not the churn. */
    struct lks_subsys *other = mt_subsys(h, "other");
    cr_expect_lt(other->heap_live_bytes, 64 * 1024, "other still holds %lld bytes",
                 (long long)other->heap_live_bytes);
    cr_expect_geq((long long)other->heap_allocs, 16LL * 20000);
    lks_segment_free(h);
    mt_run_free(&r);
}

Test(memtrack, fork_child_inherits_live_allocations) {
    struct mt_run r = mt_run_probe("fork", NULL);
    cr_assert_eq(r.status, 0, "heapprobe fork exited %d; stderr: %s", r.status, r.err);
    int child = 0, pb = 0, pa = 0, cb = 0, ca = 0;
    cr_assert_eq(sscanf(r.out, "child %d\nparent frontier %d %d\nchild frontier %d %d", &child,
                        &pb, &pa, &cb, &ca),
                 5, "output: %s", r.out);
    struct lks_header *ph = mt_segment(&r, r.pid);
    struct lks_header *chh = mt_segment(&r, child);
    struct lks_subsys *p = mt_subsys(ph, "frontier"), *c = mt_subsys(chh, "frontier");
    cr_expect_eq(p->heap_live_bytes, pb);
    cr_expect_eq(p->heap_live_allocs, pa);
    cr_expect_eq(c->heap_live_bytes, cb, "child frontier %lld, truth %d",
                 (long long)c->heap_live_bytes, cb);
    cr_expect_eq(c->heap_live_allocs, ca);
    /* The child's totals restart from what it inherited. */
    cr_expect_eq((long long)c->heap_allocs, ca);
    cr_expect_eq((long long)c->heap_frees, 0);
    cr_expect_eq(chh->ppid, r.pid);
    lks_segment_free(ph);
    lks_segment_free(chh);
    mt_run_free(&r);
}

/* A fork child that only allocates where its parent did has no segment
 * until 50 ms into its life (a child that execs at once never makes one),
 * then one with its own and its inherited blocks. */
Test(memtrack, fork_child_makes_its_segment_late) {
    struct mt_run r = mt_run_probe("forklate", NULL);
    cr_assert_eq(r.status, 0, "heapprobe forklate exited %d; stderr: %s", r.status, r.err);
    cr_expect(strstr(r.out, "child segment before 0 after 1\n"), "output: %s", r.out);
    const char *rest = strstr(r.out, "child ");
    while (rest && strncmp(rest, "child segment", 13) == 0) rest = strstr(rest + 1, "child ");
    int child = 0, pb = 0, pa = 0, cb = 0, ca = 0;
    cr_assert(rest && sscanf(rest, "child %d\nparent frontier %d %d\nchild frontier %d %d",
                             &child, &pb, &pa, &cb, &ca) == 5,
              "output: %s", r.out);
    struct lks_header *ph = mt_segment(&r, r.pid);
    struct lks_header *chh = mt_segment(&r, child);
    cr_expect_eq(mt_subsys(ph, "frontier")->heap_live_bytes, pb);
    struct lks_subsys *c = mt_subsys(chh, "frontier");
    cr_expect_eq(c->heap_live_bytes, cb, "child frontier %lld, truth %d",
                 (long long)c->heap_live_bytes, cb);
    cr_expect_eq(c->heap_live_allocs, ca);
    cr_expect_eq(chh->forked_from, r.pid);
    lks_segment_free(ph);
    lks_segment_free(chh);
    mt_run_free(&r);
}

Test(memtrack, unknown_free_double_free_and_oom) {
    struct mt_run r = mt_run_probe("errors", NULL);
    cr_assert_eq(r.status, 0, "heapprobe errors exited %d; stderr: %s", r.status, r.err);
    cr_expect(strstr(r.out, "oom null ENOMEM\nsurvived\n"), "output: %s", r.out);
    cr_expect(strstr(r.err, "double free"), "stderr: %s", r.err);
    struct lks_header *h = mt_segment(&r, r.pid);
    struct lks_heapseg *hs = heap_of(h);
    cr_expect_geq(hs->unknown_frees, 1);
    cr_expect_geq(hs->failed_allocs, 1);
    cr_assert_eq(hs->ndouble_frees, 1);
    struct lks_heap_double_free *df = &hs->double_frees[0];
    cr_expect_eq(df->size, 4242);
    cr_expect_eq(df->subsys, (uint16_t)(mt_subsys(h, "frontier") - lks_subsys_table(h)));
    cr_expect(mt_site_has_func(h, df->alloc_site, "frontier_twice_freed"), "allocation site");
    cr_expect(mt_site_has_func(h, df->first_free_site, "probe_first_free"), "first free site");
    cr_expect(mt_site_has_func(h, df->second_free_site, "probe_second_free"),
              "second free site");
    /* The block was freed once: nothing of it is live. */
    cr_expect_eq(mt_subsys(h, "frontier")->heap_live_bytes, 0);
    lks_segment_free(h);
    mt_run_free(&r);
}

Test(memtrack, signal_handlers_that_allocate) {
    struct mt_run r = mt_run_probe("signals", NULL);
    cr_assert_eq(r.status, 0, "heapprobe signals exited %d; stderr: %s", r.status, r.err);
    cr_expect_str_eq(r.out, "alarms seen\n");
    struct lks_header *h = mt_segment(&r, r.pid);
    cr_expect_eq(mt_subsys(h, "frontier")->heap_live_bytes, 2 * 2000);
    lks_segment_free(h);
    mt_run_free(&r);
}

Test(memtrack, fork_while_threads_allocate) {
    struct mt_run r = mt_run_probe("forkstorm", NULL);
    cr_assert_eq(r.status, 0, "heapprobe forkstorm exited %d; stderr: %s", r.status, r.err);
    cr_expect_str_eq(r.out, "children ok 30\n");
    mt_run_free(&r);
}

Test(memtrack, in_program_mark_counts_only_the_job) {
    struct mt_run r = mt_run_probe("job", NULL);
    cr_assert_eq(r.status, 0, "heapprobe job exited %d; stderr: %s", r.status, r.err);
    cr_expect(strstr(r.out, "since mark 6000 3\n"), "output: %s", r.out);
    struct lks_header *h = mt_segment(&r, r.pid);
    struct lks_heapseg *hs = heap_of(h);
    int id = (int)(mt_subsys(h, "frontier") - lks_subsys_table(h));
    cr_expect_eq(hs->mark_live_bytes[id], 6000);
    cr_expect_eq(mt_subsys(h, "frontier")->heap_live_bytes, 13 * 2000);
    lks_segment_free(h);
    mt_run_free(&r);
}

Test(memtrack, header_without_shim_says_so) {
    struct mt_run r = mt_run_cmd((const char *[]){MT_HEAPPROBE, "job", NULL}, 0);
    cr_assert_eq(r.status, 0);
    cr_expect_str_eq(r.out, "no shim\n");
    mt_run_free(&r);
}

/* Real programs give the same output and exit status with and without the
 * shim, and leave a heap view whose ages add up to the live bytes. */
static void same_with_and_without(const char *const *argv) {
    struct mt_run plain = mt_run_cmd(argv, 0);
    struct mt_run shim = mt_run_cmd(argv, 1);
    cr_expect_eq(shim.status, plain.status, "%s: status %d under the shim, %d without", argv[0],
                 shim.status, plain.status);
    cr_expect_str_eq(shim.out, plain.out, "%s: stdout differs", argv[0]);
    cr_expect_str_eq(shim.err, plain.err, "%s: stderr differs", argv[0]);
    struct lks_header *h = mt_segment(&shim, shim.pid);
    struct lks_heapseg *hs = heap_of(h);
    long long live = 0, aged = 0;
    for (uint32_t s = 0; s < h->subsys_used; s++) {
        live += lks_subsys_table(h)[s].heap_live_bytes;
        for (int b = 0; b < LKS_HEAP_AGES; b++) aged += hs->age_bytes[s][b];
    }
    cr_expect_eq(aged, live, "%s: %lld bytes by age, %lld live", argv[0], aged, live);
    lks_segment_free(h);
    mt_run_free(&plain);
    mt_run_free(&shim);
}

Test(memtrack, real_programs_behave_the_same) {
    same_with_and_without((const char *[]){
        "python3", "-c",
        "import json, threading, subprocess\n"
        "d = [{'k': i, 'v': str(i) * 7} for i in range(30000)]\n"
        "s = json.dumps(d); assert json.loads(s) == d\n"
        "t = [threading.Thread(target=lambda: json.dumps(d[:5000])) for _ in range(4)]\n"
        "[x.start() for x in t]; [x.join() for x in t]\n"
        "print(len(s), subprocess.run(['true']).returncode)\n",
        NULL});
    same_with_and_without((const char *[]){"sqlite3", ":memory:",
                                           "create table t(x); insert into t values(1),(2);"
                                           " select sum(x), count(*) from t;",
                                           NULL});
    same_with_and_without((const char *[]){"git", "--version", NULL});
    same_with_and_without((const char *[]){"redis-server", "--version", NULL});
    same_with_and_without((const char *[]){"nginx", "-v", NULL});
    same_with_and_without((const char *[]){"sh", "-c", "exit 3", NULL});
}

static void say(int fd, const char *cmd) {
    cr_assert_eq(write(fd, cmd, strlen(cmd)), (ssize_t)strlen(cmd));
}

static void expect_ready(FILE *from) {
    char line[64];
    cr_assert(fgets(line, sizeof line, from), "heapprobe serve went away");
    cr_assert_str_eq(line, "ready\n");
}

/* `leakscope mark PID`, a leak injected among churn, `leakscope diff PID`:
 * the diff shows the injected leak and nothing else. */
Test(memtrack, cli_diff_shows_the_injected_leak_only) {
    int to, fromfd;
    struct mt_run r = mt_start((const char *[]){MT_HEAPPROBE, "serve", NULL}, &to, &fromfd);
    FILE *from = fdopen(fromfd, "r");
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)r.pid);
    expect_ready(from);

    struct mt_run nomark = mt_run_in(&r, (const char *[]){MT_LEAKSCOPE, "diff", pid, NULL});
    cr_expect_neq(nomark.status, 0);
    cr_expect(strstr(nomark.err, "no mark"), "stderr: %s", nomark.err);

    struct mt_run mark = mt_run_in(&r, (const char *[]){MT_LEAKSCOPE, "mark", pid, NULL});
    cr_assert_eq(mark.status, 0, "mark: %s", mark.err);
    say(to, "churn\n");
    expect_ready(from);
    say(to, "leak\n");
    expect_ready(from);
    say(to, "churn\n");
    expect_ready(from);

    struct mt_run diff =
        mt_run_in(&r, (const char *[]){MT_LEAKSCOPE, "diff", "--json", pid, NULL});
    cr_assert_eq(diff.status, 0, "diff: %s", diff.err);
    cr_expect(strstr(diff.out, "\"live_bytes\":15000,\"live_allocs\":5,"), "diff: %s", diff.out);
    cr_expect(strstr(diff.out, "\"by_subsystem\":{\"frontier\":{\"live_bytes\":15000,"
                               "\"live_allocs\":5}}"),
              "diff: %s", diff.out);
    /* One site, the injected leak. */
    char *site = strstr(diff.out, "\"sites\":[{");
    cr_assert(site, "diff: %s", diff.out);
    cr_expect(strstr(site, "frontier_injected_leak"), "diff: %s", diff.out);
    cr_expect_null(strstr(site + 10, "{\"subsystem\""), "more than one site: %s", diff.out);

    struct mt_run text = mt_run_in(&r, (const char *[]){MT_LEAKSCOPE, "diff", pid, NULL});
    cr_expect(strstr(text.out, "frontier_injected_leak"), "diff: %s", text.out);

    say(to, "quit\n");
    fclose(from);
    close(to);
    mt_wait(&r);
    cr_expect_eq(r.status, 0);

    struct mt_run gone = mt_run_in(&r, (const char *[]){MT_LEAKSCOPE, "mark", "999999999", NULL});
    cr_expect_neq(gone.status, 0);
    cr_expect(strstr(gone.err, "no process") || strstr(gone.err, "bad pid"), "stderr: %s",
              gone.err);
    mt_run_free(&text);
    mt_run_free(&diff);
    mt_run_free(&mark);
    mt_run_free(&nomark);
    mt_run_free(&gone);
    mt_run_free(&r);
}

static char *cli(struct mt_run *server, const char *port, const char *a, const char *b,
                 const char *c) {
    struct mt_run r =
        mt_run_in(server, (const char *[]){"redis-cli", "-p", port, a, b, c, NULL});
    char *out = strdup(r.out);
    mt_run_free(&r);
    return out;
}

/* A real server that links jemalloc (found behind the shim with RTLD_NEXT):
 * it serves, shuts down cleanly, and leaves a heap view. */
Test(memtrack, redis_server_under_the_shim) {
    char port[16];
    snprintf(port, sizeof port, "%d", 21000 + getpid() % 8000);
    int to, from;
    struct mt_run r = mt_start((const char *[]){"redis-server", "--port", port, "--save", "",
                                                "--appendonly", "no", "--bind", "127.0.0.1",
                                                NULL},
                               &to, &from);
    char *pong = NULL;
    for (int i = 0; i < 100; i++) {
        free(pong);
        pong = cli(&r, port, "ping", NULL, NULL);
        if (!strcmp(pong, "PONG\n")) break;
        usleep(50000);
    }
    cr_expect_str_eq(pong, "PONG\n");
    char *set = cli(&r, port, "set", "k", "leakscope");
    char *get = cli(&r, port, "get", "k", NULL);
    cr_expect_str_eq(set, "OK\n");
    cr_expect_str_eq(get, "leakscope\n");
    free(cli(&r, port, "shutdown", "nosave", NULL));
    close(to);
    char buf[4096];
    while (read(from, buf, sizeof buf) > 0) {
    }
    close(from);
    mt_wait(&r);
    cr_expect_eq(r.status, 0, "redis-server exited %d", r.status);
    struct lks_header *h = mt_segment(&r, r.pid);
    struct lks_heapseg *hs = heap_of(h);
    cr_expect_eq(hs->final, 1);
    cr_expect_gt((long long)mt_subsys(h, "other")->heap_allocs, 0);
    free(pong);
    free(set);
    free(get);
    lks_segment_free(h);
    mt_run_free(&r);
}

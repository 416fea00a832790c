/* test_rules.c - the rules language: defaults, user rules first, every
 * matcher, and bad files refused with file:line while the defaults stay. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rules.h"

static struct lks_rules r;

static const char *classify(int kind, unsigned port, const char *path, uint64_t bits) {
    struct lks_subject s = {.kind = kind, .port = port, .path = path, .stack_bits = bits};
    return r.names[lks_rules_classify(&r, &s)];
}

/* Stack bits as the runtime computes them, from module and function names. */
static uint64_t stack(const char *module, const char *func) {
    const char *mods[1] = {module}, *funcs[1] = {func};
    return lks_rules_stack_bits(&r, 1, mods, funcs);
}

Test(rules, defaults_cover_the_seed_subsystems) {
    lks_rules_defaults(&r);
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 6379, NULL, 0), "redis");
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 443, NULL, 0), "https");
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 8080, NULL, 0), "http");
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 5432, NULL, 0), "socket");
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "/data/frontiers/ab/x.example.frontier", 0),
                     "frontier");
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "/var/log/crawler.log", 0), "log");
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "/srv/app.sqlite",
                              stack("/usr/lib/x86_64-linux-gnu/libsqlite3.so.0", "sqlite3_open_v2")),
                     "sqlite");
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "/srv/app.db", stack("/bin/app", "sqlite3_step")),
                     "sqlite");
    /* prometheus_client's multiprocess files are mmapped metrics, not SQLite. */
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "/tmp/prom/counter_12.db",
                              stack("/usr/lib/python3.11/lib-dynload/mmap.cpython-311.so", NULL)),
                     "metrics");
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "/etc/passwd", 0), "file");
    cr_expect_str_eq(classify(LKS_KIND_PIPE, 0, NULL, 0), "pipe");
    cr_expect_str_eq(classify(LKS_KIND_EPOLL, 0, NULL, 0), "epoll");
    cr_expect_str_eq(classify(LKS_KIND_STDIO, 0, "/tmp/out.log", 0), "stdio");
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 0, NULL, stack("/usr/lib/libhiredis.so.0.14", "redisConnect")), "redis");
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 0, NULL, stack("/usr/lib/x86_64-linux-gnu/libcurl.so.4", NULL)), "http");
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "/tmp/x", stack("/bin/crawler", "frontier_read_batch")), "frontier");
    cr_expect_str_eq(classify(LKS_KIND_UNKNOWN, 0, NULL, 0), "other");
}

Test(rules, port_beats_module_when_listed_first) {
    lks_rules_defaults(&r);
    /* A libcurl socket to 443 is https: the port rule comes first. */
    uint64_t curl = stack("libcurl.so.4", "Curl_socket");
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 443, NULL, curl), "https");
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 0, NULL, curl), "http");
}

Test(rules, user_rules_come_first_and_add_subsystems) {
    char err[256];
    cr_assert_eq(lks_rules_parse(&r,
                                 "# mine\n"
                                 "queue    port   9000-9100,7000\n"
                                 "cache    path   /var/cache/*\n"
                                 "redis    func   my_redis_*\n"
                                 "\n   \t\n",
                                 "mine.rules", err, sizeof err),
                 0, "%s", err);
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 9050, NULL, 0), "queue");
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 7000, NULL, 0), "queue");
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 9101, NULL, 0), "socket");
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "/var/cache/x.log", 0), "cache");
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 0, NULL, stack("app", "my_redis_connect")), "redis");
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 6379, NULL, 0), "redis", "defaults still apply");
    cr_expect_eq(lks_rules_subsys_id(&r, "unattributed"), LKS_SUBSYS_UNATTRIBUTED);
    cr_expect_eq(lks_rules_subsys_id(&r, "other"), LKS_SUBSYS_OTHER);
}

static void expect_bad(const char *text, const char *want) {
    char err[256] = "";
    cr_expect_eq(lks_rules_parse(&r, text, "bad.rules", err, sizeof err), -1, "accepted: %s", text);
    cr_expect(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
    /* The defaults are in force after a bad file. */
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 6379, NULL, 0), "redis");
    cr_expect_eq(r.nrules > 10, 1);
}

Test(rules, bad_lines_name_file_and_line) {
    expect_bad("redis port 6379\nhttp prot 80\n", "bad.rules:2:");
    expect_bad("x port 0\n", "bad.rules:1: bad port list");
    expect_bad("x port 70000\n", "bad port list");
    expect_bad("x port 80-\n", "bad port list");
    expect_bad("x port abc\n", "bad port list");
    expect_bad("x kind fifo\n", "unknown descriptor kind");
    expect_bad("x path\n", "expected 'SUBSYSTEM MATCHER PATTERN'");
    expect_bad("x path a b\n", "got 4 fields");
    expect_bad("bad/name path *\n", "bad subsystem name");
    expect_bad("waytoolongsubsystemname_over_limit path *\n", "bad subsystem name");
    char big[400];
    memset(big, 'a', sizeof big);
    memcpy(big, "x path ", 7);
    big[sizeof big - 1] = 0;
    expect_bad(big, "pattern longer");
}

Test(rules, comma_lists_of_globs) {
    char err[256];
    cr_assert_eq(lks_rules_parse(&r, "db path *.db,*.sqlite,/srv/[ab]*/data\n", "t", err, sizeof err), 0);
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "/x/y.sqlite", 0), "db");
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "/x/y.db", 0), "db");
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "/srv/b1/data", 0), "db");
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "/srv/c1/data", 0), "file");
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "/x/y.txt", 0), "file");
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "db", 0), "file", "shorter than the suffix");
}

Test(rules, too_many_rules_or_subsystems) {
    char text[64 * 1024] = "";
    for (int i = 0; i < 70; i++) {
        char line[64];
        snprintf(line, sizeof line, "s%d func f%d\n", i % 10, i);
        strcat(text, line);
    }
    expect_bad(text, "module/func rules");
    text[0] = 0;
    for (int i = 0; i < 60; i++) {
        char line[64];
        snprintf(line, sizeof line, "sub%d port %d\n", i, 1000 + i);
        strcat(text, line);
    }
    expect_bad(text, "subsystems");
}

Test(rules, missing_or_binary_file) {
    char err[256];
    cr_expect_eq(lks_rules_load_file(&r, "/nonexistent/rules", err, sizeof err), -1);
    cr_expect(strstr(err, "/nonexistent/rules") != NULL);
    FILE *f = fopen("/tmp/lks-binary.rules", "w");
    fwrite("redis port 1\0junk", 1, 17, f);
    fclose(f);
    cr_expect_eq(lks_rules_load_file(&r, "/tmp/lks-binary.rules", err, sizeof err), -1);
    cr_expect(strstr(err, "binary") != NULL, "%s", err);
    remove("/tmp/lks-binary.rules");
}

Test(glob, shell_patterns) {
    cr_expect(lks_glob_match("*/frontier*/*", "/data/frontiers/ab/h1.frontier"));
    cr_expect(!lks_glob_match("*/frontier*/*", "/data/frontier"));
    cr_expect(lks_glob_match("libcurl.so*", "libcurl.so.4"));
    cr_expect(lks_glob_match("*.log.[0-9]*", "/var/log/x.log.1"));
    cr_expect(!lks_glob_match("*.log.[0-9]*", "/var/log/x.log.old"));
    cr_expect(lks_glob_match("[!a]bc", "xbc"));
    cr_expect(!lks_glob_match("[!a]bc", "abc"));
    cr_expect(lks_glob_match("a?c", "abc"));
    cr_expect(lks_glob_match("**", ""));
    cr_expect(!lks_glob_match("a", ""));
    cr_expect(lks_glob_match("[ab", "[ab"), "unterminated bracket is literal");
}

Test(rules, fifo_or_device_is_never_opened) {
    char dir[] = "/tmp/lks-rulesfifo-XXXXXX", fifo[64], err[300];
    cr_assert(mkdtemp(dir));
    snprintf(fifo, sizeof fifo, "%s/rules", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    /* Would block forever in open() without a writer if it were opened. */
    cr_expect_eq(lks_rules_load_file(&r, fifo, err, sizeof err), -1);
    cr_expect(strstr(err, "is a FIFO") != NULL, "%s", err);
    cr_expect_eq(lks_rules_load_file(&r, "/dev/zero", err, sizeof err), -1);
    cr_expect(strstr(err, "not a regular file") != NULL, "%s", err);
    cr_expect(lks_rules_subsys_id(&r, "redis") >= 0, "defaults in place");
    unlink(fifo);
    rmdir(dir);
}

/* Stack bits of a stack of Python frames (file, qualified name), as the
 * runtime ORs them frame by frame. */
static uint64_t pystack(int n, const char *const *files, const char *const *funcs) {
    uint64_t bits = 0;
    for (int i = 0; i < n; i++) bits |= lks_rules_pyframe_bits(&r, files[i], funcs[i]);
    return bits;
}

Test(rules, python_defaults_name_the_common_libraries) {
    lks_rules_defaults(&r);
    const char *redis_files[] = {"/usr/lib/python3/dist-packages/redis/connection.py", "/srv/app/main.py"};
    const char *redis_funcs[] = {"Connection.connect", "<module>"};
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 7000, NULL, pystack(2, redis_files, redis_funcs)), "redis");
    cr_expect_str_eq(classify(LKS_KIND_UNKNOWN, 0, NULL, pystack(2, redis_files, redis_funcs)), "redis");
    const char *lib[][2] = {
        {"/venv/lib/python3.11/site-packages/aiohttp/connector.py", "http"},
        {"/venv/lib/python3.11/site-packages/urllib3/connection.py", "http"},
        {"/venv/lib/python3.11/site-packages/requests/sessions.py", "http"},
        {"/venv/lib/python3.11/site-packages/httpx/_client.py", "http"},
        {"/usr/lib/python3.11/http/client.py", "http"},
        {"/usr/lib/python3.11/sqlite3/__init__.py", "sqlite"},
        {"/venv/lib/python3.11/site-packages/psycopg/connection.py", "postgres"},
        {"/venv/lib/python3.11/site-packages/psycopg2/extras.py", "postgres"},
        {"/venv/lib/python3.11/site-packages/prometheus_client/mmap_dict.py", "metrics"},
    };
    for (size_t i = 0; i < sizeof lib / sizeof lib[0]; i++) {
        const char *files[] = {lib[i][0]}, *funcs[] = {"f"};
        cr_expect_str_eq(classify(LKS_KIND_SOCKET, 0, NULL, pystack(1, files, funcs)), lib[i][1],
                         "%s", lib[i][0]);
    }
    /* prometheus_client's multiprocess files, even without Python frames */
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "/tmp/prometheus_multiproc/counter_4242.db", 0), "metrics");
    cr_expect_str_eq(classify(LKS_KIND_FILE, 0, "/run/metrics/gauge_livesum_17.db", 0), "metrics");
    /* the program's own code matches no default */
    const char *own[] = {"/srv/app/main.py"}, *own_f[] = {"crawl"};
    cr_expect_eq(pystack(1, own, own_f), 0);
}

Test(rules, pyfile_and_pyfunc_user_rules) {
    char err[256] = "";
    cr_assert_eq(lks_rules_parse(&r,
                                 "frontier pyfunc *Frontier*\n"
                                 "pages    pyfile */crawler/fetch*.py\n",
                                 "user.rules", err, sizeof err), 0, "%s", err);
    const char *files[] = {"/usr/lib/python3/dist-packages/redis/client.py", "/srv/crawler/frontier.py"};
    const char *funcs[] = {"Redis.execute_command", "RedisFrontier.push"};
    /* user rules first: the frontier's redis traffic is the frontier's */
    cr_expect_str_eq(classify(LKS_KIND_SOCKET, 6379, NULL, pystack(2, files, funcs)), "frontier",
                     "the port rule is a default; user rules come before it");
    cr_expect_str_eq(classify(LKS_KIND_UNKNOWN, 0, NULL, pystack(2, files, funcs)), "frontier");
    const char *pf[] = {"/srv/crawler/fetcher.py"}, *pfn[] = {"read_page"};
    cr_expect_str_eq(classify(LKS_KIND_UNKNOWN, 0, NULL, pystack(1, pf, pfn)), "pages");
    const char *no[] = {"/srv/crawler/parse.py"}, *nofn[] = {"Parser.feed"};
    cr_expect_eq(pystack(1, no, nofn), 0);
    /* native stack rules are not Python ones */
    cr_expect_eq(stack("/srv/crawler/fetcher.py", "RedisFrontier.push"), 0);
    cr_expect_eq(lks_rules_parse(&r, "x pyfoo *\n", "bad.rules", err, sizeof err), -1);
    cr_expect(strstr(err, "pyfile, pyfunc") != NULL, "%s", err);
}

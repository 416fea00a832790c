/* demo.c - `leakscope demo`: the whole job on the reference crawler, from
 * nothing to a verdict. Starts a private redis-server and the synthetic web
 * on free loopback ports, runs the crawler under the shims with one of its
 * leaks switched on, samples its series (shown as `top` on a terminal),
 * prints the verdicts and writes the report; then stops everything it
 * started, also on Ctrl-C.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "diagnose.h"
#include "history.h"
#include "report_html.h"
#include "series.h"
#include "top.h"

static const char *const modes[] = {"none", "redis-pool-growth", "frontier-fd", "retain-pages",
                                    "curl-handle", "http-unbounded"};

static void usage(FILE *out) {
    fputs("usage: leakscope demo [--leak MODE|none] [--duration S] [--report FILE.html] [--json FILE]\n"
          "                      [--record FILE.db] [--keep]\n"
          "Runs the reference crawler against a private redis-server and synthetic web with one\n"
          "of its leaks switched on, watches it, prints the verdicts and writes the report.\n"
          "  --leak MODE      none, redis-pool-growth (default: seed 001), frontier-fd,\n"
          "                   retain-pages, curl-handle, http-unbounded\n"
          "  --duration S     seconds of crawl (60)\n"
          "  --report FILE    the HTML report (default leakscope-demo.html)\n"
          "  --json FILE      the verdicts, as `report --json` writes them\n"
          "  --record FILE    also keep the recording (needs `leakscope record`)\n"
          "  --keep           keep the demo's temporary directory (logs, segments)\n",
          out);
}

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

/* What the demo started, to stop it whatever happens. */
struct demo {
    char tmp[64];
    char segdir[128];
    pid_t redis, web, crawl, recorder;
    int redis_port, web_port;
};

static int free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, len) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0) close(s);
    return port;
}

static int port_open(int port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    if (s >= 0) close(s);
    return ok;
}

/* Starts argv in its own process group (stopped as a group, and the
 * terminal's Ctrl-C reaches the demo alone, which stops things in order),
 * stdout and stderr to log, with an optional descriptor limit. Returns the
 * pid or -1. */
static pid_t spawn(char *const argv[], const char *log, rlim_t nofile) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid > 0) {
        setpgid(pid, pid); /* also here: no race with a kill of the group */
        return pid;
    }
    setpgid(0, 0);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) dup2(null, 0);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (nofile) {
        struct rlimit rl = {nofile, nofile};
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    execvp(argv[0], argv);
    fprintf(stderr, "leakscope demo: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Waits up to ms for pid to exit; 1 if it did (and was reaped). */
static int reaped(pid_t pid, int ms, int *status) {
    for (int i = 0; i < ms / 10; i++) {
        if (waitpid(pid, status, WNOHANG) == pid) return 1;
        usleep(10000);
    }
    return 0;
}

/* SIGTERM to the child's group, then SIGKILL after two seconds. */
static void stop_child(pid_t *pid) {
    if (*pid <= 0) return;
    kill(-*pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = 0;
            return;
        }
        usleep(10000);
    }
    kill(-*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void demo_stop(struct demo *d, int keep) {
    stop_child(&d->crawl);
    stop_child(&d->recorder);
    stop_child(&d->web);
    stop_child(&d->redis);
    if (d->tmp[0] && !keep) nftw(d->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* <dir of this executable>/name. */
static int sibling(const char *name, char *buf, size_t len) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    *slash = 0;
    if (snprintf(buf, len, "%s/%s", exe, name) >= (int)len) return -1;
    return access(buf, X_OK);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Starts redis-server and the web, waits until both answer. */
static int start_servers(struct demo *d, const char *web_bin, const char *mode) {
    int wide = strcmp(mode, "http-unbounded") == 0;
    char port[16], log[160], portfile[160];
    d->redis_port = free_port();
    snprintf(port, sizeof port, "%d", d->redis_port);
    snprintf(log, sizeof log, "%s/redis.log", d->tmp);
    char *redis_argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", d->tmp,
                          "--save", "", "--appendonly", "no", NULL};
    d->redis = spawn(redis_argv, log, 0);
    snprintf(log, sizeof log, "%s/web.log", d->tmp);
    snprintf(portfile, sizeof portfile, "%s/web.port", d->tmp);
    /* A deep web for the long crawl; a wide one (a new connection per host)
     * for the unbounded HTTP client to run out of descriptors on. The
     * frontier leak (a file left open on each short read of a domain's
     * frontier) needs many domains whose frontiers the crawl keeps catching
     * up with: with few, their backlog grows, reads stop being short, and
     * the leak stalls within the demo's minute. */
    int many = wide || strcmp(mode, "frontier-fd") == 0;
    char *web_argv[] = {(char *)web_bin, "--port", "0", "--port-file", portfile,
                        "--hosts", many ? "300" : "60", "--pages", wide ? "40" : "2000",
                        "--crawl-delay", "0.2", NULL};
    d->web = spawn(web_argv, log, 0);
    if (d->redis < 0 || d->web < 0) return -1;
    for (int i = 0; i < 200 && !interrupted; i++) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            if (fscanf(f, "%d", &d->web_port) != 1) d->web_port = 0;
            fclose(f);
        }
        if (d->web_port > 0 && port_open(d->redis_port)) return 0;
        if (waitpid(d->redis, NULL, WNOHANG) == d->redis || waitpid(d->web, NULL, WNOHANG) == d->web) {
            d->redis = d->redis > 0 && kill(d->redis, 0) == 0 ? d->redis : 0;
            d->web = d->web > 0 && kill(d->web, 0) == 0 ? d->web : 0;
            break;
        }
        usleep(50000);
    }
    fprintf(stderr, "leakscope demo: redis-server or leakscope-web did not start (logs in %s)\n", d->tmp);
    return -1;
}

static int start_crawler(struct demo *d, const char *crawler, const char *mode, double duration) {
    char self[PATH_MAX], seeds[160], data[160], redis[32], connect[32], dur[32], log[160], out[160];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return -1;
    self[n] = 0;
    snprintf(seeds, sizeof seeds, "%s/seeds.txt", d->tmp);
    FILE *f = fopen(seeds, "w");
    if (!f) return -1;
    fputs("http://h0.example/\n", f);
    fclose(f);
    snprintf(data, sizeof data, "%s/data", d->tmp);
    snprintf(redis, sizeof redis, "127.0.0.1:%d", d->redis_port);
    snprintf(connect, sizeof connect, "127.0.0.1:%d", d->web_port);
    snprintf(dur, sizeof dur, "%.0f", duration);
    snprintf(log, sizeof log, "%s/crawl.log", d->tmp);
    snprintf(out, sizeof out, "%s/run.log", d->tmp);
    int wide = strcmp(mode, "http-unbounded") == 0;
    /* The crawler labels its parsers (LEAKSCOPE_ROLE=parser); the main
     * process is the fetcher. */
    char *argv[] = {self, "run", "--quiet", "--keep", "--role", "fetcher", "--dir", d->segdir, "--",
                    (char *)crawler, "--seeds", seeds, "--data-dir", data, "--redis", redis,
                    "--connect-to", connect, "--delay", "0.2", "--duration", dur,
                    "--workers", wide ? "32" : "64", "--log", log, "--inject", (char *)mode, NULL};
    d->crawl = spawn(argv, out, wide ? 96 : 0);
    return d->crawl > 0 ? 0 : -1;
}

/* Starts `leakscope record` on the segment directory if this build has it. */
static void start_recorder(struct demo *d, const char *out_db) {
    char self[PATH_MAX], log[160];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return;
    self[n] = 0;
    snprintf(log, sizeof log, "%s/record.log", d->tmp);
    char *argv[] = {self, "record", "--out", (char *)out_db, "--dir", d->segdir, "--interval", "1",
                    "--idle-after", "5", NULL};
    d->recorder = spawn(argv, log, 0);
}

static FILE *open_private(const char *path) {
    mode_t old = umask(077);
    FILE *f = fopen(path, "w");
    umask(old);
    if (!f) fprintf(stderr, "leakscope demo: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

int cmd_demo(int argc, char **argv) {
    const char *mode = "redis-pool-growth", *html = "leakscope-demo.html", *json = NULL, *record = NULL;
    double duration = 60;
    int keep = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--keep") == 0) keep = 1;
        else if (i + 1 < argc && strcmp(a, "--leak") == 0) mode = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--report") == 0) html = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--json") == 0) json = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--record") == 0) record = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--duration") == 0) {
            char *end;
            duration = strtod(argv[++i], &end);
            if (*end || !(duration >= 5 && duration <= 86400)) {
                fprintf(stderr, "leakscope demo: --duration must be 5..86400 seconds\n");
                return 2;
            }
        } else {
            fprintf(stderr, "leakscope demo: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    int known = 0;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) known |= strcmp(mode, modes[i]) == 0;
    if (!known) {
        fprintf(stderr, "leakscope demo: unknown leak '%s' (none, redis-pool-growth, frontier-fd,"
                        " retain-pages, curl-handle, http-unbounded)\n", mode);
        return 2;
    }
    char crawler[PATH_MAX], web[PATH_MAX];
    if (sibling("leakscope-crawler", crawler, sizeof crawler) != 0 ||
        sibling("leakscope-web", web, sizeof web) != 0) {
        fprintf(stderr, "leakscope demo: leakscope-crawler and leakscope-web must be next to leakscope"
                        " (build them: cmake --build build)\n");
        return 1;
    }
    /* Fail before starting anything if the outputs cannot be written. */
    FILE *html_f = open_private(html);
    FILE *json_f = json ? open_private(json) : NULL;
    if (!html_f || (json && !json_f)) {
        if (html_f) fclose(html_f);
        return 1;
    }

    struct demo d = {0};
    snprintf(d.tmp, sizeof d.tmp, "/tmp/leakscope-demo-XXXXXX");
    if (!mkdtemp(d.tmp)) {
        perror("leakscope demo: mkdtemp");
        return 1;
    }
    snprintf(d.segdir, sizeof d.segdir, "%s/segments", d.tmp);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    int rc = 1;
    struct history h = {0};
    struct diag_list l = {0};
    struct series_reader *reader = series_reader_new(10, 5000);
    int tty = isatty(STDOUT_FILENO);
    fprintf(stderr, "leakscope demo: crawler with --inject %s for %.0f s (redis-server, synthetic web,"
                    " segments in %s)\n", mode, duration, d.tmp);
    if (!reader || start_servers(&d, web, mode) != 0 ||
        start_crawler(&d, crawler, mode, duration) != 0)
        goto out;
    if (record) start_recorder(&d, record);
    h.idle_after_s = 5;

    /* Sample once a second until the crawl ends (or Ctrl-C, or a time-out). */
    double started = now_s(), last_print = started;
    int status = -1;
    while (!interrupted) {
        pid_t done = waitpid(d.crawl, &status, WNOHANG);
        struct series_round r;
        if (series_scan(reader, d.segdir, NULL, 0, &r) == 0) {
            int bad = history_add_round(&h, &r, now_s(), 0);
            series_round_free(&r);
            if (bad) goto out;
        }
        if (done == d.crawl) {
            d.crawl = 0;
            break;
        }
        if (now_s() - started > duration + 60) {
            fprintf(stderr, "leakscope demo: the crawler did not stop in time; stopping it\n");
            break;
        }
        diag_list_free(&l);
        if (diagnose(&h, 0, &l) != 0) goto out;
        if (tty) {
            fputs("\033[H\033[2J", stdout);
            top_draw(stdout, &h, &l, 30, "\n", "demo");
            if (l.n) {
                fputc('\n', stdout);
                diag_text(stdout, &l);
            }
            fflush(stdout);
        } else if (now_s() - last_print >= 10) {
            fprintf(stderr, "leakscope demo: %.0f s crawled, %zu verdict%s so far\n", now_s() - started,
                    l.n, l.n == 1 ? "" : "s");
            last_print = now_s();
        }
        /* One round a second, however long the round took. */
        double next = started + ceil(now_s() - started + 0.01);
        while (!interrupted && now_s() < next) usleep(20000);
    }
    if (d.crawl > 0) {
        /* Interrupted or late: SIGINT stops the crawler cleanly (transfers in
         * flight finish), `leakscope run` waits for it. */
        if (interrupted) fprintf(stderr, "leakscope demo: interrupted; stopping the crawler\n");
        kill(-d.crawl, SIGINT);
        if (reaped(d.crawl, 15000, &status)) d.crawl = 0;
    }
    /* Judge the crawl, not the crawler's shutdown: after its --duration it
     * drains its transfers and holds what it had, and that plateau (two or
     * three samples) took the growth verdict below its confidence. */
    history_clip(&h, started + duration + 0.5);
    diag_list_free(&l);
    if (diagnose(&h, 0, &l) != 0) goto out;
    if (tty) fputs("\033[H\033[2J", stdout);
    printf("leakscope demo: --leak %s, %.0f s sampled\n\n", mode,
           h.nt ? h.t[h.nt - 1] - h.t[0] : 0.0);
    diag_text(stdout, &l);
    report_html(html_f, "leakscope demo", &h, &l);
    printf("\nreport: %s\n", html);
    if (json_f) {
        report_json(json_f, "leakscope demo", &h, &l);
        printf("verdicts (JSON): %s\n", json);
    }
    if (record) printf("recording: %s\n", record);
    rc = 0;
out:
    if (html_f && fclose(html_f) != 0) rc = 1;
    if (json_f && fclose(json_f) != 0) rc = 1;
    demo_stop(&d, keep);
    if (keep) fprintf(stderr, "leakscope demo: logs and segments kept in %s\n", d.tmp);
    diag_list_free(&l);
    history_free(&h);
    if (reader) series_reader_free(reader);
    return interrupted && rc == 0 ? 130 : rc;
}

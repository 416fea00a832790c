/* stack.c - `leakscope stack`: one command for the whole monitoring stack.
 * Starts `leakscope serve` and Debian's Prometheus on loopback, the latter
 * with dashboards/prometheus.yml (pointed at the exporter it started) and the
 * alert rules of dashboards/rules, storage in a private temporary directory.
 * Prints where to look and stops both on Ctrl-C or SIGTERM. Grafana is not
 * started: the README explains how to point one at dashboards/provisioning.
 *
 * The children run in their own process groups, so a Ctrl-C reaches only this
 * process, which then stops Prometheus and the exporter in order; they also
 * get SIGTERM if this process dies (PR_SET_PDEATHSIG). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "segdir.h"

#ifndef LKS_DASHBOARDS_DIR
#define LKS_DASHBOARDS_DIR "dashboards"
#endif

#define EXPORTER_DEFAULT_PORT 9464 /* the target in dashboards/prometheus.yml */
#define PROMETHEUS_DEFAULT_PORT 9090 /* the url in dashboards/provisioning */
#define CONFIG_TARGET "127.0.0.1:9464"
#define CONFIG_CRAWLER "127.0.0.1:9390" /* leakscope-crawler --metrics-port 9390 */
#define START_TIMEOUT_S 120.0 /* generous: a loaded machine starts Prometheus slowly */
#define STOP_TIMEOUT_S 10.0

struct child {
    const char *name;
    pid_t pid;
    const char *log; /* where its stderr goes, or NULL */
};

static void usage(FILE *out) {
    fputs("usage: leakscope stack [--dir DIR] [--listen ADDR:PORT] [--prometheus-listen ADDR:PORT]\n"
          "                       [--dashboards DIR] [--scrape-interval DURATION] [--idle-after S]\n"
          "                       [--crawler ADDR:PORT]\n"
          "Runs `leakscope serve` and Prometheus (with dashboards/prometheus.yml and the alert\n"
          "rules) on loopback until Ctrl-C.\n"
          "  --dir DIR                    segment directory (default $LEAKSCOPE_DIR or /dev/shm/leakscope-UID)\n"
          "  --listen ADDR:PORT           exporter address (default 127.0.0.1:9464, or a free port)\n"
          "  --prometheus-listen ADDR:PORT  Prometheus address (default 127.0.0.1:9090, or a free port)\n"
          "  --dashboards DIR             the dashboards/ folder (default $LEAKSCOPE_DASHBOARDS, or the\n"
          "                               source tree's)\n"
          "  --scrape-interval DURATION   scrape and rule evaluation interval (default: the config's, 15s)\n"
          "  --idle-after S               passed to serve: a TCP socket silent this long is idle\n"
          "  --crawler ADDR:PORT          the crawler's metrics endpoint (default " CONFIG_CRAWLER ")\n",
          out);
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A loopback port for a child: preferred if it is free now, else one the
 * kernel picks. The child binds it a moment later; a port taken in between
 * shows up as the child failing to start, reported with its log. */
static int pick_port(int preferred) {
    int ports[2] = {preferred, 0};
    for (int i = 0; i < 2; i++) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) return -1;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ports[i]),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t al = sizeof a;
        if (bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(s, (struct sockaddr *)&a, &al) == 0) {
            close(s);
            return ntohs(a.sin_port);
        }
        close(s);
    }
    return -1;
}

/* Splits "HOST:PORT" (IPv4 only: both children are told the same string). */
static int parse_addr(const char *spec, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(spec, ':');
    struct in_addr ia;
    if (!colon || (size_t)(colon - spec) >= hostlen) return -1;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = 0;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || p < 1 || p > 65535 || inet_pton(AF_INET, host, &ia) != 1) return -1;
    *port = (int)p;
    return 0;
}

/* GET path from host:port, waiting at most timeout_s for the answer; returns
 * the HTTP status (0 if the server cannot be reached) and, when body is
 * given, up to bodylen-1 bytes of the answer. */
static int http_get(const char *host, int port, const char *path, int timeout_s, char *body, size_t bodylen) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return 0;
    struct timeval tv = {.tv_sec = timeout_s};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s:%d\r\n\r\n", path, host, port);
    char buf[65536];
    size_t got = 0;
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0 || write(s, req, (size_t)n) != n) {
        close(s);
        return 0;
    }
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(s, buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    close(s);
    buf[got] = 0;
    int status = 0;
    if (sscanf(buf, "HTTP/%*s %d", &status) != 1) return 0;
    if (body) {
        const char *b = strstr(buf, "\r\n\r\n");
        snprintf(body, bodylen, "%s", b ? b + 4 : "");
    }
    return status;
}

static size_t count_substr(const char *s, const char *needle) {
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Replaces every occurrence of from in line (one line, len bytes max). */
static size_t replace_all(char *line, size_t len, const char *from, const char *to) {
    char out[8192], *o = out;
    size_t n = 0, fl = strlen(from), tl = strlen(to);
    for (const char *p = line; *p;) {
        if (strncmp(p, from, fl) == 0 && (size_t)(o - out) + tl < sizeof out - 1) {
            memcpy(o, to, tl);
            o += tl;
            p += fl;
            n++;
        } else if ((size_t)(o - out) < sizeof out - 1) {
            *o++ = *p++;
        } else {
            break;
        }
    }
    *o = 0;
    snprintf(line, len, "%s", out);
    return n;
}

/* Writes dashboards/prometheus.yml to out with the exporter's (and, if
 * given, the crawler's) address, the absolute rules folder and, if given,
 * another scrape interval. Returns 0, or -1 with a message on stderr. */
static int write_config(const char *dash, const char *out, const char *exporter, const char *crawler,
                        const char *interval) {
    char src[PATH_MAX + 32], rules_from[] = "- rules/", rules_to[PATH_MAX + 16];
    snprintf(src, sizeof src, "%s/prometheus.yml", dash);
    snprintf(rules_to, sizeof rules_to, "- %s/rules/", dash);
    FILE *in = fopen(src, "re");
    if (!in) {
        fprintf(stderr, "leakscope stack: cannot read %s: %s (see --dashboards)\n", src, strerror(errno));
        return -1;
    }
    FILE *o = fopen(out, "we");
    if (!o) {
        fprintf(stderr, "leakscope stack: cannot write %s: %s\n", out, strerror(errno));
        fclose(in);
        return -1;
    }
    char line[8192];
    size_t targets = 0, crawlers = 0, rules = 0;
    while (fgets(line, sizeof line, in)) {
        targets += replace_all(line, sizeof line, CONFIG_TARGET, exporter);
        if (crawler) crawlers += replace_all(line, sizeof line, CONFIG_CRAWLER, crawler);
        rules += replace_all(line, sizeof line, rules_from, rules_to);
        const char *key = line + strspn(line, " ");
        if (interval && (strncmp(key, "scrape_interval:", 16) == 0 || strncmp(key, "evaluation_interval:", 20) == 0))
            snprintf(strchr(line, ':') + 1, sizeof line - (size_t)(strchr(line, ':') + 1 - line), " %s\n", interval);
        fputs(line, o);
    }
    int bad = ferror(in) || fclose(o) != 0;
    fclose(in);
    if (bad || targets != 1 || rules == 0 || (crawler && crawlers != 1)) {
        fprintf(stderr, "leakscope stack: %s: expected one target %s, one %s and rule_files under rules/%s\n",
                src, CONFIG_TARGET, CONFIG_CRAWLER, bad ? " (read or write error)" : "");
        return -1;
    }
    return 0;
}

/* Forks argv[0] (a path, or a name looked up in PATH) in its own process
 * group, stderr (and stdout) to log if given. Returns the pid, or -1. */
static pid_t spawn(char *const argv[], const char *log) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) dup2(devnull, 0);
    if (log) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
    }
    execvp(argv[0], argv);
    fprintf(stderr, "leakscope stack: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Prints the last lines of a child's log, to explain why it stopped. */
static void show_log_tail(const char *name, const char *log) {
    FILE *f = log ? fopen(log, "re") : NULL;
    if (!f) return;
    char lines[8][1024];
    size_t n = 0;
    while (fgets(lines[n % 8], sizeof lines[0], f)) n++;
    fclose(f);
    fprintf(stderr, "leakscope stack: last lines of %s's log:\n", name);
    for (size_t i = n > 8 ? n - 8 : 0; i < n; i++) fprintf(stderr, "  %s", lines[i % 8]);
}

/* Reaps a child that exited; returns 1 if c did. */
static int reaped(struct child *c) {
    int st;
    if (c->pid <= 0 || waitpid(c->pid, &st, WNOHANG) != c->pid) return 0;
    if (WIFSIGNALED(st))
        fprintf(stderr, "leakscope stack: %s (pid %d) killed by signal %d\n", c->name, (int)c->pid, WTERMSIG(st));
    else
        fprintf(stderr, "leakscope stack: %s (pid %d) exited with status %d\n", c->name, (int)c->pid,
                WEXITSTATUS(st));
    c->pid = 0;
    return 1;
}

/* SIGTERM, then SIGKILL after STOP_TIMEOUT_S. */
static void stop_child(struct child *c) {
    if (c->pid <= 0) return;
    kill(c->pid, SIGTERM);
    double deadline = mono_s() + STOP_TIMEOUT_S;
    while (mono_s() < deadline) {
        int st;
        if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
            c->pid = 0;
            return;
        }
        poll(NULL, 0, 50);
    }
    fprintf(stderr, "leakscope stack: %s did not stop in %.0f s, killing it\n", c->name, STOP_TIMEOUT_S);
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
    c->pid = 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Waits for a pending SIGINT/SIGTERM for up to ms; returns the signal or 0. */
static int wait_signal(const sigset_t *set, int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    int sig = sigtimedwait(set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

int cmd_stack(int argc, char **argv) {
    const char *dir_opt = NULL, *listen_opt = NULL, *prom_opt = NULL, *interval = NULL, *idle_after = NULL;
    const char *crawler = NULL;
    const char *dash_opt = getenv("LEAKSCOPE_DASHBOARDS");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (i + 1 < argc && strcmp(a, "--dir") == 0) dir_opt = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--listen") == 0) listen_opt = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--prometheus-listen") == 0) prom_opt = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--dashboards") == 0) dash_opt = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--scrape-interval") == 0) interval = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--idle-after") == 0) idle_after = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--crawler") == 0) crawler = argv[++i];
        else {
            fprintf(stderr, "leakscope stack: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (interval && (strspn(interval, "0123456789smh") != strlen(interval) || !*interval ||
                     !strchr("0123456789", interval[0]))) {
        fprintf(stderr, "leakscope stack: --scrape-interval wants a duration like 15s or 1m, got '%s'\n", interval);
        return 2;
    }

    char dir[512], dash[PATH_MAX], exe[PATH_MAX];
    if (segdir_resolve(dir_opt, dir, sizeof dir) != 0) return 2;
    if (!realpath(dash_opt ? dash_opt : LKS_DASHBOARDS_DIR, dash)) {
        fprintf(stderr, "leakscope stack: dashboards folder '%s': %s (use --dashboards DIR)\n",
                dash_opt ? dash_opt : LKS_DASHBOARDS_DIR, strerror(errno));
        return 2;
    }
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (el <= 0) {
        fprintf(stderr, "leakscope stack: cannot find the leakscope executable: %s\n", strerror(errno));
        return 2;
    }
    exe[el] = 0;

    char serve_host[64] = "127.0.0.1", prom_host[64] = "127.0.0.1";
    int serve_port = 0, prom_port = 0;
    if (listen_opt && parse_addr(listen_opt, serve_host, sizeof serve_host, &serve_port) != 0) {
        fprintf(stderr, "leakscope stack: --listen wants IPV4:PORT, got '%s'\n", listen_opt);
        return 2;
    }
    char crawler_host[64];
    int crawler_port;
    if (crawler && parse_addr(crawler, crawler_host, sizeof crawler_host, &crawler_port) != 0) {
        fprintf(stderr, "leakscope stack: --crawler wants IPV4:PORT, got '%s'\n", crawler);
        return 2;
    }
    if (prom_opt && parse_addr(prom_opt, prom_host, sizeof prom_host, &prom_port) != 0) {
        fprintf(stderr, "leakscope stack: --prometheus-listen wants IPV4:PORT, got '%s'\n", prom_opt);
        return 2;
    }
    if (!serve_port) serve_port = pick_port(EXPORTER_DEFAULT_PORT);
    if (!prom_port) prom_port = pick_port(PROMETHEUS_DEFAULT_PORT);
    if (serve_port < 0 || prom_port < 0 || serve_port == prom_port) {
        fprintf(stderr, "leakscope stack: no free loopback port\n");
        return 2;
    }

    char tmp[] = "/tmp/leakscope-stack-XXXXXX";
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "leakscope stack: cannot create a temporary directory: %s\n", strerror(errno));
        return 2;
    }
    char config[PATH_MAX], data[PATH_MAX], prom_log[PATH_MAX], serve_addr[128], prom_addr[128];
    snprintf(config, sizeof config, "%s/prometheus.yml", tmp);
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(prom_log, sizeof prom_log, "%s/prometheus.log", tmp);
    snprintf(serve_addr, sizeof serve_addr, "%s:%d", serve_host, serve_port);
    snprintf(prom_addr, sizeof prom_addr, "%s:%d", prom_host, prom_port);

    /* SIGINT/SIGTERM are taken with sigtimedwait; children unblock them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);

    int status = 1, sig = 0;
    struct child serve = {"leakscope serve", 0, NULL}, prom = {"prometheus", 0, prom_log};
    if (write_config(dash, config, serve_addr, crawler, interval) != 0) goto out;

    char *serve_argv[] = {exe, "serve", "--listen", serve_addr, "--dir", dir, NULL, NULL, NULL};
    if (idle_after) {
        serve_argv[6] = "--idle-after";
        serve_argv[7] = (char *)idle_after;
    }
    char a_config[PATH_MAX + 16], a_data[PATH_MAX + 32], a_listen[160];
    snprintf(a_config, sizeof a_config, "--config.file=%s", config);
    snprintf(a_data, sizeof a_data, "--storage.tsdb.path=%s", data);
    snprintf(a_listen, sizeof a_listen, "--web.listen-address=%s", prom_addr);
    char *prom_argv[] = {"prometheus", a_config, a_data, a_listen, "--storage.tsdb.retention.time=1d", NULL};

    serve.pid = spawn(serve_argv, NULL);
    prom.pid = spawn(prom_argv, prom_log);
    if (serve.pid < 0 || prom.pid < 0) {
        fprintf(stderr, "leakscope stack: fork: %s\n", strerror(errno));
        goto out;
    }

    /* Ready when the exporter answers /metrics and Prometheus /-/ready. */
    int serve_ready = 0, prom_ready = 0;
    double deadline = mono_s() + START_TIMEOUT_S;
    while (!(serve_ready && prom_ready)) {
        if (reaped(&serve) || reaped(&prom)) {
            show_log_tail("prometheus", prom.pid ? NULL : prom_log);
            goto out;
        }
        if (mono_s() > deadline) {
            fprintf(stderr, "leakscope stack: %s not ready after %.0f s\n", serve_ready ? "prometheus" : "leakscope serve",
                    START_TIMEOUT_S);
            show_log_tail("prometheus", prom_log);
            goto out;
        }
        if ((sig = wait_signal(&set, 100))) {
            status = 0;
            goto out;
        }
        /* A first scrape reads and symbolizes every segment: it may be slow. */
        if (!serve_ready) serve_ready = http_get(serve_host, serve_port, "/metrics", 30, NULL, 0) == 200;
        if (!prom_ready) prom_ready = http_get(prom_host, prom_port, "/-/ready", 5, NULL, 0) == 200;
    }
    static char rules[65536];
    size_t alerts = 0;
    if (http_get(prom_host, prom_port, "/api/v1/rules?type=alert", 10, rules, sizeof rules) == 200)
        alerts = count_substr(rules, "\"type\":\"alerting\"");

    printf("leakscope stack: running; Ctrl-C stops it\n"
           "  exporter    http://%s/metrics  (segments in %s)\n"
           "  prometheus  http://%s  (%zu alert rules from %s/rules)\n"
           "  alerts      http://%s/alerts\n"
           "  crawler     http://%s/metrics  (scraped while leakscope-crawler runs with --metrics-port)\n"
           "  grafana     provision %s/provisioning with LEAKSCOPE_DASHBOARDS=%s\n"
           "              (datasource url http://%s; see README, \"Dashboards and alerts\")\n",
           serve_addr, dir, prom_addr, alerts, dash, prom_addr, crawler ? crawler : CONFIG_CRAWLER, dash, dash,
           prom_addr);
    if (prom_port != PROMETHEUS_DEFAULT_PORT)
        printf("  note        Prometheus is not on port %d: set the datasource url in "
               "provisioning/datasources/leakscope.yml to http://%s\n",
               PROMETHEUS_DEFAULT_PORT, prom_addr);
    fflush(stdout);

    /* Runs until a signal, or until a child stops on its own (an error). */
    while (!(sig = wait_signal(&set, 200))) {
        if (reaped(&serve) || reaped(&prom)) {
            show_log_tail("prometheus", prom.pid ? NULL : prom_log);
            goto out;
        }
    }
    status = 0;
out:
    if (sig) fprintf(stderr, "leakscope stack: %s, stopping\n", strsignal(sig));
    stop_child(&prom);
    stop_child(&serve);
    nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (status == 0) fprintf(stderr, "leakscope stack: stopped\n");
    return status;
}

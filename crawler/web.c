/* web.c - leakscope-web, the synthetic web's HTTP server.
 *
 * libmicrohttpd with a thread per connection: the crawler keeps its
 * connections alive, so there are only as many threads as it has
 * connections, a slow page delays only its own connection, and the code
 * stays a plain request -> response function (webgen.c). nginx over
 * generated files was the alternative; it cannot be slow on purpose or
 * compute pages, and the files of a large web would fill the disk. */
#include "webgen.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

static struct webgen web;
static int slow_ms = 1500;
static int access_log_fd = -1;
static volatile sig_atomic_t web_stop;

static void on_signal(int sig) {
    (void)sig;
    web_stop = 1;
}

/* One line per request, written whole so threads never interleave. */
static void log_access(const char *host, const char *path, int status) {
    if (access_log_fd < 0) return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char line[1024];
    int n = snprintf(line, sizeof(line), "%lld.%06ld %s %s %d\n", (long long)tv.tv_sec, (long)tv.tv_usec,
                     host ? host : "-", path, status);
    if (n > 0 && (size_t)n < sizeof(line)) {
        ssize_t w = write(access_log_fd, line, (size_t)n);
        (void)w;
    }
}

struct stream {
    uint64_t seed;
    int html;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    struct stream *s = cls;
    webgen_stream(s->seed, s->html, pos, buf, max);
    return (ssize_t)max;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state) {
    (void)cls; (void)version; (void)upload; (void)upload_size;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) return MHD_NO;
    /* Answer on the second call: a response queued on the first one makes
     * libmicrohttpd close the connection instead of keeping it alive. */
    static int headers_seen;
    if (!*state) {
        *state = &headers_seen;
        return MHD_YES;
    }
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    struct webgen_response r;
    webgen_respond(&web, host, url, &r);
    log_access(host, url, r.status);
    if (r.slow) usleep((useconds_t)slow_ms * 1000);
    struct MHD_Response *resp;
    if (r.streamed) {
        struct stream *s = malloc(sizeof(*s));
        if (!s) return MHD_NO;
        s->seed = r.stream_seed;
        s->html = strncmp(r.content_type, "text/html", 9) == 0;
        resp = MHD_create_response_from_callback(r.len, 65536, stream_read, s, free);
    } else {
        resp = MHD_create_response_from_buffer(r.len, r.body ? r.body : (char *)"", r.body ? MHD_RESPMEM_MUST_FREE
                                                                                          : MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) return MHD_NO;
    if (r.content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type);
    if (r.location[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r.location);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void usage(FILE *out) {
    fprintf(out, "usage: leakscope-web --port P --hosts N --pages M [--seed S] [--slow-ms MS]\n"
                 "         [--crawl-delay S] [--access-log FILE] [--port-file FILE] [--bind ADDR]\n"
                 "       leakscope-web --hosts N --pages M [--seed S] [--crawl-delay S] --dump-graph\n");
}

int main(int argc, char **argv) {
    int port = -1, dump = 0;
    const char *access_log = NULL, *port_file = NULL, *bind_addr = "127.0.0.1";
    web.hosts = 10;
    web.pages = 100;
    web.seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--dump-graph") == 0) { dump = 1; continue; }
        if (strcmp(a, "--help") == 0) { usage(stdout); return 0; }
        if (!v) { usage(stderr); return 1; }
        if (strcmp(a, "--port") == 0) port = atoi(v);
        else if (strcmp(a, "--hosts") == 0) web.hosts = (unsigned)atoi(v);
        else if (strcmp(a, "--pages") == 0) web.pages = (unsigned)atoi(v);
        else if (strcmp(a, "--seed") == 0) web.seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--slow-ms") == 0) slow_ms = atoi(v);
        else if (strcmp(a, "--crawl-delay") == 0) web.crawl_delay = atof(v);
        else if (strcmp(a, "--access-log") == 0) access_log = v;
        else if (strcmp(a, "--port-file") == 0) port_file = v;
        else if (strcmp(a, "--bind") == 0) bind_addr = v;
        else { usage(stderr); return 1; }
        i++;
    }
    if (web.hosts < 1 || web.pages < 1) { usage(stderr); return 1; }
    if (dump) {
        webgen_dump(&web, stdout);
        return 0;
    }
    if (port < 0 || port > 65535) { usage(stderr); return 1; }
    if (access_log) {
        access_log_fd = open(access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (access_log_fd < 0) {
            fprintf(stderr, "leakscope-web: cannot open %s: %m\n", access_log);
            return 1;
        }
    }
    /* One descriptor per crawler connection: use the whole hard limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, bind_addr, &addr.sin_addr) != 1) {
        fprintf(stderr, "leakscope-web: bad --bind address %s\n", bind_addr);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, (uint16_t)port, NULL, NULL,
        answer, NULL, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)50000,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024),
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "leakscope-web: cannot listen on %s:%d\n", bind_addr, port);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int bound = info ? info->port : port;
    if (port_file) {
        FILE *f = fopen(port_file, "w");
        if (f) {
            fprintf(f, "%d\n", bound);
            fclose(f);
        }
    }
    fprintf(stderr, "leakscope-web: %u hosts x %u pages on http://%s:%d/\n", web.hosts, web.pages, bind_addr, bound);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!web_stop) pause();
    MHD_stop_daemon(d);
    return 0;
}

/* metrics.c - Prometheus endpoint. The main loop publishes a copy of its
 * counters under a mutex a few times a second; the server thread only
 * reads that copy, so the hot path needs no atomics. */
#include "metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static struct MHD_Daemon *metrics_daemon;
static pthread_mutex_t snapshot_lock = PTHREAD_MUTEX_INITIALIZER;
static struct crawl_stats snapshot;

static enum MHD_Result metrics_answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                      const char *version, const char *upload, size_t *upload_size, void **state) {
    (void)cls; (void)version; (void)upload; (void)upload_size;
    if (strcmp(method, "GET") != 0) return MHD_NO;
    static int headers_seen; /* answer on the second call, keeping the connection alive */
    if (!*state) {
        *state = &headers_seen;
        return MHD_YES;
    }
    struct MHD_Response *resp;
    unsigned status;
    if (strcmp(url, "/metrics") == 0) {
        size_t cap = 16384;
        char *body = malloc(cap);
        if (!body) return MHD_NO;
        pthread_mutex_lock(&snapshot_lock);
        size_t len = stats_prometheus(&snapshot, body, cap);
        pthread_mutex_unlock(&snapshot_lock);
        resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
        status = MHD_HTTP_OK;
    } else {
        static char not_found[] = "see /metrics\n";
        resp = MHD_create_response_from_buffer(sizeof(not_found) - 1, not_found, MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_NOT_FOUND;
    }
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

int metrics_start(int port) {
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    metrics_daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, (uint16_t)port, NULL, NULL,
                                      metrics_answer, NULL, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_END);
    return metrics_daemon ? 0 : -1;
}

void metrics_publish(const struct crawl_stats *s) {
    pthread_mutex_lock(&snapshot_lock);
    snapshot = *s;
    pthread_mutex_unlock(&snapshot_lock);
}

void metrics_stop(void) {
    if (metrics_daemon) MHD_stop_daemon(metrics_daemon);
    metrics_daemon = NULL;
}

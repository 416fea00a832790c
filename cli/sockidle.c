/* sockidle.c - the idle-socket set from NETLINK_SOCK_DIAG (see sockidle.h).
 * The idle inodes go into an open-addressed hash set, so a lookup per
 * descriptor costs O(1) however many sockets the machine has. */
#include "sockidle.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "segment.h"

#define TCP_ESTABLISHED_STATE 1

struct sockidle {
    uint64_t *slots; /* 0 = empty; inodes are never 0 */
    size_t cap;      /* power of two */
    size_t idle;
    size_t established;
};

static size_t slot_of(uint64_t inode, size_t cap) {
    return (size_t)((inode * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static int set_add(struct sockidle *s, uint64_t inode) {
    if ((s->idle + 1) * 2 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 256;
        uint64_t *n = calloc(ncap, sizeof *n);
        if (!n) return -1;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slots[i]) continue;
            size_t j = slot_of(s->slots[i], ncap);
            while (n[j]) j = (j + 1) & (ncap - 1);
            n[j] = s->slots[i];
        }
        free(s->slots);
        s->slots = n;
        s->cap = ncap;
    }
    size_t j = slot_of(inode, s->cap);
    while (s->slots[j]) {
        if (s->slots[j] == inode) return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = inode;
    s->idle++;
    return 0;
}

int sockidle_is_idle(const struct sockidle *s, uint64_t inode) {
    if (!s || !s->cap || !inode) return 0;
    size_t j = slot_of(inode, s->cap);
    while (s->slots[j]) {
        if (s->slots[j] == inode) return 1;
        j = (j + 1) & (s->cap - 1);
    }
    return 0;
}

size_t sockidle_established(const struct sockidle *s) { return s ? s->established : 0; }
size_t sockidle_idle(const struct sockidle *s) { return s ? s->idle : 0; }

void sockidle_free(struct sockidle *s) {
    if (!s) return;
    free(s->slots);
    free(s);
}

/* Reads one dump (one address family) into s. Returns 0 or -1 (err set). */
static int dump_family(int nl, int family, uint32_t idle_ms, struct sockidle *s, char *err,
                       size_t errlen) {
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg;
    memset(&msg, 0, sizeof msg);
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.nlh.nlmsg_seq = (uint32_t)family;
    msg.req.sdiag_family = (uint8_t)family;
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_states = 1u << TCP_ESTABLISHED_STATE;
    msg.req.idiag_ext = 1u << (INET_DIAG_INFO - 1);
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(nl, &msg, sizeof msg, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        lks_set_err(err, errlen, "sock_diag request: %s", strerror(errno));
        return -1;
    }
    char buf[32768] __attribute__((aligned(8)));
    for (;;) {
        ssize_t n = recv(nl, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            lks_set_err(err, errlen, "sock_diag reply: %s", strerror(errno));
            return -1;
        }
        if (n == 0) return 0;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
             h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE) return 0;
            if (h->nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr *e = NLMSG_DATA(h);
                if (h->nlmsg_len < NLMSG_LENGTH(sizeof *e)) {
                    lks_set_err(err, errlen, "sock_diag: short error reply");
                    return -1;
                }
                lks_set_err(err, errlen, "sock_diag: %s", strerror(-e->error));
                return -1;
            }
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
                h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
                continue;
            struct inet_diag_msg *m = NLMSG_DATA(h);
            s->established++;
            int attr_len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof *m);
            for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, attr_len);
                 a = RTA_NEXT(a, attr_len)) {
                if (a->rta_type != INET_DIAG_INFO) continue;
                /* Older kernels send a shorter tcp_info: require the fields. */
                size_t need = offsetof(struct tcp_info, tcpi_last_data_recv) + sizeof(uint32_t);
                if (RTA_PAYLOAD(a) < need) continue;
                struct tcp_info ti;
                memset(&ti, 0, sizeof ti);
                memcpy(&ti, RTA_DATA(a), RTA_PAYLOAD(a) < sizeof ti ? RTA_PAYLOAD(a) : sizeof ti);
                if (ti.tcpi_last_data_sent >= idle_ms && ti.tcpi_last_data_recv >= idle_ms &&
                    set_add(s, m->idiag_inode) != 0) {
                    lks_set_err(err, errlen, "sock_diag: out of memory");
                    return -1;
                }
            }
        }
    }
}

struct sockidle *sockidle_scan(uint32_t idle_ms, char *err, size_t errlen) {
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0) {
        lks_set_err(err, errlen, "sock_diag socket: %s", strerror(errno));
        return NULL;
    }
    struct sockidle *s = calloc(1, sizeof *s);
    if (!s || dump_family(nl, AF_INET, idle_ms, s, err, errlen) != 0 ||
        dump_family(nl, AF_INET6, idle_ms, s, err, errlen) != 0) {
        if (!s) lks_set_err(err, errlen, "sock_diag: out of memory");
        sockidle_free(s);
        close(nl);
        return NULL;
    }
    close(nl);
    return s;
}

/* probes.c - attach and detach as one step each: the checks that give the
 * user one clear reason when tracing is impossible here, then the probes,
 * and on any failure everything already loaded is unloaded again.
 */
#define _GNU_SOURCE
#include "probes.h"

#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* libbpf's own messages would bury ours; keep the last warning for -v. */
static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap) {
    if (level == LIBBPF_WARN && getenv("LEAKSCOPE_BPF_DEBUG")) return vfprintf(stderr, fmt, ap);
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) in the effective set. */
static int have_caps(void) {
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) != 0) return 0;
    uint64_t eff = (uint64_t)data[0].effective | ((uint64_t)data[1].effective << 32);
    int admin = (eff >> CAP_SYS_ADMIN) & 1;
    int bpf = (eff >> 39) & 1, perfmon = (eff >> 38) & 1; /* CAP_BPF, CAP_PERFMON */
    int ptrace = (eff >> CAP_SYS_PTRACE) & 1;
    return (admin || (bpf && perfmon)) && ptrace;
}

static int check_environment(const struct probes_opts *o, char *err, size_t errlen) {
    if (!have_caps()) {
        lks_set_err(err, errlen,
                    "attach needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) and CAP_SYS_PTRACE; "
                    "run it as root (sudo leakscope attach %d)",
                    (int)o->pid);
        return -1;
    }
    if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
        lks_set_err(err, errlen,
                    "this kernel has no BTF (/sys/kernel/btf/vmlinux): the eBPF probes need "
                    "CONFIG_DEBUG_INFO_BTF; use `leakscope run` instead");
        return -1;
    }
    if (kill(o->pid, 0) != 0) {
        lks_set_err(err, errlen, "pid %d: %s", (int)o->pid,
                    errno == ESRCH ? "no such process" : strerror(errno));
        return -1;
    }
    char maps[64];
    snprintf(maps, sizeof maps, "/proc/%d/maps", (int)o->pid);
    FILE *f = fopen(maps, "r");
    if (!f) {
        lks_set_err(err, errlen, "pid %d is not ours to trace: cannot read %s: %s", (int)o->pid,
                    maps, strerror(errno));
        return -1;
    }
    int c = fgetc(f);
    fclose(f);
    if (c == EOF) {
        lks_set_err(err, errlen, "pid %d has no user address space (a kernel thread?)",
                    (int)o->pid);
        return -1;
    }
    return 0;
}

int probes_attach(struct probes *p, const struct probes_opts *o, int *code, char *err,
                  size_t errlen) {
    memset(p, 0, sizeof *p);
    p->opts = *o;
    *code = 2;
    double t0 = now_s();
    libbpf_set_print(quiet_print);
    if (check_environment(o, err, errlen) != 0) return -1;
    uint32_t features = (o->want_fd ? LKS_FEATURE_FD : 0) | (o->want_heap ? LKS_FEATURE_HEAP : 0);
    if (target_open(&p->targets[0], o->pid, o->dir, o->session, o->rules, features, err,
                    errlen) != 0)
        return -1;
    p->ntargets = 1;
    if ((o->want_heap && heapprobe_attach(p, err, errlen) != 0) ||
        (o->want_fd && fdprobe_attach(p, err, errlen) != 0)) {
        int e = errno;
        char path[sizeof p->targets[0].path];
        memcpy(path, p->targets[0].path, sizeof path);
        probes_detach(p);
        unlink(path);
        *code = (e == EPERM || e == EACCES || e == ENOENT || e == ESRCH) ? 2 : 1;
        return -1;
    }
    if (o->want_heap) probes_sync_heap(p);
    p->attach_s = now_s() - t0;
    return 0;
}

void probes_detach(struct probes *p) {
    double t0 = now_s();
    /* Heap first: its final sync interns sites while fd targets are open. */
    heapprobe_detach(p);
    fdprobe_detach(p);
    for (int i = 0; i < p->ntargets; i++) target_close(&p->targets[i]);
    p->detach_s = now_s() - t0;
}

struct lks_target *probes_target(struct probes *p, pid_t pid) {
    for (int i = 0; i < p->ntargets; i++)
        if (p->targets[i].pid == pid) return &p->targets[i];
    return NULL;
}

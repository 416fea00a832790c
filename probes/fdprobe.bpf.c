// SPDX-License-Identifier: GPL-2.0
/* fdprobe.bpf.c - descriptor creation and close in the traced processes,
 * from the raw syscall tracepoints (tp_btf sys_enter/sys_exit).
 *
 * Why these hooks: on this kernel fentry programs are refused (EPERM under
 * lockdown) and kprobes are not built in, so fd_install/file_close_fd cannot
 * be hooked; the BTF raw tracepoints are the cheapest hooks left and see every
 * syscall with its result. The filter (tgid in `targets`) is the first thing
 * both programs do, so untraced processes pay one hash lookup per syscall.
 * Arguments are kept per thread from entry to exit; at exit a successful
 * creation sends the user registers and the top of the user stack for DWARF
 * unwinding in the loader (frame pointers are usually absent in user code).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "fdprobe.h"

char LICENSE[] SEC("license") = "GPL";

/* enum lks_fd_kind values (core/segment.h), repeated: vmlinux.h and libc
 * headers do not mix. */
#define K_UNKNOWN 0
#define K_FILE 1
#define K_PIPE 3
#define K_SOCKET 4
#define K_UNIX 5
#define K_OTHER_SOCKET 6
#define K_EPOLL 7
#define K_EVENTFD 8
#define K_TIMERFD 9
#define K_SIGNALFD 10
#define K_INOTIFY 11
#define K_MEMFD 12

struct pending {
    long nr;
    unsigned long args[6];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, u32);
    __type(value, u32);
} targets SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, u32);
    __type(value, struct pending);
} pending SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 16 << 20);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, FDP_STAT_COUNT);
    __type(key, u32);
    __type(value, u64);
} fdp_stats SEC(".maps");

static __always_inline void stat_inc(u32 which) {
    u64 *v = bpf_map_lookup_elem(&fdp_stats, &which);
    if (v) (*v)++;
}

static __always_inline int traced(void) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    return bpf_map_lookup_elem(&targets, &tgid) != NULL;
}

/* Syscalls that create, close or label descriptors (x86-64 numbers). */
static __always_inline int interesting(long nr) {
    switch (nr) {
    case 2: case 3: case 22: case 32: case 33: case 41: case 42: case 43: case 49: case 53:
    case 59: case 72: case 85: case 213: case 253: case 257: case 282: case 283: case 284:
    case 288: case 289: case 290: case 291: case 292: case 293: case 294: case 298: case 300:
    case 304: case 319: case 322: case 323: case 425: case 434: case 436: case 437:
        return 1;
    }
    return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(fdp_sys_enter, struct pt_regs *regs, long id) {
    if (!interesting(id) || !traced()) return 0;
    struct pending p = {.nr = id};
    p.args[0] = BPF_CORE_READ(regs, di);
    p.args[1] = BPF_CORE_READ(regs, si);
    p.args[2] = BPF_CORE_READ(regs, dx);
    p.args[3] = BPF_CORE_READ(regs, r10);
    p.args[4] = BPF_CORE_READ(regs, r8);
    p.args[5] = BPF_CORE_READ(regs, r9);
    u32 tid = (u32)bpf_get_current_pid_tgid();
    bpf_map_update_elem(&pending, &tid, &p, BPF_ANY);
    return 0;
}

/* i_mode of the file at fd in the current task's table. */
static __always_inline unsigned int fd_mode(int fd) {
    struct task_struct *task = bpf_get_current_task_btf();
    struct file **fds = BPF_CORE_READ(task, files, fdt, fd);
    unsigned int max = BPF_CORE_READ(task, files, fdt, max_fds);
    struct file *f = NULL;
    if (fd < 0 || (unsigned int)fd >= max) return 0;
    bpf_probe_read_kernel(&f, sizeof f, &fds[fd]);
    if (!f) return 0;
    return BPF_CORE_READ(f, f_inode, i_mode);
}

static __always_inline void fill_header(struct fdp_event *e, unsigned int type, long nr) {
    u64 id = bpf_get_current_pid_tgid();
    e->type = type;
    e->tgid = id >> 32;
    e->tid = (u32)id;
    e->fd = e->fd2 = -1;
    e->err = 0;
    e->kind = K_UNKNOWN;
    e->mode = 0;
    e->port = 0;
    e->listener = 0;
    e->nr = nr;
    e->stack_len = 0;
    e->ts_ns = bpf_ktime_get_ns();
    e->path[0] = 0;
}

/* A small event: no registers, no stack. */
static __always_inline void send_small(unsigned int type, long nr, int fd, int fd2,
                                       unsigned int port, unsigned int listener) {
    struct fdp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        stat_inc(FDP_STAT_LOST);
        return;
    }
    fill_header(e, type, nr);
    e->fd = fd;
    e->fd2 = fd2;
    e->port = port;
    e->listener = listener;
    __builtin_memset(e->regs, 0, sizeof(e->regs));
    bpf_ringbuf_submit(e, 0);
}

/* A successful exec, with the new program's name and which descriptors
 * survived it: at the syscall's exit the new program has not run yet, so
 * the open bitmap is exactly what close-on-exec left (the loader reading
 * /proc later would see a program that may have moved on, or exited). */
static __always_inline void send_exec(long nr) {
    struct fdp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e) + FDP_EXEC_FDS / 8, 0);
    if (!e) {
        stat_inc(FDP_STAT_LOST);
        return;
    }
    fill_header(e, FDP_EXEC, nr);
    bpf_get_current_comm(e->path, 16);
    __builtin_memset(e->regs, 0, sizeof(e->regs));
    struct task_struct *task = bpf_get_current_task_btf();
    unsigned long *open = BPF_CORE_READ(task, files, fdt, open_fds);
    unsigned int max = BPF_CORE_READ(task, files, fdt, max_fds);
    /* The bitmap holds max_fds bits (at least 64): read what exists. */
    if (max >= 1024 && bpf_probe_read_kernel(e->stack, 128, open) == 0) e->stack_len = 128;
    else if (max >= 512 && bpf_probe_read_kernel(e->stack, 64, open) == 0) e->stack_len = 64;
    else if (max >= 256 && bpf_probe_read_kernel(e->stack, 32, open) == 0) e->stack_len = 32;
    else if (max >= 128 && bpf_probe_read_kernel(e->stack, 16, open) == 0) e->stack_len = 16;
    else if (bpf_probe_read_kernel(e->stack, 8, open) == 0) e->stack_len = 8;
    bpf_ringbuf_submit(e, 0);
}

/* Copies the user registers and as much of the top of the user stack as is
 * mapped (the main thread's stack may end a few KiB above sp). */
static __always_inline void capture_stack(struct fdp_event *e) {
    struct task_struct *task = bpf_get_current_task_btf();
    struct pt_regs *r = (struct pt_regs *)bpf_task_pt_regs(task);
    e->regs[0] = BPF_CORE_READ(r, ax);
    e->regs[1] = BPF_CORE_READ(r, dx);
    e->regs[2] = BPF_CORE_READ(r, cx);
    e->regs[3] = BPF_CORE_READ(r, bx);
    e->regs[4] = BPF_CORE_READ(r, si);
    e->regs[5] = BPF_CORE_READ(r, di);
    e->regs[6] = BPF_CORE_READ(r, bp);
    e->regs[7] = BPF_CORE_READ(r, sp);
    e->regs[8] = BPF_CORE_READ(r, r8);
    e->regs[9] = BPF_CORE_READ(r, r9);
    e->regs[10] = BPF_CORE_READ(r, r10);
    e->regs[11] = BPF_CORE_READ(r, r11);
    e->regs[12] = BPF_CORE_READ(r, r12);
    e->regs[13] = BPF_CORE_READ(r, r13);
    e->regs[14] = BPF_CORE_READ(r, r14);
    e->regs[15] = BPF_CORE_READ(r, r15);
    e->regs[16] = BPF_CORE_READ(r, ip);
    const void *sp = (const void *)e->regs[7];
    if (bpf_probe_read_user(e->stack, FDP_STACK_MAX, sp) == 0) e->stack_len = FDP_STACK_MAX;
    else if (bpf_probe_read_user(e->stack, 4096, sp) == 0) e->stack_len = 4096;
    else if (bpf_probe_read_user(e->stack, 2048, sp) == 0) e->stack_len = 2048;
    else if (bpf_probe_read_user(e->stack, 1024, sp) == 0) e->stack_len = 1024;
    else if (bpf_probe_read_user(e->stack, 512, sp) == 0) e->stack_len = 512;
    else stat_inc(FDP_STAT_NOSTACK);
}

/* A creation (or its failure), with registers and stack. */
static __always_inline struct fdp_event *begin_create(unsigned int type, long nr) {
    struct fdp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e) + FDP_STACK_MAX, 0);
    if (!e) {
        stat_inc(FDP_STAT_LOST);
        return NULL;
    }
    fill_header(e, type, nr);
    capture_stack(e);
    return e;
}

static __always_inline int sockaddr_port(unsigned long uaddr) {
    struct {
        u16 family;
        u16 port;
    } sa = {};
    if (!uaddr || bpf_probe_read_user(&sa, sizeof sa, (void *)uaddr)) return 0;
    if (sa.family != 2 && sa.family != 10) return 0; /* AF_INET, AF_INET6 */
    return ((sa.port & 0xff) << 8) | (sa.port >> 8);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(fdp_sys_exit, struct pt_regs *regs, long ret) {
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct pending *pp = bpf_map_lookup_elem(&pending, &tid);
    if (!pp) return 0;
    struct pending p = *pp;
    bpf_map_delete_elem(&pending, &tid);
    long nr = p.nr;

    switch (nr) {
    case 3: /* close: the descriptor is gone even on EINTR/EIO */
        if (ret == 0 || ret == -4 || ret == -5) send_small(FDP_CLOSE, nr, (int)p.args[0], -1, 0, 0);
        return 0;
    case 436: /* close_range(first, last, flags): CLOSE_RANGE_CLOEXEC closes nothing */
        if (ret == 0 && !(p.args[2] & 4))
            send_small(FDP_CLOSE_RANGE, nr, (int)p.args[0],
                       p.args[1] > 0x7fffffff ? 0x7fffffff : (int)p.args[1], 0, 0);
        return 0;
    case 42: /* connect */
        if (ret == 0 || ret == -115)
            send_small(FDP_PORT, nr, (int)p.args[0], -1, sockaddr_port(p.args[1]), 0);
        return 0;
    case 49: /* bind */
        if (ret == 0) send_small(FDP_PORT, nr, (int)p.args[0], -1, sockaddr_port(p.args[1]), 1);
        return 0;
    case 59:
    case 322: /* execve, execveat */
        if (ret == 0) send_exec(nr);
        return 0;
    case 72: /* fcntl: only F_DUPFD / F_DUPFD_CLOEXEC create */
        if (p.args[1] != 0 && p.args[1] != 1030) return 0;
        break;
    case 282:
    case 289: /* signalfd on an existing descriptor modifies it */
        if ((long)p.args[0] != -1) return 0;
        break;
    }

    unsigned int type = FDP_CREATE;
    if (nr == 32 || nr == 33 || nr == 292 || nr == 72) type = FDP_DUP;
    else if (nr == 43 || nr == 288) type = FDP_ACCEPT;
    /* dup2(fd, fd) returns fd and changes nothing. */
    if (nr == 33 && ret >= 0 && p.args[0] == p.args[1]) return 0;

    struct fdp_event *e = begin_create(type, nr);
    if (!e) return 0;
    if (ret < 0) {
        e->err = (int)-ret;
    } else {
        e->fd = (int)ret;
    }
    if (type == FDP_DUP || type == FDP_ACCEPT) e->fd2 = (int)p.args[0];

    unsigned long path = 0;
    switch (nr) {
    case 2:
    case 85: path = p.args[0]; e->kind = K_FILE; break;          /* open, creat */
    case 257:
    case 437:
    case 304: path = p.args[1]; e->kind = K_FILE; break;         /* openat, openat2, by_handle */
    case 41: /* socket(domain, ...) */
        e->kind = p.args[0] == 1 ? K_UNIX : (p.args[0] == 2 || p.args[0] == 10) ? K_SOCKET
                                                                                : K_OTHER_SOCKET;
        break;
    case 53: /* socketpair(domain, type, proto, int sv[2]) */
    case 22:
    case 293: { /* pipe, pipe2(int fds[2]) */
        int fds[2] = {-1, -1};
        unsigned long arr = nr == 53 ? p.args[3] : p.args[0];
        if (ret == 0 && bpf_probe_read_user(fds, sizeof fds, (void *)arr) == 0) {
            e->fd = fds[0];
            e->fd2 = fds[1];
        }
        e->kind = nr == 53 ? (p.args[0] == 1 ? K_UNIX : K_OTHER_SOCKET) : K_PIPE;
        break;
    }
    case 213:
    case 291: e->kind = K_EPOLL; break;
    case 284:
    case 290: e->kind = K_EVENTFD; break;
    case 283: e->kind = K_TIMERFD; break;
    case 282:
    case 289: e->kind = K_SIGNALFD; break;
    case 253:
    case 294: e->kind = K_INOTIFY; break;
    case 319: e->kind = K_MEMFD; break;
    }
    if (path) bpf_probe_read_user_str(e->path, sizeof e->path, (void *)path);
    if (e->kind == K_FILE && ret >= 0) e->mode = fd_mode((int)ret);
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(fdp_fork, struct task_struct *parent, struct task_struct *child) {
    u32 ptgid = BPF_CORE_READ(parent, tgid);
    u32 cpid = BPF_CORE_READ(child, pid), ctgid = BPF_CORE_READ(child, tgid);
    if (cpid != ctgid || !bpf_map_lookup_elem(&targets, &ptgid)) return 0;
    u32 one = 1;
    bpf_map_update_elem(&targets, &ctgid, &one, BPF_ANY);
    struct fdp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        stat_inc(FDP_STAT_LOST);
        return 0;
    }
    fill_header(e, FDP_FORK, 0);
    e->tgid = ptgid;
    e->fd = ctgid;
    __builtin_memset(e->regs, 0, sizeof(e->regs));
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(fdp_exit, struct task_struct *p) {
    u32 pid = BPF_CORE_READ(p, pid), tgid = BPF_CORE_READ(p, tgid);
    /* The whole group is gone when its last live thread exits. */
    if (!bpf_map_lookup_elem(&targets, &tgid)) return 0;
    if (BPF_CORE_READ(p, signal, live.counter) > 0) return 0;
    bpf_map_delete_elem(&targets, &tgid);
    struct fdp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        stat_inc(FDP_STAT_LOST);
        return 0;
    }
    fill_header(e, FDP_EXIT, 0);
    e->tgid = tgid;
    e->tid = pid;
    __builtin_memset(e->regs, 0, sizeof(e->regs));
    bpf_ringbuf_submit(e, 0);
    return 0;
}

/* fdprobe.h - what the descriptor probe (fdprobe.bpf.c) tells its loader
 * (fdprobe.c). Shared by the BPF side and user space: fixed-size types only.
 *
 * One event per successful or failed descriptor creation (with the user
 * registers and a copy of the top of the user stack, unwound with DWARF by
 * the loader), per close, per port learnt from connect/bind, per exec and
 * per fork of a traced process. Everything else is filtered in the kernel.
 */
#ifndef LKS_FDPROBE_H
#define LKS_FDPROBE_H

#define FDP_STACK_MAX 8192 /* bytes of user stack copied at a creation */
#define FDP_PATH_MAX 256
#define FDP_NREGS 17 /* x86-64 DWARF registers 0..16 (rax .. rip) */
#define FDP_EXEC_FDS 1024 /* descriptors whose open bit an exec event carries */

enum fdp_type {
    FDP_CREATE = 1, /* fd (and fd2 for pairs) created, or failed with err */
    FDP_DUP,        /* fd = copy of fd2; a dup2 target that was open is closed */
    FDP_ACCEPT,     /* fd accepted on listener fd2 */
    FDP_CLOSE,      /* fd closed */
    FDP_CLOSE_RANGE,/* fd .. fd2 closed */
    FDP_PORT,       /* fd connected (or bound: listener = 1) to port */
    FDP_EXEC,       /* the process exec'd: close-on-exec descriptors are gone; path is
                       the new comm, stack[stack_len] which descriptors are left */
    FDP_FORK,       /* a traced process forked child pid fd (a new thread group) */
    FDP_EXIT,       /* the traced process exited (last thread) */
};

/* Kinds the kernel side can tell by the syscall; the loader refines FILE
 * (directory, device) from the mode and path. Values are enum lks_fd_kind. */

struct fdp_event {
    unsigned int type;
    int tgid;
    int tid;
    int fd;
    int fd2;
    int err;             /* errno of a failed creation, else 0 */
    unsigned int kind;   /* enum lks_fd_kind */
    unsigned int mode;   /* i_mode of the new file (open) */
    unsigned int port;
    unsigned int listener;
    unsigned int nr;     /* syscall number */
    unsigned int stack_len; /* bytes valid in stack[] */
    unsigned long long ts_ns; /* CLOCK_MONOTONIC */
    unsigned long long regs[FDP_NREGS]; /* DWARF order; 0 when no stack */
    char path[FDP_PATH_MAX]; /* open's path argument as given */
    unsigned char stack[];   /* creations: FDP_STACK_MAX bytes from regs[7]; exec: the
                                open-descriptor bitmap right after it (bit fd of byte fd/8) */
};

/* Counters the loader reads at the end (array map "fdp_stats"). */
enum fdp_stat { FDP_STAT_LOST, FDP_STAT_NOSTACK, FDP_STAT_COUNT };

#endif

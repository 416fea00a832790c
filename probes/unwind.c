/* unwind.c - DWARF unwinding of a copied user stack with libdwfl's thread
 * state callbacks: the initial registers and the stack bytes are the ones the
 * probe captured, so the result is what the stack was at the event even if
 * the thread has moved on since.
 */
#define _GNU_SOURCE
#include "unwind.h"

#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NREGS 17

struct unwinder {
    pid_t pid;
    Dwfl *dwfl;
    int mem_fd; /* /proc/PID/mem */
    int thread_given;
    /* The event being unwound. */
    const uint64_t *regs;
    const uint8_t *stack;
    size_t len;
    uint64_t *frames;
    int n, max, seen;
};

static char *debuginfo_path = NULL;
static const Dwfl_Callbacks proc_callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .debuginfo_path = &debuginfo_path,
};

static pid_t next_thread(Dwfl *dwfl, void *arg, void **thread_argp) {
    (void)dwfl;
    struct unwinder *u = arg;
    if (u->thread_given) return 0;
    u->thread_given = 1;
    *thread_argp = u;
    return u->pid;
}

static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg) {
    (void)dwfl;
    struct unwinder *u = arg;
    uint64_t sp = u->regs[7];
    if (addr >= sp && addr + sizeof(Dwarf_Word) <= sp + u->len) {
        memcpy(result, u->stack + (addr - sp), sizeof *result);
        return true;
    }
    /* Past the copy: stack data has changed since the event; only read
     * what cannot have (code, read-only data), i.e. not near the stack. */
    if (addr >= sp && addr < sp + (1u << 20)) return false;
    return u->mem_fd >= 0 && pread(u->mem_fd, result, sizeof *result, (off_t)addr) ==
                                 (ssize_t)sizeof *result;
}

static bool set_initial_registers(Dwfl_Thread *thread, void *arg) {
    struct unwinder *u = arg;
    Dwarf_Word regs[NREGS];
    for (int i = 0; i < NREGS; i++) regs[i] = u->regs[i];
    return dwfl_thread_state_registers(thread, 0, NREGS, regs);
}

static const Dwfl_Thread_Callbacks thread_callbacks = {
    .next_thread = next_thread,
    .memory_read = memory_read,
    .set_initial_registers = set_initial_registers,
};

static int dwfl_open(struct unwinder *u) {
    u->dwfl = dwfl_begin(&proc_callbacks);
    if (!u->dwfl) return -1;
    dwfl_report_begin(u->dwfl);
    int rc = dwfl_linux_proc_report(u->dwfl, u->pid);
    dwfl_report_end(u->dwfl, NULL, NULL);
    if (rc != 0 || !dwfl_attach_state(u->dwfl, NULL, u->pid, &thread_callbacks, u)) {
        dwfl_end(u->dwfl);
        u->dwfl = NULL;
        return -1;
    }
    return 0;
}

struct unwinder *unwinder_new(pid_t pid) {
    struct unwinder *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->pid = pid;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    u->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (dwfl_open(u) != 0) {
        unwinder_free(u);
        return NULL;
    }
    return u;
}

void unwinder_free(struct unwinder *u) {
    if (!u) return;
    if (u->dwfl) dwfl_end(u->dwfl);
    if (u->mem_fd >= 0) close(u->mem_fd);
    free(u);
}

void unwinder_refresh(struct unwinder *u) {
    if (u->dwfl) dwfl_end(u->dwfl);
    u->dwfl = NULL;
    dwfl_open(u);
}

static int on_frame(Dwfl_Frame *state, void *arg) {
    struct unwinder *u = arg;
    Dwarf_Addr pc;
    bool activation;
    if (!dwfl_frame_pc(state, &pc, &activation)) return DWARF_CB_ABORT;
    if (u->seen++ == 0) return DWARF_CB_OK; /* the syscall's or hook's own frame */
    if (pc == 0 || u->n >= u->max) return DWARF_CB_ABORT;
    /* Stored as return addresses (readers look at addr - 1). */
    u->frames[u->n++] = activation ? pc + 1 : pc;
    return DWARF_CB_OK;
}

int unwind_stack(struct unwinder *u, const uint64_t *regs, const uint8_t *stack, size_t len,
                 uint64_t *frames, int max) {
    if (!u->dwfl || !regs[7] || !regs[16]) return 0;
    u->regs = regs;
    u->stack = stack;
    u->len = len;
    u->frames = frames;
    u->n = 0;
    u->max = max;
    u->seen = 0;
    u->thread_given = 0;
    dwfl_getthread_frames(u->dwfl, u->pid, on_frame, u);
    return u->n;
}

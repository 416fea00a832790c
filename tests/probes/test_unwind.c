/* test_unwind.c - the DWARF unwinder of probes/unwind.c on a stack it did
 * not walk itself: this process copies its own registers and the top of its
 * stack (as the descriptor probe does at a syscall) from inside a call chain
 * built without frame pointers, scribbles over the live stack, and the
 * unwinder must still name the chain from the copy. No BPF, no root.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <alloca.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "unwind.h"

static uint64_t regs[17];
static uint8_t stack_copy[8192];
static size_t stack_len;

/* Bytes of stack mapped above sp (the copy must not fault). */
static size_t stack_room(uint64_t sp) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    size_t room = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && sp >= lo && sp < hi) room = hi - sp;
    }
    if (f) fclose(f);
    return room;
}

/* Registers as at getcontext's return, in x86-64 DWARF order, and a copy of
 * the stack from there: what fdprobe.bpf.c sends. */
__attribute__((noinline)) void unwind_capture(void) {
    ucontext_t uc;
    getcontext(&uc);
    const greg_t *g = uc.uc_mcontext.gregs;
    regs[0] = (uint64_t)g[REG_RAX];
    regs[1] = (uint64_t)g[REG_RDX];
    regs[2] = (uint64_t)g[REG_RCX];
    regs[3] = (uint64_t)g[REG_RBX];
    regs[4] = (uint64_t)g[REG_RSI];
    regs[5] = (uint64_t)g[REG_RDI];
    regs[6] = (uint64_t)g[REG_RBP];
    regs[7] = (uint64_t)g[REG_RSP];
    for (int i = 0; i < 8; i++) regs[8 + i] = (uint64_t)g[REG_R8 + i];
    regs[16] = (uint64_t)g[REG_RIP];
    size_t room = stack_room(regs[7]);
    stack_len = room < sizeof stack_copy ? room : sizeof stack_copy;
    memcpy(stack_copy, (void *)regs[7], stack_len);
}

__attribute__((noinline)) void unwind_level3(int n) {
    char *pad = alloca(64 + (size_t)n); /* a frame of run-time size */
    pad[0] = 1;
    __asm__ volatile("" : : "r"(pad) : "memory");
    unwind_capture();
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void unwind_level2(int n) {
    unwind_level3(n * 2);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void unwind_level1(int n) {
    unwind_level2(n + 1);
    __asm__ volatile("" ::: "memory");
}

/* Overwrites the stack below the current frame, where the chain was. */
__attribute__((noinline)) static void scribble(void) {
    volatile char junk[16384];
    memset((char *)junk, 0x5a, sizeof junk);
}

static const char *name_of(uint64_t addr) {
    Dl_info info;
    return dladdr((void *)(addr - 1), &info) && info.dli_sname ? info.dli_sname : "?";
}

Test(unwind, names_a_chain_without_frame_pointers_from_a_copy) {
    unwind_level1(3);
    scribble();
    struct unwinder *u = unwinder_new(getpid());
    cr_assert_not_null(u);
    uint64_t frames[16];
    int n = unwind_stack(u, regs, stack_copy, stack_len, frames, 16);
    cr_assert_geq(n, 4, "only %d frames", n);
    /* The capture's own frame is dropped, like a syscall's. */
    cr_expect_str_eq(name_of(frames[0]), "unwind_level3");
    cr_expect_str_eq(name_of(frames[1]), "unwind_level2");
    cr_expect_str_eq(name_of(frames[2]), "unwind_level1");
    unwinder_free(u);
}

Test(unwind, says_nothing_without_a_stack) {
    struct unwinder *u = unwinder_new(getpid());
    cr_assert_not_null(u);
    uint64_t no_regs[17] = {0}, frames[16];
    cr_expect_eq(unwind_stack(u, no_regs, stack_copy, 0, frames, 16), 0);
    unwinder_free(u);
}

Test(unwind, refuses_a_process_that_does_not_exist) {
    cr_expect_null(unwinder_new(0x3fffffff));
}

/* unwind.h - call stacks of another process from a copy of the top of its
 * user stack and its registers, unwound with DWARF CFI (elfutils libdwfl),
 * as `perf --call-graph dwarf` does. Works without frame pointers. Memory
 * outside the copied stack (rare: CFA expressions) is read from the live
 * process through /proc/PID/mem.
 */
#ifndef LKS_UNWIND_H
#define LKS_UNWIND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct unwinder;

/* An unwinder for pid's address space, modules read from /proc/PID/maps.
 * Returns NULL when out of memory or when pid's maps cannot be read. */
struct unwinder *unwinder_new(pid_t pid);
void unwinder_free(struct unwinder *u);

/* Reads the module list again (after dlopen or exec). */
void unwinder_refresh(struct unwinder *u);

/* Unwinds from regs (x86-64 DWARF registers 0..16) over stack, a copy of
 * len bytes from regs[7] (rsp). Writes up to max return addresses of the
 * callers, innermost first (the frame of the syscall or hook itself is
 * dropped), and returns how many; 0 if nothing past that frame could be
 * unwound. */
int unwind_stack(struct unwinder *u, const uint64_t *regs, const uint8_t *stack, size_t len,
                 uint64_t *frames, int max);

#endif

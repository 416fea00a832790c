/* modmap.h - which loaded module holds a return address, and which stack
 * rules (module, func) that address matches, without dladdr().
 *
 * dladdr() walks a module's whole symbol table on every call; on programs
 * with large tables (node, cc1) that made each new stack cost milliseconds.
 * Instead, the executable ranges of all modules are kept in a sorted table
 * (dl_iterate_phdr), rebuilt when an address falls outside every known
 * module (a dlopen since), at most once per clock tick. Module rules are
 * evaluated once per module. Func rules are compiled, once per module and
 * only when a frame first lands in it, into the address ranges of the
 * functions whose names match: from .dynsym and .symtab of the file on disk,
 * so static functions of a program linked without -rdynamic match too.
 * A frame's rule bits are then two binary searches.
 *
 * In-process only (libleakscope-trace.so). No malloc: tables are mmap'd and
 * never freed (a rebuild publishes a new table; old ones may still be read).
 */
#ifndef LKS_MODMAP_H
#define LKS_MODMAP_H

#include <stdint.h>

#include "rules.h"

/* The rules whose module/func bits are computed. Call once before use. */
void lks_modmap_init(const struct lks_rules *rules);

/* Rule bits of one return address (the call instruction is at ra - 1). */
uint64_t lks_modmap_bits(uint64_t ra);

/* The module holding ra: its file path (the executable's real path for the
 * main program), load bias and lowest mapped address. Returns 0 if no
 * module holds it (JIT code, unmapped). */
int lks_modmap_module(uint64_t ra, const char **path, uint64_t *bias, uint64_t *base);

/* In a forked child: forgets work the parent's other threads had begun. */
void lks_modmap_after_fork(void);

#endif

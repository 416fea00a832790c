/* pystack.h - call sites of code running under CPython: the Python stack
 * (pyframes.h) merged with the native frames at its top.
 *
 * A site of a Python thread is keyed by its Python stack (code object and
 * instruction of every frame) plus the native leaf (the frames between the
 * hooked call and the interpreter), not by the depth of the eval loop's C
 * recursion. Capturing and hashing is the hot path (no lock, no allocation,
 * no strings); names, files, lines and rule bits are computed once, when a
 * site is first seen.
 */
#ifndef LKS_PYSTACK_H
#define LKS_PYSTACK_H

#include <stdint.h>

#include "pyframes.h"
#include "segment.h"

/* A site stores the native leaf and the innermost Python frames; the key
 * covers exactly what is stored, so two sites never print the same. */
#define LKS_PY_MAX_FRAMES (LKS_MAX_FRAMES - 1)
/* Heap sites key on fewer: the allocating code and its callers, not every
 * import chain that led there (as tracemalloc, which keeps 1 by default). */
#define LKS_PY_HEAP_FRAMES 6

struct lks_pystack {
    int n;
    uint64_t hash; /* of the (code, line) pairs; never 0 when n > 0 */
    struct lks_pyframe f[LKS_PY_MAX_FRAMES];
};

/* The calling thread's Python stack, hashed by code object and line (an
 * allocation's several instructions on one line are one site). Hot, but
 * not per allocation: memtrack calls it on a new or verified key. Keeps at
 * most max (<= LKS_PY_MAX_FRAMES) innermost frames. Returns ps->n (0: no
 * Python). */
int lks_pystack_capture(struct lks_pystack *ps, int max);

/* Does addr (a return address) lie in the interpreter's own code
 * (python3.X executable or libpython)? Cold path. */
int lks_py_in_interpreter(uint64_t addr);

/* Cold: pyfile/pyfunc rule bits of the stack's frames (cached per code
 * object and instruction). */
uint64_t lks_pystack_rule_bits(const struct lks_pystack *ps);

/* Cold: interns the merged stack — native[0..nnative) innermost first, cut
 * after the first frame inside the interpreter, then the Python frames — as
 * a site of subsys, keyed by key (the caller's hash of leaf and Python
 * stack). Returns the site index + 1, or 0 when the tables are full. */
uint32_t lks_pystack_site(uint64_t key, const uint64_t *native, int nnative,
                          const struct lks_pystack *ps, uint64_t rule_bits, int subsys);

/* Key of (native leaf, Python stack): never 0. */
static inline uint64_t lks_pystack_key(uint64_t leaf_hash, const struct lks_pystack *ps) {
    uint64_t k = (leaf_hash ^ (ps->hash * 0x9E3779B97F4A7C15ull)) | (1ull << 62);
    return k;
}

#endif

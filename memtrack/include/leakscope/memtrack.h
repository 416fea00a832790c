/* leakscope/memtrack.h - optional: let a program set its own heap reference
 * point around a unit of work (one job, one request), like guppy's
 * setrelheap or tracemalloc's compare_to.
 *
 *   leakscope_heap_mark();            // before the job
 *   run_job();
 *   leakscope_heap_since_mark(&bytes, &allocs); // still live from the job
 *
 * `leakscope diff PID` then lists, by call site and subsystem, what was
 * allocated since the latest mark and is still alive.
 *
 * Header only; nothing to link. The functions find libmemtrack.so at run
 * time and return -1 when the program runs without it.
 */
#ifndef LEAKSCOPE_MEMTRACK_H
#define LEAKSCOPE_MEMTRACK_H

#include <dlfcn.h>
#include <stdint.h>

#ifdef RTLD_DEFAULT
#define LEAKSCOPE_RTLD_DEFAULT RTLD_DEFAULT
#else
#define LEAKSCOPE_RTLD_DEFAULT ((void *)0) /* glibc's value; RTLD_DEFAULT needs _GNU_SOURCE */
#endif

/* Sets the reference point now. Returns 0, or -1 without the shim. */
static inline int leakscope_heap_mark(void) {
    int (*fn)(void) = (int (*)(void))dlsym(LEAKSCOPE_RTLD_DEFAULT, "leakscope_memtrack_mark");
    return fn ? fn() : -1;
}

/* Bytes and allocations made since the mark and still live (either pointer
 * may be NULL). Returns 0, or -1 without the shim. */
static inline int leakscope_heap_since_mark(int64_t *bytes, int64_t *allocs) {
    int (*fn)(int64_t *, int64_t *) =
        (int (*)(int64_t *, int64_t *))dlsym(LEAKSCOPE_RTLD_DEFAULT, "leakscope_memtrack_since_mark");
    return fn ? fn(bytes, allocs) : -1;
}

/* Publishes the heap view to the segment now (what `leakscope diff` and the
 * other readers see), instead of within the next second. */
static inline int leakscope_heap_refresh(void) {
    int (*fn)(void) = (int (*)(void))dlsym(LEAKSCOPE_RTLD_DEFAULT, "leakscope_memtrack_refresh");
    return fn ? fn() : -1;
}

#endif

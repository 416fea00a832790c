/* libc_next.h - the allocator the shim forwards to (the next definition of
 * malloc & co. after ours, normally glibc's), and the small static arena
 * that serves the few allocations made while those are being looked up
 * (dlsym itself allocates).
 */
#ifndef MEMTRACK_LIBC_NEXT_H
#define MEMTRACK_LIBC_NEXT_H

#include <stddef.h>

struct libc_next {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*malloc_usable_size)(void *);
};

/* Valid once libc_next_ready() returned 1. */
extern struct libc_next libc_next;

/* Looks the next allocator up on first call; returns 1 once every pointer in
 * libc_next is set, 0 while the look-up is in progress (then use the arena). */
int libc_next_ready(void);

/* Arena for the look-up: zeroed memory, never reused, never returned to
 * libc. Returns NULL when the arena is exhausted. */
void *boot_alloc(size_t size, size_t align);
int boot_owns(const void *p);
size_t boot_size(const void *p);

#endif

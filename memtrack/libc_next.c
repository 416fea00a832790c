/* libc_next.c - finding the real allocator behind our hooks.
 *
 * dlsym(RTLD_NEXT, ...) respects whatever allocator comes after us in the
 * search order (glibc, or a jemalloc/tcmalloc the program links), unlike
 * calling __libc_malloc. dlsym may itself call malloc/calloc: those calls
 * land in our hooks while the look-up is in progress and are served from a
 * static arena; frees of arena memory are ignored.
 */
#define _GNU_SOURCE
#include "libc_next.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>

struct libc_next libc_next;

enum { NEXT_NONE, NEXT_BUSY, NEXT_READY };
static _Atomic int next_state;

#define BOOT_ARENA (256 * 1024)
static _Alignas(64) char boot_arena[BOOT_ARENA];
static _Atomic size_t boot_used;

/* Arena blocks carry their size in the 16 bytes before the pointer. */
void *boot_alloc(size_t size, size_t align) {
    if (align < 16) align = 16;
    if (align > 4096 || size > BOOT_ARENA) return NULL;
    size_t need = size + align + 16;
    size_t start = atomic_fetch_add(&boot_used, need);
    if (start + need > BOOT_ARENA) return NULL;
    uintptr_t p = (uintptr_t)boot_arena + start + 16;
    p = (p + align - 1) & ~(uintptr_t)(align - 1);
    ((size_t *)p)[-1] = size;
    return (void *)p;
}

int boot_owns(const void *p) {
    return (const char *)p >= boot_arena && (const char *)p < boot_arena + BOOT_ARENA;
}

size_t boot_size(const void *p) { return ((const size_t *)p)[-1]; }

int libc_next_ready(void) {
    int st = atomic_load_explicit(&next_state, memory_order_acquire);
    if (st == NEXT_READY) return 1;
    int expected = NEXT_NONE;
    if (!atomic_compare_exchange_strong(&next_state, &expected, NEXT_BUSY)) return 0;
    struct libc_next n;
    n.malloc = dlsym(RTLD_NEXT, "malloc");
    n.free = dlsym(RTLD_NEXT, "free");
    n.calloc = dlsym(RTLD_NEXT, "calloc");
    n.realloc = dlsym(RTLD_NEXT, "realloc");
    n.posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    n.aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    n.memalign = dlsym(RTLD_NEXT, "memalign");
    n.valloc = dlsym(RTLD_NEXT, "valloc");
    n.pvalloc = dlsym(RTLD_NEXT, "pvalloc");
    n.malloc_usable_size = dlsym(RTLD_NEXT, "malloc_usable_size");
    libc_next = n;
    atomic_store_explicit(&next_state, NEXT_READY, memory_order_release);
    return 1;
}

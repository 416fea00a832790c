/* heapprobe_lib.c - a library whose allocations the tests classify by module
 * (rule: `testlib module libheapprobe_lib.so*`). */
#include <stdlib.h>

/* Leaks n blocks of size bytes; returns them so the caller may free some. */
__attribute__((visibility("default"))) void **heapprobe_lib_leak(int n, size_t size) {
    void **v = malloc(sizeof(void *) * (size_t)n);
    for (int i = 0; i < n; i++) v[i] = malloc(size);
    return v;
}

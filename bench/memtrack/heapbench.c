/* heapbench.c - the allocation workload of the memtrack benchmark: each
 * thread keeps a working set of 100k pointers and replaces a random one per
 * operation with a block of 16-4096 bytes allocated through a call chain 8
 * functions deep (four leaf call sites), touching the block like a program
 * would. Usage: heapbench THREADS OPS_PER_THREAD. Prints a checksum so the
 * work cannot be optimized away.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKING_SET 100000

static long g_ops;

#define LEVEL(n, next)                                                           \
    __attribute__((noinline)) static void *level##n(size_t size, unsigned site) { \
        void *p = next(size, site);                                              \
        __asm__ volatile("" ::: "memory");                                       \
        return p;                                                                \
    }

__attribute__((noinline)) static void *leaf(size_t size, unsigned site) {
    void *p;
    switch (site & 3) {
    case 0: p = malloc(size); break;
    case 1: p = malloc(size); break;
    case 2: p = calloc(1, size); break;
    default: p = realloc(NULL, size); break;
    }
    __asm__ volatile("" ::: "memory");
    return p;
}

LEVEL(7, leaf)
LEVEL(6, level7)
LEVEL(5, level6)
LEVEL(4, level5)
LEVEL(3, level4)
LEVEL(2, level3)
LEVEL(1, level2)

static void *worker(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    void **ws = calloc(WORKING_SET, sizeof(void *));
    uint64_t sum = 0;
    for (long i = 0; i < g_ops; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        size_t slot = (size_t)(seed % WORKING_SET);
        size_t size = 16 + (size_t)((seed >> 32) % 4081);
        free(ws[slot]);
        unsigned char *p = level1(size, (unsigned)(seed >> 20));
        p[0] = (unsigned char)i;
        p[size - 1] = (unsigned char)(i >> 8);
        sum += p[0];
        ws[slot] = p;
    }
    for (size_t i = 0; i < WORKING_SET; i++) free(ws[i]);
    free(ws);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    g_ops = argc > 2 ? atol(argv[2]) : 5000000;
    if (threads < 1 || threads > 64 || g_ops < 1) {
        fprintf(stderr, "usage: heapbench THREADS OPS_PER_THREAD\n");
        return 2;
    }
    pthread_t t[64];
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < threads; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (uint64_t)(uintptr_t)r;
    }
    printf("checksum %llu\n", (unsigned long long)sum);
    return 0;
}

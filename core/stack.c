/* stack.c - the program's call stacks, for call sites.
 *
 * Two ways to the same answer. libunwind, run on a private stack (a hook
 * on an 8 KiB sigaltstack or deep in a recursion has too little of its
 * own), is always right but costs ~150 ns a capture plus our own frames. The replay walk
 * reads a return address per frame from the stack, using each function's
 * frame size at that return address (CFA - SP), which libunwind taught it:
 * a look-up and a load per frame. It matters for allocation wrappers
 * (sqlite3MemMalloc, xmalloc), called from many paths at one depth, whose
 * call sites need a deep stack on every call.
 *
 * A frame size is fixed for every function that does not alloca. Sizes
 * are read off libunwind's fast trace (unw_backtrace): the caller's return
 * address is the first copy of it above the frame's stack pointer. A size
 * replays once two traces agreed on it. One replay in VERIFY_EVERY per
 * thread is checked against the fast trace; where they differ, a learning
 * walk (unw_step, which knows each frame's stack pointer) finds the size
 * that was wrong. A size seen to vary, or one that is not on the stack
 * (signal frames), is marked bad for good: stacks through it take the fast
 * trace every time.
 *
 * Every read is of the calling thread's own stack, within the readable
 * mapping that holds its stack pointer (lks_mem_readable_end), so a bad
 * size costs a wrong frame, never a fault.
 */
#define _GNU_SOURCE
#include "trace.h"

#include "pyframes.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

static pthread_key_t g_cap_key;
static _Atomic int g_cap_key_ok;

/* libunwind on a private stack.
 *
 * libunwind needs several KiB of stack; a hook called from a signal handler
 * on an 8 KiB sigaltstack, or at the bottom of a deep recursion, has less.
 * So the unwinder runs on a stack of our own (per thread, two levels for a
 * signal that interrupts a capture), entered through lks_on_stack, whose
 * CFI (a standard frame-pointer frame) lets libunwind walk back onto the
 * program's stack. Deeper nesting records no frames rather than risk it. */
#define CAP_STACK (64u << 10)
#define CAP_LEVELS 2
#define CAP_AREAS 4096

struct cap_area {
    _Atomic int owned;
    char *stack; /* CAP_LEVELS stacks of CAP_STACK bytes */
};

static struct cap_area g_cap[CAP_AREAS];
static _Atomic uint32_t g_ncap;
static __thread struct cap_area *t_cap __attribute__((tls_model("initial-exec")));
static __thread int t_cap_depth __attribute__((tls_model("initial-exec")));
static __thread int t_cap_gone __attribute__((tls_model("initial-exec")));

#if defined(__x86_64__)
/* void lks_on_stack(void (*fn)(void *), void *arg, void *stack_top) */
__asm__(".text\n"
        ".p2align 4\n"
        ".type lks_on_stack, @function\n"
        "lks_on_stack:\n"
        ".cfi_startproc\n"
        "  push %rbp\n"
        ".cfi_def_cfa_offset 16\n"
        ".cfi_offset %rbp, -16\n"
        "  mov %rsp, %rbp\n"
        ".cfi_def_cfa_register %rbp\n"
        "  mov %rdx, %rsp\n"
        "  mov %rdi, %rax\n"
        "  mov %rsi, %rdi\n"
        "  call *%rax\n"
        "  mov %rbp, %rsp\n"
        "  pop %rbp\n"
        ".cfi_def_cfa %rsp, 8\n"
        "  ret\n"
        ".cfi_endproc\n"
        ".size lks_on_stack, .-lks_on_stack\n");
void lks_on_stack(void (*fn)(void *), void *arg, void *stack_top);
#define HAVE_ON_STACK 1
#define ON_STACK_FRAMES 2 /* capture_thunk and lks_on_stack */
#else
#define HAVE_ON_STACK 0
#define ON_STACK_FRAMES 1 /* capture_thunk */
#endif

static void cap_release(void *arg) {
    struct cap_area *a = arg;
    t_cap = NULL;
    t_cap_gone = 1;
    if (a) atomic_store(&a->owned, 0);
}

/* This thread's capture area: a released one, or a new mapping. */
static struct cap_area *cap_claim(void) {
    uint32_t n = atomic_load(&g_ncap);
    struct cap_area *a = NULL;
    for (uint32_t i = 0; i < n && i < CAP_AREAS && !a; i++) {
        int zero = 0;
        if (g_cap[i].stack && atomic_load_explicit(&g_cap[i].owned, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong(&g_cap[i].owned, &zero, 1))
            a = &g_cap[i];
    }
    if (!a) {
        uint32_t i = atomic_fetch_add(&g_ncap, 1);
        if (i >= CAP_AREAS) return NULL;
        void *p = mmap(NULL, CAP_STACK * CAP_LEVELS, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) return NULL;
        a = &g_cap[i];
        a->owned = 1;
        a->stack = p;
    }
    t_cap = a;
    if (atomic_load(&g_cap_key_ok)) pthread_setspecific(g_cap_key, a);
    return a;
}

/* Runs fn(arg) on this thread's private stack. Returns the frames this
 * adds between fn and our caller (fn itself counted): 2 on the private
 * stack, 1 where there is none (fn called here); 0, fn not run, for a
 * third nested capture. */
static inline __attribute__((always_inline)) int lks_on_private_stack(void (*fn)(void *),
                                                                     void *arg) {
#if HAVE_ON_STACK
    struct cap_area *a = t_cap;
    if (!a && !t_cap_gone) a = cap_claim();
    if (a) {
        if (t_cap_depth >= CAP_LEVELS) return 0;
        char *top = a->stack + CAP_STACK * (size_t)(CAP_LEVELS - t_cap_depth);
        t_cap_depth++;
        lks_on_stack(fn, arg, (void *)((uintptr_t)top & ~(uintptr_t)15));
        t_cap_depth--;
        return ON_STACK_FRAMES;
    }
#endif
    fn(arg);
    return 1;
}

struct cap_job {
    void **buf;
    int want, n;
};

static void capture_thunk(void *arg) {
    struct cap_job *j = arg;
    j->n = unw_backtrace(j->buf, j->want);
}

/* libunwind's fast trace of the stack that called us, up to max return
 * addresses, starting with our own caller's (the frames of this function
 * and of the private stack's entry dropped). 0 for a third nested capture. */
static __attribute__((noinline)) int fast_trace(uint64_t *frames, int max) {
    void *buf[LKS_MAX_FRAMES + 16];
    struct cap_job j = {buf, max + 1 + ON_STACK_FRAMES, 0};
    if (j.want > (int)(sizeof buf / sizeof buf[0])) j.want = (int)(sizeof buf / sizeof buf[0]);
    int added = lks_on_private_stack(capture_thunk, &j);
    if (!added) return 0;
    int out = 0;
    for (int i = added + 1; i < j.n && out < max; i++) frames[out++] = (uint64_t)(uintptr_t)buf[i];
    return out;
}

/* ---- the replay walk ---- */

/* Frame size at a return address: > 0 learned, FS_BAD varies or is not on
 * the stack (a signal frame), FS_LAST the trace ended there (no caller). */
#define FS_BAD (-1)
#define FS_LAST (-2)
#define FS_MAX (1 << 20)
#define SIZES_BITS 14 /* 256 KiB: a short process faults in what it touches */
#define SIZES_PROBES 8
#define VERIFY_EVERY 128

struct frame_size {
    _Atomic uint64_t ra;   /* 0: free */
    _Atomic int32_t size;  /* 0: not learned yet */
    _Atomic uint32_t seen; /* walks that saw this size */
};
#define CONFIRMED 2 /* walks that must agree on a size before it replays */
#define SCAN_MAX 65536

static struct frame_size *g_sizes;
static __thread int t_verify __attribute__((tls_model("initial-exec")));

static inline uint32_t size_slot(uint64_t ra) {
    return (uint32_t)((ra * 0x9E3779B97F4A7C15ull) >> (64 - SIZES_BITS));
}

static int32_t size_of(uint64_t ra) {
    uint32_t slot = size_slot(ra);
    for (int p = 0; p < SIZES_PROBES; p++) {
        struct frame_size *f = &g_sizes[(slot + (uint32_t)p) & ((1u << SIZES_BITS) - 1)];
        uint64_t k = atomic_load_explicit(&f->ra, memory_order_acquire);
        if (k == ra) {
            int32_t size = atomic_load_explicit(&f->size, memory_order_acquire);
            return size > 0 && atomic_load_explicit(&f->seen, memory_order_relaxed) < CONFIRMED
                       ? 0 : size;
        }
        if (k == 0) return 0;
    }
    return 0;
}

/* ra's entry; claimed (size 0) if new. NULL when its probe run is full
 * (that ra keeps taking libunwind). */
static struct frame_size *size_entry(uint64_t ra) {
    uint32_t slot = size_slot(ra);
    for (int p = 0; p < SIZES_PROBES; p++) {
        struct frame_size *f = &g_sizes[(slot + (uint32_t)p) & ((1u << SIZES_BITS) - 1)];
        uint64_t k = atomic_load_explicit(&f->ra, memory_order_acquire);
        if (k == 0) {
            uint64_t zero = 0;
            if (atomic_compare_exchange_strong(&f->ra, &zero, ra)) return f;
            k = zero;
        }
        if (k == ra) return f;
    }
    return NULL;
}

/* Records what one libunwind walk saw at ra: a first sight sets the size,
 * the same again confirms it, a different one makes it bad. */
static void size_learn(uint64_t ra, int32_t size) {
    struct frame_size *f = size_entry(ra);
    if (!f) return;
    int32_t old = atomic_load_explicit(&f->size, memory_order_acquire);
    if (old == FS_BAD) return;
    if (old == 0) {
        atomic_store_explicit(&f->seen, 1, memory_order_relaxed);
        atomic_store_explicit(&f->size, size, memory_order_release);
    } else if (old != size) {
        atomic_store(&f->size, FS_BAD);
    } else if (atomic_load_explicit(&f->seen, memory_order_relaxed) < CONFIRMED) {
        atomic_fetch_add_explicit(&f->seen, 1, memory_order_relaxed);
    }
}

struct learn_job {
    uint64_t ra, sp; /* where the wanted stack starts */
    uint64_t *frames;
    int max, n;
};

/* libunwind from here to the frame (ra, sp), then max frames from it; every
 * frame size on the way is learned or checked. sp 0: the first frame at
 * ra. No such frame in the first 32: no frames. */
static void learn_thunk(void *arg) {
    struct learn_job *j = arg;
    unw_context_t uc;
    unw_cursor_t c;
    uint64_t ip[LKS_MAX_FRAMES + 1], sp[LKS_MAX_FRAMES + 1];
    int n = 0, skipped = 0, end = 0;
    j->n = 0;
    if (unw_getcontext(&uc) != 0 || unw_init_local(&c, &uc) != 0) return;
    for (;;) {
        unw_word_t w_ip, w_sp;
        if (unw_get_reg(&c, UNW_REG_IP, &w_ip) != 0 || unw_get_reg(&c, UNW_REG_SP, &w_sp) != 0)
            break;
        if (n == 0 && !(w_ip == j->ra && (!j->sp || w_sp == j->sp))) {
            if (++skipped > 32) break;
        } else {
            if (unw_is_signal_frame(&c) > 0) size_learn(w_ip, FS_BAD);
            ip[n] = w_ip;
            sp[n] = w_sp;
            if (++n > j->max) break; /* one more than max: its sp sizes the last */
        }
        int r = unw_step(&c);
        if (r <= 0) {
            end = r == 0;
            break;
        }
    }
    /* A size replays only if the caller's return address is where the
     * replay will read it, at CFA - 8 (not so across signal frames, or in
     * code libunwind walked by some other rule). */
    for (int i = 0; i + 1 < n; i++) {
        int64_t size = (int64_t)(sp[i + 1] - sp[i]);
        int ok = size > 0 && size < FS_MAX && size % 8 == 0 &&
                 lks_mem_readable(sp[i + 1] - 8, 8) &&
                 *(const uint64_t *)(uintptr_t)(sp[i + 1] - 8) == ip[i + 1];
        size_learn(ip[i], ok ? (int32_t)size : FS_BAD);
    }
    if (end && n > 0 && n <= j->max) size_learn(ip[n - 1], FS_LAST);
    j->n = n < j->max ? n : j->max;
    for (int i = 0; i < j->n; i++) j->frames[i] = ip[i];
}

static int learn_walk(uint64_t ra, uint64_t sp, uint64_t *frames, int max) {
    struct learn_job j = {ra, sp, frames, max, 0};
    if (!lks_on_private_stack(learn_thunk, &j)) return 0;
    return j.n;
}

/* Sizes read off a fast trace that starts at sp: each caller's return
 * address is taken to be the first copy of it above the frame's sp. No
 * syscall, unlike a learning walk (libunwind blocks signals around its
 * cache at every unw_step). A stale copy lower in a frame gives a size
 * that does not replay; the checks and the learning walk find it. whole:
 * the trace ended at its last frame, which then has no caller. */
static void scan_learn(uint64_t sp, const uint64_t *frames, int n, int whole) {
    uint64_t end = lks_mem_readable_end(sp);
    if (whole) size_learn(frames[n - 1], FS_LAST); /* the trace ended there */
    for (int i = 0; i + 1 < n && sp < end; i++) {
        const uint64_t *w = (const uint64_t *)(uintptr_t)sp;
        uint64_t k = 0, words = (end - sp < SCAN_MAX ? end - sp : SCAN_MAX) / 8;
        while (k < words && w[k] != frames[i + 1]) k++;
        if (k == words) {
            size_learn(frames[i], FS_BAD); /* not on this stack: a signal frame? */
            return;
        }
        size_learn(frames[i], (int32_t)((k + 1) * 8));
        sp += (k + 1) * 8;
    }
}

#define REPLAY_UNKNOWN (-1) /* a size not learned yet */
#define REPLAY_BAD (-2)     /* a size that does not replay */

/* Replays learned sizes from (ra, sp): the frame count, or REPLAY_*. */
static int replay(uint64_t ra, uint64_t sp, uint64_t *frames, int max) {
    uint64_t end = lks_mem_readable_end(sp);
    int n = 0;
    for (;;) {
        frames[n++] = ra;
        if (n == max) return n;
        int32_t size = size_of(ra);
        if (size == FS_LAST) return n;
        if (size == 0) return REPLAY_UNKNOWN;
        if (size < 0) return REPLAY_BAD;
        uint64_t cfa = sp + (uint64_t)size;
        if (cfa > end) return REPLAY_BAD; /* off this thread's stack */
        ra = *(const uint64_t *)(uintptr_t)(cfa - 8);
        sp = cfa;
        if (ra < 4096) return n;
    }
}

/* libunwind's fast trace of this stack from ra: the check of a replay.
 * *ended: the trace reached the stack's outermost frame. */
static int capture_from(uint64_t ra, uint64_t *frames, int max, int *ended) {
    uint64_t buf[LKS_MAX_FRAMES + 12];
    int want = max + 12;
    int n = fast_trace(buf, want);
    *ended = n < want;
    for (int i = 0; i < n && i < 12; i++) {
        if (buf[i] != ra) continue;
        int out = 0;
        for (int k = i; k < n && out < max; k++) frames[out++] = buf[k];
        *ended = *ended && out < max;
        return out;
    }
    return 0;
}

LKS_EXPORT int lks_stack_walk(uint64_t ra, uint64_t sp, uint64_t *frames, int max) {
    if (max <= 0) return 0;
    if (max > LKS_MAX_FRAMES) max = LKS_MAX_FRAMES;
    int n = g_sizes && sp ? replay(ra, sp, frames, max) : REPLAY_BAD;
    if (n > 0 && ++t_verify < VERIFY_EVERY) return n;
    /* libunwind's fast trace: the check of a replay, or the stack where a
     * replay cannot go. Where a replay disagrees, the learning walk below
     * finds the size that varied. */
    uint64_t check[LKS_MAX_FRAMES];
    int ended;
    int m = capture_from(ra, check, max, &ended);
    if (n <= 0 && m > 0) {
        if (n == REPLAY_UNKNOWN) scan_learn(sp, check, m, ended);
        memcpy(frames, check, (size_t)m * 8);
        return m;
    }
    if (n > 0) {
        t_verify = 0;
        if (m == n && memcmp(check, frames, (size_t)n * 8) == 0) return n;
    }
    n = learn_walk(ra, sp, frames, max);
    if (n > 0) return n;
    if (m > 0) { /* no frame at (ra, sp): the fast trace's, from the first ra */
        memcpy(frames, check, (size_t)m * 8);
        return m;
    }
    frames[0] = ra;
    return 1;
}

void lks_stack_init(void) {
    if (pthread_key_create(&g_cap_key, cap_release) == 0) atomic_store(&g_cap_key_ok, 1);
    void *p = mmap(NULL, sizeof(struct frame_size) << SIZES_BITS, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    g_sizes = p == MAP_FAILED ? NULL : p;
}

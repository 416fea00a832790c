/* pyprobe.c - test preload for core/pyframes.c, no segment involved.
 *
 * Hooks uname(): each call made under Python appends one line with the
 * described Python stack to $PYPROBE_OUT, so a test can compare it with the
 * lines of the script that called os.uname(). With PYPROBE_STRESS=1 it also
 * captures on every malloc (and describes every 64th stack) to show the walk
 * never faults, whatever state the interpreter is in.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "pyframes.h"

extern void *__libc_malloc(size_t);

static __thread int in_probe;
static int stress = -1;
static unsigned long captures, frames_seen;

static void describe_stack(char *line, size_t len, const struct lks_pyframe *f, int n) {
    size_t off = 0;
    line[0] = 0;
    for (int i = 0; i < n && off < len; i++) {
        char func[128], file[256];
        int ln;
        lks_py_describe(&f[i], func, sizeof func, file, sizeof file, &ln);
        int w = snprintf(line + off, len - off, "%s%s|%s|%d", i ? ";" : "", func, file, ln);
        if (w < 0) break;
        off += (size_t)w;
    }
}

int uname(struct utsname *buf) {
    static int (*real)(struct utsname *);
    if (!real) real = (int (*)(struct utsname *))dlsym(RTLD_NEXT, "uname");
    in_probe++;
    int major = 0, minor = 0;
    int mode = lks_py_init(&major, &minor);
    struct lks_pyframe f[64];
    int n = lks_py_capture(f, 64);
    static char line[16384];
    describe_stack(line, sizeof line, f, n);
    const char *out = getenv("PYPROBE_OUT");
    if (out) {
        int fd = open(out, O_WRONLY | O_APPEND | O_CREAT, 0600);
        if (fd >= 0) {
            dprintf(fd, "mode=%d version=%d.%d n=%d %s\n", mode, major, minor, n, line);
            close(fd);
        }
    }
    in_probe--;
    return real(buf);
}

void *malloc(size_t size) {
    void *p = __libc_malloc(size);
    if (stress < 0) stress = 0; /* decided in the constructor */
    if (stress > 0 && !in_probe) {
        in_probe++;
        struct lks_pyframe f[32];
        int n = lks_py_capture(f, 32);
        __atomic_add_fetch(&captures, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&frames_seen, (unsigned long)n, __ATOMIC_RELAXED);
        if (n && (captures & 63) == 0) {
            char line[4096];
            describe_stack(line, sizeof line, f, n);
        }
        in_probe--;
    }
    return p;
}

__attribute__((constructor)) static void probe_init(void) {
    in_probe++;
    lks_py_init(NULL, NULL);
    const char *s = getenv("PYPROBE_STRESS");
    stress = s && s[0] == '1';
    in_probe--;
}

__attribute__((destructor)) static void probe_fini(void) {
    const char *out = getenv("PYPROBE_OUT");
    if (!stress || !out) return;
    int fd = open(out, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (fd >= 0) {
        dprintf(fd, "stress captures=%lu frames=%lu\n", captures, frames_seen);
        close(fd);
    }
}

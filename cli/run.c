/* run.c - `leakscope run`: start a command under the shims, wait for it,
 * and summarize every process of the run from its segment.
 *
 * The run is one "session": its id goes to every process through the
 * environment, so the summary picks exactly this run's segments out of the
 * shared per-user directory that all commands read.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "rules.h"
#include "segdir.h"
#include "summary.h"

static void usage(FILE *out) {
    fputs("usage: leakscope run [--fd] [--heap] [--rules FILE] [--dir DIR] [--summary FILE.json]\n"
          "                     [--role NAME] [--keep] [--quiet] -- CMD [ARGS...]\n"
          "Runs CMD and its children under the shims and summarizes at exit.\n"
          "  --fd, --heap      what to trace (default: both)\n"
          "  --rules FILE      classification rules (also LEAKSCOPE_RULES)\n"
          "  --dir DIR         segment directory (default $LEAKSCOPE_DIR or /dev/shm/leakscope-UID)\n"
          "  --summary FILE    write the summary as JSON\n"
          "  --role NAME       label the processes (LEAKSCOPE_ROLE)\n"
          "  --keep            keep the segments of this run's processes (never swept)\n"
          "  --quiet           no human summary on stderr\n"
          "Exit status: CMD's, or 128+signal if it was killed; 2 if CMD could not be\n"
          "traced (e.g. statically linked) or no process of it was traced.\n",
          out);
}

/* Directory holding this executable's shims: <exe dir>/../lib. */
static int shim_dir(char *buf, size_t len) {
    const char *env = getenv("LEAKSCOPE_LIB_DIR");
    if (env && *env) return snprintf(buf, len, "%s", env) < (int)len ? 0 : -1;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    *slash = 0;
    return snprintf(buf, len, "%s/../lib", exe) < (int)len ? 0 : -1;
}

static int add_preload(const char *dir, const char *lib, char *preload, size_t len) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, lib);
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        fprintf(stderr, "leakscope: cannot find %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t used = strlen(preload);
    if (snprintf(preload + used, len - used, "%s%s", used ? ":" : "", real) >= (int)(len - used)) {
        fprintf(stderr, "leakscope: LD_PRELOAD too long\n");
        return -1;
    }
    return 0;
}

/* Where execvp would find cmd: itself if it has a '/', else the first
 * executable regular file of that name on $PATH. Returns 0 if found. */
static int find_program(const char *cmd, char *buf, size_t len) {
    if (strchr(cmd, '/')) return snprintf(buf, len, "%s", cmd) < (int)len ? 0 : -1;
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t n = colon ? (size_t)(colon - path) : strlen(path);
        struct stat st;
        if (snprintf(buf, len, "%.*s/%s", (int)n, n ? path : ".", cmd) < (int)len &&
            stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
            return 0;
        path += n + (colon ? 1 : 0);
    }
    return -1;
}

/* Why prog cannot be traced through LD_PRELOAD, or NULL if it can (or we
 * cannot tell: exec will say). A program without an ELF interpreter is
 * statically linked (Go without cgo, musl-static, static-pie): the dynamic
 * loader never runs in it, so no preloaded shim ever starts. A script is
 * judged by its interpreter, one level deep. */
static const char *untraceable_reason(const char *prog, int depth) {
    struct stat st;
    char err[PATH_MAX + 100];
    int fd = lks_open_regular(prog, 0, &st, err, sizeof err);
    if (fd < 0) return NULL;
    unsigned char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    if (n >= 2 && buf[0] == '#' && buf[1] == '!' && depth == 0) {
        close(fd);
        char interp[PATH_MAX];
        size_t i = 2, j = 0;
        while (i < (size_t)n && (buf[i] == ' ' || buf[i] == '\t')) i++;
        while (i < (size_t)n && j + 1 < sizeof interp && buf[i] != ' ' && buf[i] != '\t' &&
               buf[i] != '\n')
            interp[j++] = (char)buf[i++];
        interp[j] = 0;
        return j ? untraceable_reason(interp, 1) : NULL;
    }
    if (n < (ssize_t)sizeof(Elf32_Ehdr) || memcmp(buf, ELFMAG, SELFMAG) != 0) {
        close(fd);
        return NULL;
    }
    int is64 = buf[EI_CLASS] == ELFCLASS64;
    uint64_t phoff;
    unsigned phnum, phentsize;
    if (is64) {
        Elf64_Ehdr *e = (Elf64_Ehdr *)buf;
        phoff = e->e_phoff, phnum = e->e_phnum, phentsize = e->e_phentsize;
    } else {
        Elf32_Ehdr *e = (Elf32_Ehdr *)buf;
        phoff = e->e_phoff, phnum = e->e_phnum, phentsize = e->e_phentsize;
    }
    int interp = 0, valid = phentsize >= (is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)) &&
                           phnum > 0 && phnum < 4096;
    for (unsigned i = 0; valid && i < phnum && !interp; i++) {
        unsigned char ph[sizeof(Elf64_Phdr)];
        if (pread(fd, ph, sizeof ph, (off_t)(phoff + (uint64_t)i * phentsize)) <
            (ssize_t)(is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr))) {
            valid = 0;
            break;
        }
        uint32_t type = is64 ? ((Elf64_Phdr *)ph)->p_type : ((Elf32_Phdr *)ph)->p_type;
        if (type == PT_INTERP) interp = 1;
    }
    close(fd);
    if (!valid || interp) return NULL;
    return "it is statically linked (no ELF interpreter), so the dynamic loader never runs in it "
           "and the LD_PRELOAD shims cannot load (Go programs built without cgo are like this)";
}

int cmd_run(int argc, char **argv) {
    int want_fd = 0, want_heap = 0, keep = 0, quiet = 0;
    const char *rules = NULL, *dir_opt = NULL, *summary = NULL, *role = NULL;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-') break;
        if (strcmp(a, "--fd") == 0) want_fd = 1;
        else if (strcmp(a, "--heap") == 0) want_heap = 1;
        else if (strcmp(a, "--keep") == 0) keep = 1;
        else if (strcmp(a, "--quiet") == 0) quiet = 1;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (i + 1 < argc && strcmp(a, "--rules") == 0) rules = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--dir") == 0) dir_opt = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--summary") == 0) summary = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--role") == 0) role = argv[++i];
        else {
            fprintf(stderr, "leakscope run: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "leakscope run: no command given\n");
        usage(stderr);
        return 2;
    }
    if (!want_fd && !want_heap) want_fd = want_heap = 1;
    /* The docs promise LEAKSCOPE_RULES works like --rules. */
    if (!rules && getenv("LEAKSCOPE_RULES") && *getenv("LEAKSCOPE_RULES"))
        rules = getenv("LEAKSCOPE_RULES");

    char prog[PATH_MAX];
    if (find_program(argv[i], prog, sizeof prog) == 0) {
        const char *why = untraceable_reason(prog, 0);
        if (why) {
            fprintf(stderr, "leakscope run: cannot trace %s: %s. Nothing was run.\n", prog, why);
            return 2;
        }
    }

    char dir[512], libdir[PATH_MAX], preload[8192] = "";
    if (segdir_resolve(dir_opt, dir, sizeof dir) != 0) return 2;
    char err[600];
    if (lks_segment_dir_prepare(dir, err, sizeof err) != 0) {
        fprintf(stderr, "leakscope run: %s\n", err);
        return 2;
    }
    if (shim_dir(libdir, sizeof libdir) != 0) {
        fprintf(stderr, "leakscope run: cannot locate the shim directory\n");
        return 2;
    }
    if ((want_fd && add_preload(libdir, "libfdtrack.so", preload, sizeof preload) != 0) ||
        (want_heap && add_preload(libdir, "libmemtrack.so", preload, sizeof preload) != 0))
        return 2;
    const char *old = getenv("LD_PRELOAD");
    if (old && *old) {
        size_t used = strlen(preload);
        snprintf(preload + used, sizeof preload - used, ":%s", old);
    }
    if (summary) {
        /* Fail before running anything if the summary cannot be written. */
        FILE *probe = fopen(summary, "a");
        if (!probe) {
            fprintf(stderr, "leakscope run: cannot write %s: %s\n", summary, strerror(errno));
            return 2;
        }
        fclose(probe);
    }

    char rules_abs[PATH_MAX];
    if (rules) {
        struct lks_rules *r = malloc(sizeof *r);
        if (!r) return 2;
        if (lks_rules_load_file(r, rules, err, sizeof err) != 0) {
            fprintf(stderr, "leakscope run: rules: %s; using the built-in defaults\n", err);
            rules = NULL;
        } else if (realpath(rules, rules_abs)) {
            rules = rules_abs; /* children may change directory */
        }
        free(r);
    }

    char session[40];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(session, sizeof session, "run-%d-%lld", (int)getpid(), (long long)ts.tv_sec);

    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "leakscope run: fork: %s\n", strerror(errno));
        return 2;
    }
    if (child == 0) {
        setenv("LD_PRELOAD", preload, 1);
        setenv("LEAKSCOPE_SESSION", session, 1);
        setenv("LEAKSCOPE_DIR", dir, 1);
        if (rules) {
            setenv("LEAKSCOPE_RULES", rules, 1);
        } else {
            unsetenv("LEAKSCOPE_RULES");
        }
        if (role) setenv("LEAKSCOPE_ROLE", role, 1);
        execvp(argv[i], &argv[i]);
        fprintf(stderr, "leakscope run: cannot run %s: %s\n", argv[i], strerror(errno));
        _exit(127);
    }
    /* The terminal's SIGINT/SIGQUIT reach the child; we wait and report. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    int wstatus = 0;
    while (waitpid(child, &wstatus, 0) < 0 && errno == EINTR)
        ;
    int status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus)
                 : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus)
                                        : 1;

    struct seg_list l;
    if (segdir_load(dir, session, 0, &l, err, sizeof err) != 0) {
        fprintf(stderr, "leakscope run: %s\n", err);
        return status;
    }
    const char *off = getenv("LEAKSCOPE_OFF");
    if (l.n == 0 && !(off && *off && strcmp(off, "0") != 0)) {
        /* Say so rather than summarize nothing as "no leak". */
        fprintf(stderr, "leakscope run: no process of this run was traced: the shims never started "
                "in %s (statically linked, setuid, or started with LD_PRELOAD cleared); "
                "no verdict\n", argv[i]);
        seg_list_free(&l);
        return status ? status : 2;
    }
    if (!quiet) summary_text(stderr, &l, want_fd, want_heap);
    if (summary) {
        FILE *f = fopen(summary, "w");
        if (!f) {
            fprintf(stderr, "leakscope run: cannot write %s: %s\n", summary, strerror(errno));
        } else {
            summary_json(f, &l, want_fd, want_heap, status);
            if (fclose(f) != 0)
                fprintf(stderr, "leakscope run: writing %s failed: %s\n", summary, strerror(errno));
        }
    }
    for (size_t k = 0; k < l.n; k++) {
        if (keep) {
            /* Marked kept in the file itself, so no sweep removes it. */
            size_t len = 0;
            struct lks_header *h = lks_segment_map_rw(l.path[k], &len, NULL, 0);
            if (h) atomic_store(&h->kept, 1);
            lks_segment_unmap(h, len);
        } else if (!lks_segment_process_alive(l.seg[k])) {
            unlink(l.path[k]);
        }
    }
    seg_list_free(&l);
    return status;
}

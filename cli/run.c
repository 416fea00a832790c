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
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "diagnose.h"
#include "history.h"
#include "record.h"
#include "rules.h"
#include "runtmp.h"
#include "segdir.h"
#include "summary.h"

static void usage(FILE *out) {
    fputs("usage: leakscope run [--fd] [--heap] [--rules FILE] [--dir DIR] [--summary FILE.json]\n"
          "                     [--role NAME] [--keep] [--quiet] [--record FILE.db] -- CMD [ARGS...]\n"
          "Runs CMD and its children under the shims, samples them every second, and ends\n"
          "with the verdicts from growth (docs/VERDICTS.md) after the state at exit.\n"
          "  --fd, --heap      what to trace (default: both)\n"
          "  --rules FILE      classification rules (also LEAKSCOPE_RULES)\n"
          "  --dir DIR         segment directory (default $LEAKSCOPE_DIR or /dev/shm/leakscope-UID)\n"
          "  --summary FILE    write the summary as JSON\n"
          "  --role NAME       label the processes (LEAKSCOPE_ROLE)\n"
          "  --keep            keep the segments of this run's processes (never swept)\n"
          "  --record FILE.db  keep the run's recording (docs/RECORDING.md), final state\n"
          "                    included; without it the run is recorded to a temporary file\n"
          "                    that is removed after the verdicts\n"
          "  --quiet           no human summary on stderr\n"
          "SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to leakscope are passed on to CMD.\n"
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

/* The signals that stop a run, and the program they are passed on to (0:
 * none yet, or reaped). */
static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define NSTOP (sizeof stop_signals / sizeof stop_signals[0])
static volatile sig_atomic_t g_child;
static int g_caught[NSTOP]; /* 1: forward_stop is installed for it */

/* A stop signal a process sent the run (kill, a supervisor, timeout) goes to
 * the traced program, which ends the run the usual way: its exit status,
 * the summary, the temporary recording removed. One from the terminal (^C,
 * ^\, a hangup) reached the program already, in our foreground process
 * group; one the program sent (kill(-1, ...)) is not sent back to it. */
static void forward_stop(int sig, siginfo_t *si, void *ctx) {
    (void)ctx;
    pid_t child = (pid_t)g_child;
    if (child > 0 && si->si_code <= 0 && si->si_pid != child) kill(child, sig);
}

/* Blocks the stop signals (old mask in *old) and catches those that were
 * not ignored when we started: one ignored on entry (nohup, a background
 * job of a script) stays ignored, for us and for the program. */
static void catch_stop_signals(sigset_t *old) {
    sigset_t set;
    sigemptyset(&set);
    for (size_t k = 0; k < NSTOP; k++) sigaddset(&set, stop_signals[k]);
    sigprocmask(SIG_BLOCK, &set, old);
    struct sigaction sa = {.sa_sigaction = forward_stop, .sa_flags = SA_SIGINFO | SA_RESTART};
    sigemptyset(&sa.sa_mask);
    for (size_t k = 0; k < NSTOP; k++) {
        struct sigaction was;
        if (sigaction(stop_signals[k], NULL, &was) == 0 && was.sa_handler != SIG_IGN)
            g_caught[k] = sigaction(stop_signals[k], &sa, NULL) == 0;
    }
}

/* In the program's process before exec: the stop signals as they were when
 * we started, so none arriving now is lost in our handler. */
static void release_stop_signals(const sigset_t *old) {
    for (size_t k = 0; k < NSTOP; k++)
        if (g_caught[k]) signal(stop_signals[k], SIG_DFL);
    sigprocmask(SIG_SETMASK, old, NULL);
}

int cmd_run(int argc, char **argv) {
    int want_fd = 0, want_heap = 0, keep = 0, quiet = 0;
    const char *rules = NULL, *dir_opt = NULL, *summary = NULL, *role = NULL, *record = NULL;
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
        else if (i + 1 < argc && strcmp(a, "--record") == 0) record = argv[++i];
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

    /* Stop signals wait (blocked) until the program runs, then go to it. */
    sigset_t old_mask;
    catch_stop_signals(&old_mask);
    runtmp_sweep(); /* what runs killed outright left behind */

    /* The recorder: a child of ours sampling this session's segments, told
     * to take its last sample (SIGTERM) once the command has exited. Always
     * on: the verdicts come from its series. */
    char tmp_dir[128] = "";
    char tmp_db[160];
    if (!record) {
        if (runtmp_create(tmp_dir, sizeof tmp_dir) != 0) {
            fprintf(stderr, "leakscope run: cannot create a temporary directory: %s\n", strerror(errno));
            return 2;
        }
        snprintf(tmp_db, sizeof tmp_db, "%s/run.db", tmp_dir);
        record = tmp_db;
    }
    int status = 2, exec_errno = 0;
    pid_t recorder = -1, child = -1;
    char command[1024] = "";
    for (int k = i; k < argc; k++) {
        size_t used = strlen(command);
        snprintf(command + used, sizeof command - used, "%s%s", k > i ? " " : "", argv[k]);
    }
    if (record_check_out(record, 1, dir, command) != 0) goto stopped;
    pid_t self = getpid();
    recorder = fork();
    if (recorder < 0) {
        fprintf(stderr, "leakscope run: fork: %s\n", strerror(errno));
        goto stopped;
    }
    if (recorder == 0) {
        /* If the run is killed outright, the recorder takes its last sample
         * and ends instead of sampling forever. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != self) _exit(1);
        /* A reader: on a busy machine the traced program comes first. */
        setpriority(PRIO_PROCESS, 0, 10);
        struct record_opts o = {.out = record, .dir = dir, .session = session,
                                .command = command, .interval_s = 1, .duration_s = -1, .idle_after_s = 60,
                                .top_sites = 10, .ignore_sigint = 1};
        _exit(record_loop(&o));
    }

    /* Tells "exec failed" (said by the child) apart from "ran untraced". */
    int exec_pipe[2];
    if (pipe2(exec_pipe, O_CLOEXEC) != 0) {
        fprintf(stderr, "leakscope run: pipe: %s\n", strerror(errno));
        goto stopped;
    }
    child = fork();
    if (child < 0) {
        fprintf(stderr, "leakscope run: fork: %s\n", strerror(errno));
        close(exec_pipe[0]);
        close(exec_pipe[1]);
        goto stopped;
    }
    if (child == 0) {
        release_stop_signals(&old_mask);
        setenv("LD_PRELOAD", preload, 1);
        setenv("LEAKSCOPE_SESSION", session, 1);
        setenv("LEAKSCOPE_DIR", dir, 1);
        if (rules) {
            setenv("LEAKSCOPE_RULES", rules, 1);
        } else {
            unsetenv("LEAKSCOPE_RULES");
        }
        if (role) setenv("LEAKSCOPE_ROLE", role, 1);
        close(exec_pipe[0]);
        execvp(argv[i], &argv[i]);
        int e = errno;
        fprintf(stderr, "leakscope run: cannot run %s: %s\n", argv[i], strerror(e));
        ssize_t w = write(exec_pipe[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    g_child = child;
    sigprocmask(SIG_SETMASK, &old_mask, NULL); /* a stop sent meanwhile is forwarded now */
    close(exec_pipe[1]);
    while (read(exec_pipe[0], &exec_errno, sizeof exec_errno) < 0 && errno == EINTR)
        ;
    close(exec_pipe[0]);
    /* We wait and report; stop signals go to the child (forward_stop). Its
     * pid is forgotten before it is reaped, so no signal reaches a reused one. */
    siginfo_t gone;
    while (waitid(P_PID, (id_t)child, &gone, WEXITED | WNOWAIT) < 0 && errno == EINTR)
        ;
    g_child = 0;
    int wstatus = 0;
    while (waitpid(child, &wstatus, 0) < 0 && errno == EINTR)
        ;
    status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus)
             : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus)
                                    : 1;
stopped:
    if (recorder > 0) {
        int rstatus = 0;
        kill(recorder, SIGTERM);
        while (waitpid(recorder, &rstatus, 0) < 0 && errno == EINTR)
            ;
        if (child > 0 && (!WIFEXITED(rstatus) || WEXITSTATUS(rstatus) != 0))
            fprintf(stderr, "leakscope run: the recording %s may be incomplete\n", record);
    }
    if (child <= 0 || exec_errno) { /* nothing ran; the child said why */
        if (tmp_dir[0]) runtmp_remove(tmp_dir);
        return status;
    }
    struct seg_list l;
    if (segdir_load(dir, session, 0, &l, err, sizeof err) != 0) {
        fprintf(stderr, "leakscope run: %s\n", err);
        if (tmp_dir[0]) runtmp_remove(tmp_dir);
        return status;
    }
    /* The verdicts, from the recording of the run. */
    struct history hist;
    struct diag_list verdicts = {0};
    char load_err[700];
    int judged = 0;
    if (history_load_db(record, &hist, load_err, sizeof load_err) == 0) {
        judged = diagnose(&hist, 0, &verdicts) == 0;
    } else {
        memset(&hist, 0, sizeof hist);
        fprintf(stderr, "leakscope run: no verdicts: %s\n", load_err);
    }
    if (tmp_dir[0]) runtmp_remove(tmp_dir);
    const char *off = getenv("LEAKSCOPE_OFF");
    if (l.n == 0 && !(off && *off && strcmp(off, "0") != 0)) {
        /* Say so rather than summarize nothing as "no leak". */
        fprintf(stderr, "leakscope run: no process of this run was traced: the shims never started "
                "in %s (a statically linked program, a setuid one, LD_PRELOAD cleared, or the "
                "loader refused the shim libraries); "
                "no verdict\n", argv[i]);
        seg_list_free(&l);
        diag_list_free(&verdicts);
        history_free(&hist);
        return status ? status : 2;
    }
    if (!quiet) {
        summary_text(stderr, &l, want_fd, want_heap);
        if (judged) {
            double span = hist.nt ? hist.t[hist.nt - 1] - hist.t[0] : 0;
            fputs("\nverdicts (growth over the run's series):\n", stderr);
            if (verdicts.n == 0 && span < 10)
                fprintf(stderr, "none: %.0f s of series, growth needs at least 10 s\n", span);
            else
                diag_text(stderr, &verdicts);
        }
    }
    if (summary) {
        FILE *f = fopen(summary, "w");
        if (!f) {
            fprintf(stderr, "leakscope run: cannot write %s: %s\n", summary, strerror(errno));
        } else {
            summary_json_verdicts(f, &l, want_fd, want_heap, status, judged ? &verdicts : NULL);
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
    diag_list_free(&verdicts);
    history_free(&hist);
    return status;
}

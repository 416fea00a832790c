/* parsers.c - start, watch and restart the parser processes.
 *
 * Parsers are exec'ed afresh rather than forked copies of the fetcher, so
 * they hold none of its sockets and files (a forked copy would show the
 * fetcher's Redis and HTTP descriptors under the parser's pid, the
 * confusion of seed 001). */
#define _GNU_SOURCE
#include "parsers.h"
#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PARSERS 64

static pid_t parser_pids[MAX_PARSERS];
static int parser_count;

static pid_t parsers_spawn(const struct crawler_config *cfg, int id) {
    char idbuf[16], redis[300];
    snprintf(idbuf, sizeof(idbuf), "%d", id);
    snprintf(redis, sizeof(redis), "%s:%d", cfg->redis_host, cfg->redis_port);
    char retry[16];
    snprintf(retry, sizeof(retry), "%d", cfg->redis_retry_s);
    const char *argv[16];
    int argc = 0;
    argv[argc++] = cfg->self_exe;
    argv[argc++] = "--parser-id";
    argv[argc++] = idbuf;
    argv[argc++] = "--redis";
    argv[argc++] = redis;
    argv[argc++] = "--data-dir";
    argv[argc++] = cfg->data_dir;
    argv[argc++] = "--redis-retry";
    argv[argc++] = retry;
    if (cfg->log_file) {
        argv[argc++] = "--log";
        argv[argc++] = cfg->log_file;
    }
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        close_range(3, ~0U, 0);
        signal(SIGPIPE, SIG_DFL);
        /* leakscope's shims label each process's segment with this. */
        setenv("LEAKSCOPE_ROLE", "parser", 1);
        execv(cfg->self_exe, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int parsers_start(const struct crawler_config *cfg) {
    parser_count = cfg->parsers < MAX_PARSERS ? cfg->parsers : MAX_PARSERS;
    for (int i = 0; i < parser_count; i++) {
        parser_pids[i] = parsers_spawn(cfg, i);
        if (parser_pids[i] < 0) return -1;
    }
    return 0;
}

int parsers_check(const struct crawler_config *cfg) {
    int restarted = 0;
    for (int i = 0; i < parser_count; i++) {
        int status;
        if (parser_pids[i] <= 0 || waitpid(parser_pids[i], &status, WNOHANG) != parser_pids[i]) continue;
        if (WIFSIGNALED(status)) log_msg("parser-%d (pid %d) killed by signal %d, restarting", i, parser_pids[i], WTERMSIG(status));
        else log_msg("parser-%d (pid %d) exited with status %d, restarting", i, parser_pids[i], WEXITSTATUS(status));
        parser_pids[i] = parsers_spawn(cfg, i);
        restarted++;
    }
    return restarted;
}

void parsers_signal(int sig) {
    for (int i = 0; i < parser_count; i++)
        if (parser_pids[i] > 0) kill(parser_pids[i], sig);
}

void parsers_stop(void) {
    parsers_signal(SIGTERM);
    for (int i = 0; i < parser_count; i++) {
        if (parser_pids[i] <= 0) continue;
        while (waitpid(parser_pids[i], NULL, 0) < 0 && errno == EINTR) {}
        parser_pids[i] = 0;
    }
}

/* record.h - the recorder loop behind `leakscope record`, also started by
 * `leakscope run --record FILE.db` for the processes of its session. */
#ifndef LKS_RECORD_H
#define LKS_RECORD_H

#include <stddef.h>
#include <sys/types.h>

struct record_opts {
    const char *out;     /* the recording */
    const char *dir;     /* segment directory */
    const char *session; /* only processes of this `run` session, or NULL */
    const char *command; /* stored in meta, or NULL */
    double interval_s, duration_s, idle_after_s; /* duration < 0: until a signal */
    unsigned top_sites;
    int ignore_sigint;  /* run's recorder: the terminal's ^C is for the command */
    const pid_t *pids; /* only these, if npids > 0 */
    size_t npids;
};

/* Samples until duration or SIGINT/SIGTERM/SIGHUP (then one last tick).
 * Returns the exit status: 0, 1 if writing failed, 2 if out cannot be opened. */
int record_loop(const struct record_opts *o);

/* Opens and closes path as a recording, so a caller can refuse bad input
 * before starting anything. Returns 0, or -1 with a message on stderr. */
int record_check_out(const char *path, double interval_s, const char *dir, const char *command);

#endif

/* segdir.h - finding and loading the segments of a directory: all of them,
 * one pid's, or the ones a `leakscope run` session produced. */
#ifndef LKS_SEGDIR_H
#define LKS_SEGDIR_H

#include <stddef.h>
#include <sys/types.h>

#include "segment.h"

struct seg_list {
    struct lks_header **seg; /* owned; free with seg_list_free */
    char **path;
    size_t n;
};

/* The directory the commands use: --dir if given, else lks_segment_dir().
 * Returns 0, or -1 with a message on stderr. */
int segdir_resolve(const char *given, char *buf, size_t len);

/* Loads every valid segment in dir whose session equals session (any
 * session if NULL), sorted by pid. Invalid files are reported on stderr
 * (when verbose) and skipped. Returns 0, or -1 if dir cannot be read. */
int segdir_load(const char *dir, const char *session, int verbose, struct seg_list *out);
void seg_list_free(struct seg_list *l);

/* Path of pid's segment in dir. */
void segdir_path(const char *dir, pid_t pid, char *buf, size_t len);

#endif

/* segdir.h - finding and reading the segments of a directory, for every
 * command that reads more than one (ls, run's summary, serve, record).
 *
 * Contract: the directory must be ours and not writable by others
 * (lks_segment_dir_check); every file is opened with lks_open_regular and
 * refused unless it is a valid segment owned by us, root included. Listing
 * reads only each segment's head (a few KiB); full copies are loaded only for
 * the segments asked for. Dead segments are removed by segdir_sweep under the
 * policy of docs/SEGMENTS.md.
 */
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

/* The directory the commands use: --dir if given, else lks_segment_dir(),
 * made absolute. Returns 0, or -1 with a message on stderr. */
int segdir_resolve(const char *given, char *buf, size_t len);

/* Called once per valid segment of a scan, in directory order; head is valid
 * only during the call. Return 0 to go on, non-zero to stop the scan. */
typedef int (*segdir_fn)(const char *path, const struct lks_segment_head *head, void *arg);

/* Reads the head of every segment in dir and calls fn for each valid one.
 * Files that are refused are reported on stderr (when verbose) and skipped.
 * Returns the number of segments passed to fn, or -1 with errno set and a
 * message in err if dir itself cannot be read (ENOENT: it does not exist). */
long segdir_scan(const char *dir, int verbose, segdir_fn fn, void *arg, char *err,
                 size_t errlen);

/* Loads full private copies of every valid segment in dir whose session
 * equals session (any session if NULL), sorted by pid. Sessions are matched
 * on the head, so other segments cost a few KiB each. Returns 0, or -1 with
 * errno set and a message in err if dir cannot be read. */
int segdir_load(const char *dir, const char *session, int verbose, struct seg_list *out,
                char *err, size_t errlen);
void seg_list_free(struct seg_list *l);

/* Removes the dead segments of dir (lks_segment_dir_sweep with the grace
 * period of $LEAKSCOPE_SEGMENT_GRACE). Returns how many were removed. */
int segdir_sweep(const char *dir);

/* Path of pid's segment in dir. */
void segdir_path(const char *dir, pid_t pid, char *buf, size_t len);

#endif

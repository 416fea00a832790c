/* runtmp.h - the temporary recording of a `leakscope run` without --record.
 *
 * It lives in /tmp/leakscope-run-<pid>-<start>-XXXXXX, named after the run
 * (its pid and /proc start time), so that a later run or `ls` can tell the
 * leftovers of a run that was killed outright from a live run's recording
 * and remove them. Policy: docs/RECORDING.md.
 */
#ifndef LKS_RUNTMP_H
#define LKS_RUNTMP_H

#include <stddef.h>

/* Creates this run's directory (0700) and puts its path in buf. Returns 0,
 * or -1 with errno set. */
int runtmp_create(char *buf, size_t len);

/* Removes a run's directory: the recording's files, then the directory. */
void runtmp_remove(const char *dir);

/* Removes the directories of this user's runs that are gone and whose
 * recording has not been written for the grace period
 * ($LEAKSCOPE_SEGMENT_GRACE, default 300 s). Returns how many. */
int runtmp_sweep(void);

#endif

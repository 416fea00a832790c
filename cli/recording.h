/* recording.h - writing a recording: the SQLite database of
 * docs/RECORDING.md, one transaction per tick, WAL so it can be read while
 * written and survives a kill of the writer with every committed tick.
 */
#ifndef LKS_RECORDING_H
#define LKS_RECORDING_H

#include <stddef.h>

#include "series.h"

struct recording;

/* Opens (creating, mode 0600) or reopens path for appending. Refuses, with
 * a message in err, a file that cannot be written, is not a SQLite database
 * or is a database of something else. meta_* are stored in the meta table
 * (NULL values are skipped). */
struct recording *recording_open(const char *path, double interval_s, double idle_after_s,
                                 unsigned top_sites, const char *segment_dir,
                                 const char *command, char *err, size_t errlen);

/* Appends one tick: every process of the round (with its start/exit events)
 * and the exits of processes that vanished since the last tick. Returns 0,
 * or -1 with a message in err (the tick is then rolled back). */
int recording_tick(struct recording *r, const struct series_round *round, double t,
                   double scan_ms, char *err, size_t errlen);

/* Checkpoints the WAL and closes. */
void recording_close(struct recording *r);

#endif

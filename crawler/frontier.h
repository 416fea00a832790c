/* frontier.h - per-domain frontier files: data_dir/frontiers/<xx>/<domain>.frontier.
 *
 * One line per discovered URL: "URL\n", or "URL\t<redirect hops>\n" for a
 * redirect's target. Parsers append; the fetcher reads from an offset kept
 * in Redis and only consumes complete lines. */
#ifndef CRAWLER_FRONTIER_H
#define CRAWLER_FRONTIER_H

#include <stddef.h>
#include <stdint.h>

/* Descriptors this process holds on frontier files right now, and open
 * failures (all, and those that were EMFILE/ENFILE). */
extern long frontier_files_open;
extern long frontier_open_errors;
extern long frontier_open_emfile;

/* Write the file's path into out. Returns 0, -1 when it does not fit. */
int frontier_path(const char *data_dir, const char *domain, char *out, size_t outlen);

/* Append data (whole lines) to the domain's frontier, creating directories
 * and file as needed, in one write so that concurrent appenders never
 * interleave lines. On success stores the file offset just past the data in
 * *end and returns 0; returns -1 with errno set on failure. */
int frontier_append(const char *data_dir, const char *domain, const char *data, size_t len, uint64_t *end);

/* Read complete lines of the domain's frontier starting at offset and not
 * past size into buf. Returns the number of bytes (ending with '\n'), 0
 * when no complete line is available, -1 on error with errno set. */
long frontier_read_batch(const char *data_dir, const char *domain, uint64_t offset, uint64_t size,
                         char *buf, size_t cap);

/* Split one frontier line (without its '\n', NUL-terminated in place) into
 * URL and redirect hops. */
void frontier_parse_line(char *line, const char **url, int *hops);

#endif

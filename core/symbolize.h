/* symbolize.h - turns a segment's raw return addresses into "function
 * (file:line) [module]" strings. Reader side only: the shims never
 * symbolize. Uses the module table recorded in the segment, so it works after
 * the traced process has exited, as long as its binaries are still on disk.
 */
#ifndef LKS_SYMBOLIZE_H
#define LKS_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

#include "segment.h"

struct lks_symbolizer;

/* Creates a symbolizer for one validated segment (which must outlive it).
 * Returns NULL only when out of memory. */
struct lks_symbolizer *lks_symbolizer_new(struct lks_header *seg);
void lks_symbolizer_free(struct lks_symbolizer *s);

/* Describes one frame of a site into buf, e.g.
 * "frontier_read_batch (crawler/frontier.c:88) [leakscope-crawler]", or
 * "0x7f12... [libfoo.so]" when no symbol exists. Returns buf. */
const char *lks_symbolize_frame(struct lks_symbolizer *s, uint64_t addr, uint16_t module,
                                char *buf, size_t len);

/* Just the function name of a frame, or NULL. Valid until the next call. */
const char *lks_symbolize_func(struct lks_symbolizer *s, uint64_t addr, uint16_t module);

/* Frame f (0 = innermost) of a site, native or interpreter ("func
 * (file.py:12) [python]"), into buf. Returns buf. */
const char *lks_symbolize_site_frame(struct lks_symbolizer *s, const struct lks_site *site,
                                     int f, char *buf, size_t len);

/* Function name of frame f of a site, or NULL. Valid until the next call. */
const char *lks_symbolize_site_func(struct lks_symbolizer *s, const struct lks_site *site, int f);

/* The frame a person should look at: the first one with a symbol in the
 * program itself (e.g. "redis_pool_acquire (redis_pool.c:61) [crawler]"
 * rather than libhiredis internals), else the first outside the C library,
 * the loader and leakscope, else the first frame. Returns buf. */
const char *lks_symbolize_headline(struct lks_symbolizer *s, const struct lks_site *site,
                                   char *buf, size_t len);

#endif

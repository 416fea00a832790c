/* aggregate.h - turning the private allocation table into what readers see.
 *
 * A low-priority background thread walks the table about once a second (and
 * within 50 ms of a mark or refresh request from a reader) and writes the
 * heap area (heapseg.h): live bytes by age per subsystem, oldest live
 * allocation per site, the largest live allocations, since-mark totals. It
 * also publishes the per-thread counters into the segment. The exit
 * destructor and an in-process mark run the same aggregation synchronously.
 */
#ifndef MEMTRACK_AGGREGATE_H
#define MEMTRACK_AGGREGATE_H

#include <stdint.h>

#include "segment.h"

/* The current mark generation; allocations record its low 16 bits. */
extern _Atomic uint32_t g_mark_gen;

/* Milliseconds since the shim's clock epoch (coarse monotonic clock). */
uint32_t heap_clock_ms(void);

/* Prepares the heap area of h (if large enough) and scratch memory. */
int aggregate_init(struct lks_header *h);

/* Starts the background thread (again, in a forked child). */
void aggregator_start(void);

/* Aggregates now. final: from the exit destructor; the segment's counters
 * are kept exact from then on. */
void aggregate_now(struct lks_header *h, int final);

/* After aggregate_now(h, 1): every change is published at once. */
extern _Atomic int g_final;

/* Around fork: the aggregation lock is held so the child never inherits it
 * taken; in the child it is re-created, and nothing is written until the
 * child has a segment of its own (aggregate_child_segment, which takes no
 * lock; the next tick publishes the child's counters into it). */
void aggregate_fork_prepare(void);
void aggregate_fork_parent(void);
void aggregate_fork_child(void);
void aggregate_child_segment(struct lks_header *h);

/* Records a double free in the heap area (sites are index + 1). */
void aggregate_note_double_free(uint64_t addr, uint64_t size, uint32_t subsys,
                                uint32_t alloc_site, uint32_t first_free_site,
                                uint32_t second_free_site);

/* Counters of the shim's own events, in the heap area when there is one. */
enum heap_event { EV_UNKNOWN_FREE, EV_FAILED_ALLOC, EV_UNTRACKED_ALLOC, EV_TABLE_FULL };
void aggregate_count(enum heap_event ev);

#endif

/* report_html.h - a judged recording as one static HTML page: no scripts,
 * no network fetches, charts drawn as inline SVG. Verdicts first (each with
 * the chart of its series and its call sites), then per process: descriptors
 * by subsystem with the limit, idle sockets, live heap by subsystem, the age
 * of the live heap, and the top call sites with their frames. */
#ifndef LKS_REPORT_HTML_H
#define LKS_REPORT_HTML_H

#include <stdio.h>

#include "diagnose.h"
#include "history.h"

void report_html(FILE *out, const char *recording, const struct history *h,
                 const struct diag_list *l);

/* The JSON document `report --json` writes (report.c). */
void report_json(FILE *out, const char *recording, const struct history *h,
                 const struct diag_list *l);

#endif

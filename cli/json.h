/* json.h - the little JSON output the CLI needs: escaped strings. Callers
 * write the structure themselves with fprintf. */
#ifndef LKS_JSON_H
#define LKS_JSON_H

#include <stdio.h>

/* Writes s as a JSON string literal, quotes included. NULL writes null. */
void json_string(FILE *out, const char *s);

struct lks_symbolizer;
struct lks_site;

/* Writes a site's frames as a JSON array of "function (file:line) [module]"
 * strings. */
void json_site_frames(FILE *out, struct lks_symbolizer *sym, const struct lks_site *site);

#endif

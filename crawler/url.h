/* url.h - URL normalization (RFC 3986) on top of libcurl's URL API. */
#ifndef CRAWLER_URL_H
#define CRAWLER_URL_H

#include <curl/curl.h>
#include <stddef.h>

/* Longest URL the crawler keeps; longer links are dropped. */
#define URL_MAX_LEN 2048

/* Resolve href against base (base may be NULL when href is absolute) and
 * normalize: lower-case scheme and host, no default port, no dot segments,
 * no fragment, percent-encodings upper-cased and unreserved ones decoded.
 * Only http and https are accepted. Returns a malloc'ed string the caller
 * frees, or NULL when the link is not a crawlable URL. */
char *url_normalize(const char *base, const char *href);

/* The same for the many links of one page: parse the base once with
 * url_base_parse (NULL when invalid; release with curl_url_cleanup), then
 * url_resolve each link against it. */
CURLU *url_base_parse(const char *base);
char *url_resolve(CURLU *base, const char *href);

/* Copy the authority used as the crawl domain (host, plus ":port" when the
 * port is not the scheme's default) of a normalized URL into out.
 * Returns 0, or -1 when it does not fit or the URL is not absolute. */
int url_domain(const char *url, char *out, size_t outlen);

/* Pointer to the path (with query) of a normalized URL, "/" at least. */
const char *url_path(const char *url);

#endif

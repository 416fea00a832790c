/* url.c - URL normalization.
 *
 * Every URL the crawler stores, deduplicates or fetches goes through
 * url_normalize, so that two spellings of one resource (host case, ":80",
 * "./" and "../", "#fragment", "%7e" vs "~") are one entry in the seen set.
 * libcurl's URL API does the parsing, relative resolution and dot-segment
 * removal; this file adds what it leaves out. */
#include "url.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

static int is_unreserved(int c) {
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Upper-case the hex digits of percent-encodings and decode the ones that
 * encode unreserved characters (RFC 3986 6.2.2.1 and 6.2.2.2), in place. */
static void normalize_percent(char *s) {
    static const char hex[] = "0123456789ABCDEF";
    char *out = s;
    while (*s) {
        if (s[0] == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
            int c = hexval(s[1]) * 16 + hexval(s[2]);
            if (is_unreserved(c)) {
                *out++ = (char)c;
            } else {
                *out++ = '%';
                *out++ = hex[c >> 4];
                *out++ = hex[c & 15];
            }
            s += 3;
        } else {
            *out++ = *s++;
        }
    }
    *out = '\0';
}

/* Skip leading and trailing blanks of an href as browsers do. */
static char *trimmed_copy(const char *href) {
    while (*href && isspace((unsigned char)*href)) href++;
    size_t len = strlen(href);
    while (len > 0 && isspace((unsigned char)href[len - 1])) len--;
    char *copy = malloc(len + 1);
    if (!copy) return NULL;
    memcpy(copy, href, len);
    copy[len] = '\0';
    return copy;
}

/* Set link on u (which holds the base, or nothing) and normalize. */
static char *normalize_into(CURLU *u, const char *href) {
    char *result = NULL;
    char *link = trimmed_copy(href);
    if (!link || link[0] == '\0') goto out;
    if (curl_url_set(u, CURLUPART_URL, link, CURLU_URLENCODE) != CURLUE_OK) goto out;

    char *scheme = NULL;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) goto out;
    int ok = strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0;
    curl_free(scheme);
    if (!ok) goto out;

    char *host = NULL;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) goto out;
    for (char *p = host; *p; p++) *p = (char)tolower((unsigned char)*p);
    if (host[0] && host[strlen(host) - 1] == '.') host[strlen(host) - 1] = '\0';
    CURLUcode rc = curl_url_set(u, CURLUPART_HOST, host, 0);
    curl_free(host);
    if (rc != CURLUE_OK) goto out;

    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
    curl_url_set(u, CURLUPART_USER, NULL, 0);
    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);

    char *full = NULL;
    if (curl_url_get(u, CURLUPART_URL, &full, CURLU_NO_DEFAULT_PORT) != CURLUE_OK) goto out;
    if (strlen(full) < URL_MAX_LEN) {
        result = strdup(full);
        if (result) normalize_percent(result);
    }
    curl_free(full);
out:
    free(link);
    return result;
}

CURLU *url_base_parse(const char *base) {
    CURLU *u = curl_url();
    if (u && curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK) {
        curl_url_cleanup(u);
        return NULL;
    }
    return u;
}

char *url_resolve(CURLU *base, const char *href) {
    CURLU *u = curl_url_dup(base);
    if (!u) return NULL;
    char *result = normalize_into(u, href);
    curl_url_cleanup(u);
    return result;
}

char *url_normalize(const char *base, const char *href) {
    CURLU *u = base ? url_base_parse(base) : curl_url();
    if (!u) return NULL;
    char *result = normalize_into(u, href);
    curl_url_cleanup(u);
    return result;
}

int url_domain(const char *url, char *out, size_t outlen) {
    const char *p = strstr(url, "://");
    if (!p) return -1;
    p += 3;
    size_t len = strcspn(p, "/?#");
    if (len == 0 || len >= outlen) return -1;
    memcpy(out, p, len);
    out[len] = '\0';
    return 0;
}

const char *url_path(const char *url) {
    const char *p = strstr(url, "://");
    if (!p) return "/";
    p += 3;
    p += strcspn(p, "/?");
    return *p ? p : "/";
}

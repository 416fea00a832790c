/* inject.c - names of the injectable leaks. The leaks themselves live at
 * their call sites (fetcher.c, frontier.c, redis_pool.c), each behind a
 * test of inject_mode, so that a diagnosis points at a real function. */
#include "inject.h"

#include <string.h>

enum inject_mode inject_mode = INJECT_NONE;

static const char *names[] = {
    [INJECT_NONE] = "none",
    [INJECT_RETAIN_PAGES] = "retain-pages",
    [INJECT_REDIS_POOL_GROWTH] = "redis-pool-growth",
    [INJECT_FRONTIER_FD] = "frontier-fd",
    [INJECT_HTTP_UNBOUNDED] = "http-unbounded",
    [INJECT_CURL_HANDLE] = "curl-handle",
};

int inject_parse(const char *name) {
    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

const char *inject_name(enum inject_mode mode) {
    return names[mode];
}

/* json.c - JSON string escaping (RFC 8259): quotes, backslash and control
 * characters; bytes >= 0x80 pass through, invalid UTF-8 becomes U+FFFD. */
#include "json.h"

#include "symbolize.h"

void json_string(FILE *out, const char *s) {
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc((int)c, out);
        } else if (c < 0x20) {
            fprintf(out, "\\u%04x", c);
        } else if (c < 0x80) {
            fputc((int)c, out);
        } else {
            int n = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
            int ok = n > 0;
            for (int i = 1; ok && i <= n; i++) ok = (p[i] & 0xc0) == 0x80;
            if (!ok) {
                fputs("\\ufffd", out);
                continue;
            }
            fwrite(p, 1, (size_t)n + 1, out);
            p += n;
        }
    }
    fputc('"', out);
}

void json_site_frames(FILE *out, struct lks_symbolizer *sym, const struct lks_site *site) {
    char buf[512];
    fputc('[', out);
    for (int f = 0; sym && f < site->nframes && f < LKS_MAX_FRAMES; f++) {
        if (f) fputc(',', out);
        json_string(out, lks_symbolize_site_frame(sym, site, f, buf, sizeof buf));
    }
    fputc(']', out);
}

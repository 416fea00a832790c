/* test_segment.c - segments are created private, and readers refuse
 * anything truncated, foreign or corrupt with a message, never a crash. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "segment.h"

static char dir[128], path[256];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/lks-segtest-XXXXXX");
    cr_assert(mkdtemp(dir));
    chmod(dir, 0700);
    snprintf(path, sizeof path, "%s/4242.seg", dir);
}

static void teardown(void) {
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) cr_log_warn("cannot remove %s", dir);
}

TestSuite(segment, .init = setup, .fini = teardown);

static struct lks_header *create(void) {
    char err[256];
    struct lks_header *h = lks_segment_create(dir, 4242, 1024, 256, 4096, err, sizeof err);
    cr_assert(h, "%s", err);
    return h;
}

/* Rewrites the file with `mutate` applied to a copy of its bytes. */
static void rewrite(void (*mutate)(unsigned char *, size_t *)) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    size_t len = (size_t)st.st_size;
    unsigned char *buf = malloc(len + 64);
    cr_assert(read(fd, buf, len) == (ssize_t)len);
    close(fd);
    mutate(buf, &len);
    fd = open(path, O_WRONLY | O_TRUNC);
    cr_assert(write(fd, buf, len) == (ssize_t)len);
    close(fd);
    free(buf);
}

static void expect_refused(const char *want) {
    char err[256] = "";
    struct lks_header *h = lks_segment_load(path, err, sizeof err);
    cr_expect_null(h, "accepted a bad segment");
    cr_expect(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
    lks_segment_free(h);
}

Test(segment, created_private_and_loads_back) {
    struct lks_header *h = create();
    lks_subsys_table(h)[3].fd_open = 7;
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600);
    char err[256];
    struct lks_header *c = lks_segment_load(path, err, sizeof err);
    cr_assert(c, "%s", err);
    cr_expect_eq(c->pid, 4242);
    cr_expect_eq(c->fds_cap, 1024);
    cr_expect_eq(lks_subsys_table(c)[3].fd_open, 7);
    lks_segment_free(c);
    lks_segment_unmap(h, h->total_size);
}

Test(segment, recreate_never_truncates_a_readers_copy) {
    struct lks_header *h = create();
    struct stat before, after;
    stat(path, &before);
    struct lks_header *h2 = create();
    stat(path, &after);
    cr_expect_neq(before.st_ino, after.st_ino, "a new file, not the old one truncated");
    cr_expect_eq(memcmp(h->magic, LKS_MAGIC, 8), 0, "old mapping still valid");
    lks_segment_unmap(h, h->total_size);
    lks_segment_unmap(h2, h2->total_size);
}

static void truncate_half(unsigned char *b, size_t *len) {
    (void)b;
    *len /= 2;
}
static void truncate_header(unsigned char *b, size_t *len) {
    (void)b;
    *len = 17;
}
static void bad_magic(unsigned char *b, size_t *len) {
    (void)len;
    memcpy(b, "NOTASEGM", 8);
}
static void bad_version(unsigned char *b, size_t *len) {
    (void)len;
    ((struct lks_header *)b)->version = 99;
}
static void bad_offset(unsigned char *b, size_t *len) {
    (void)len;
    ((struct lks_header *)b)->fds_off = (uint64_t)1 << 40;
}
static void bad_capacity(unsigned char *b, size_t *len) {
    (void)len;
    ((struct lks_header *)b)->sites_cap = 1000; /* not a power of two */
}
static void huge_capacity(unsigned char *b, size_t *len) {
    (void)len;
    ((struct lks_header *)b)->fds_cap = 1u << 23;
}
static void bad_counts(unsigned char *b, size_t *len) {
    (void)len;
    ((struct lks_header *)b)->subsys_used = 1000;
}
static void garbage_strings(unsigned char *b, size_t *len) {
    (void)len;
    struct lks_header *h = (struct lks_header *)b;
    memset(h->comm, 'A', sizeof h->comm);
    memset(h->exe, 'B', sizeof h->exe);
    struct lks_site *s = lks_site_table(h);
    s[0].nframes = 60000;
    s[0].subsys = 60000;
    s[0].frame[0] = 0xfffffff0u;
    lks_frame_table(h)[0].module = 9999;
    lks_frame_table(h)[0].func = 0xfffffff0u;
    memset(lks_string_area(h), 'C', h->strings_size);
}

Test(segment, refuses_truncated) {
    lks_segment_unmap(create(), 0);
    rewrite(truncate_half);
    expect_refused("truncated");
    rewrite(truncate_header);
    expect_refused("truncated");
}

Test(segment, refuses_foreign_and_corrupt) {
    struct lks_header *h = create();
    size_t total = h->total_size;
    lks_segment_unmap(h, total);
    rewrite(bad_magic);
    expect_refused("not a leakscope segment");
    lks_segment_unmap(create(), total);
    rewrite(bad_version);
    expect_refused("version 99");
    lks_segment_unmap(create(), total);
    rewrite(bad_offset);
    expect_refused("do not match its capacities");
    lks_segment_unmap(create(), total);
    rewrite(bad_capacity);
    expect_refused("capacities");
    lks_segment_unmap(create(), total);
    rewrite(huge_capacity);
    expect_refused("capacities");
    lks_segment_unmap(create(), total);
    rewrite(bad_counts);
    expect_refused("counts out of range");
}

Test(segment, sanitizes_strings_and_indices) {
    struct lks_header *h = create();
    size_t total = h->total_size;
    lks_segment_unmap(h, total);
    rewrite(garbage_strings);
    char err[256];
    struct lks_header *c = lks_segment_load(path, err, sizeof err);
    cr_assert(c, "%s", err);
    cr_expect_eq(strlen(c->comm), sizeof c->comm - 1);
    cr_expect_eq(strlen(c->exe), sizeof c->exe - 1);
    cr_expect_leq(lks_site_table(c)[0].nframes, LKS_MAX_FRAMES);
    cr_expect_eq(lks_site_table(c)[0].subsys, LKS_SUBSYS_OTHER);
    cr_expect_eq(lks_site_table(c)[0].frame[0], 0);
    cr_expect_eq(lks_frame_table(c)[0].module, LKS_NO_MODULE);
    cr_expect_eq(lks_frame_table(c)[0].func, 0);
    cr_expect_eq(strlen(lks_string(c, 1)), c->strings_size - 2);
    lks_segment_free(c);
}

Test(segment, refuses_missing_symlink_and_non_files) {
    char err[256];
    cr_expect_null(lks_segment_load("/nonexistent/1.seg", err, sizeof err));
    cr_expect(strstr(err, "No such file") != NULL, "%s", err);
    cr_expect_null(lks_segment_load(dir, err, sizeof err));
    cr_expect(strstr(err, "not a regular file") != NULL, "%s", err);
    char link[300];
    lks_segment_unmap(create(), 0);
    snprintf(link, sizeof link, "%s/link.seg", dir);
    cr_assert_eq(symlink(path, link), 0);
    cr_expect_null(lks_segment_load(link, err, sizeof err), "symlinks are not followed");
}

Test(segment, directory_must_be_private) {
    char err[256];
    cr_expect_eq(lks_segment_dir_prepare(dir, err, sizeof err), 0, "%s", err);
    chmod(dir, 0755);
    cr_expect_eq(lks_segment_dir_prepare(dir, err, sizeof err), -1);
    cr_expect(strstr(err, "0700") != NULL, "%s", err);
    char sub[200];
    snprintf(sub, sizeof sub, "%s/new", dir);
    cr_expect_eq(lks_segment_dir_prepare(sub, err, sizeof err), 0, "%s", err);
    struct stat st;
    stat(sub, &st);
    cr_expect_eq(st.st_mode & 0777, 0700);
    char file[200];
    snprintf(file, sizeof file, "%s/4242.seg", dir);
    lks_segment_unmap(create(), 0);
    cr_expect_eq(lks_segment_dir_prepare(file, err, sizeof err), -1);
}

Test(segment, process_liveness_uses_start_time) {
    struct lks_header *h = create();
    h->pid = getpid();
    h->proc_start_ticks = lks_proc_start_ticks(getpid());
    cr_expect(lks_segment_process_alive(h));
    h->proc_start_ticks += 1; /* a different process with a reused pid */
    cr_expect(!lks_segment_process_alive(h));
    lks_segment_unmap(h, h->total_size);
}

Test(names, errno_and_kind_tables) {
    cr_expect_str_eq(lks_errno_slot_name(lks_errno_slot(24)), "EMFILE");
    cr_expect_str_eq(lks_errno_slot_name(lks_errno_slot(23)), "ENFILE");
    cr_expect_str_eq(lks_errno_slot_name(lks_errno_slot(5)), "OTHER");
    cr_expect_str_eq(lks_errno_slot_name(-3), "OTHER");
    for (int k = 0; k < LKS_KIND_COUNT; k++)
        cr_expect_eq(lks_kind_from_name(lks_kind_name(k)), k);
    cr_expect_eq(lks_kind_from_name("nonsense"), -1);
}

static void json_of(const char *in, char *out, size_t len) {
    FILE *f = fmemopen(out, len, "w");
    json_string(f, in);
    fclose(f);
}

Test(json, escapes_control_quotes_and_bad_utf8) {
    char out[128];
    json_of("a\"b\\c\n\x01", out, sizeof out);
    cr_expect_str_eq(out, "\"a\\\"b\\\\c\\u000a\\u0001\"");
    json_of("caf\xc3\xa9", out, sizeof out);
    cr_expect_str_eq(out, "\"caf\xc3\xa9\"");
    json_of("bad\xff\xc3", out, sizeof out);
    cr_expect_str_eq(out, "\"bad\\ufffd\\ufffd\"");
    json_of(NULL, out, sizeof out);
    cr_expect_str_eq(out, "null");
}

/* Unit tests of the frontier file format: appends from several writers,
 * reads of complete lines only, the offset/size contract. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frontier.h"

static char dir[] = "/tmp/leakscope-frontier-test.XXXXXX";

static void setup(void) {
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(frontier, .init = setup, .fini = teardown);

Test(frontier, path_layout) {
    char path[512];
    cr_assert_eq(frontier_path("/data", "h1.example", path, sizeof(path)), 0);
    cr_expect(strncmp(path, "/data/frontiers/", 16) == 0);
    cr_expect(strstr(path, "/h1.example.frontier") != NULL);
    cr_expect_eq(strlen(path), strlen("/data/frontiers/xx/h1.example.frontier"));
}

Test(frontier, append_and_read_complete_lines) {
    uint64_t end1, end2;
    const char *a = "http://h1.example/a\nhttp://h1.example/b\t2\n";
    cr_assert_eq(frontier_append(dir, "h1.example", a, strlen(a), &end1), 0);
    cr_expect_eq(end1, strlen(a));
    cr_assert_eq(frontier_append(dir, "h1.example", "http://h1.example/c\n", 20, &end2), 0);
    cr_expect_eq(end2, end1 + 20);
    cr_expect_eq(frontier_files_open, 0);

    char buf[256];
    long n = frontier_read_batch(dir, "h1.example", 0, end2, buf, sizeof(buf) - 1);
    cr_assert_eq(n, (long)end2);
    /* size in the middle of a line: only the complete line before it */
    n = frontier_read_batch(dir, "h1.example", 0, 25, buf, sizeof(buf) - 1);
    cr_assert_eq(n, 20);
    buf[n - 1] = '\0';
    const char *url;
    int hops;
    frontier_parse_line(buf, &url, &hops);
    cr_expect_str_eq(url, "http://h1.example/a");
    cr_expect_eq(hops, 0);
    n = frontier_read_batch(dir, "h1.example", 20, end2, buf, sizeof(buf) - 1);
    cr_assert_gt(n, 0);
    buf[strchr(buf, '\n') - buf] = '\0';
    frontier_parse_line(buf, &url, &hops);
    cr_expect_str_eq(url, "http://h1.example/b");
    cr_expect_eq(hops, 2);
    cr_expect_eq(frontier_read_batch(dir, "h1.example", end2, end2, buf, sizeof(buf)), 0);
    cr_expect_eq(frontier_files_open, 0);
}

Test(frontier, missing_file_is_an_error) {
    char buf[64];
    cr_expect_eq(frontier_read_batch(dir, "nowhere.example", 0, 10, buf, sizeof(buf)), -1);
    cr_expect_gt(frontier_open_errors, 0);
}

/* Four processes appending at once never interleave lines. */
Test(frontier, concurrent_appenders) {
    for (int p = 0; p < 4; p++) {
        if (fork() == 0) {
            char line[128];
            for (int i = 0; i < 500; i++) {
                int len = snprintf(line, sizeof(line), "http://h2.example/%d/%d/%s\n", p, i,
                                   "padding-padding-padding-padding-padding");
                uint64_t end;
                if (frontier_append(dir, "h2.example", line, (size_t)len, &end) != 0) _exit(1);
            }
            _exit(0);
        }
    }
    for (int p = 0; p < 4; p++) {
        int status;
        wait(&status);
        cr_assert_eq(WEXITSTATUS(status), 0);
    }
    char path[512];
    frontier_path(dir, "h2.example", path, sizeof(path));
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[256];
    int lines = 0;
    while (fgets(line, sizeof(line), f)) {
        int p, i;
        char pad[64];
        cr_assert_eq(sscanf(line, "http://h2.example/%d/%d/%63s", &p, &i, pad), 3, "torn line: %s", line);
        lines++;
    }
    fclose(f);
    cr_expect_eq(lines, 2000);
}

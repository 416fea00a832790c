/* main.c - the `leakscope` command: dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "heap_report.h"

struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
};

static const struct command commands[] = {
    {"run", cmd_run, "run a command under the shims and summarize its leaks"},
    {"ls", cmd_ls, "list traced processes in the segment directory"},
    {"show", cmd_show, "summarize traced processes by pid, live"},
    {"mark", cmd_mark, "set a heap reference point in a traced process"},
    {"diff", cmd_diff, "show what was allocated since the mark and is still live"},
    {"serve", cmd_serve, "export traced processes as Prometheus metrics"},
};

static void usage(FILE *out) {
    fputs("usage: leakscope COMMAND [ARGS...]\n\ncommands:\n", out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-6s %s\n", commands[i].name, commands[i].help);
    fputs("\nRun 'leakscope COMMAND --help' for a command's options.\n", out);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "leakscope: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}

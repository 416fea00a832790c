/* commands.h - the leakscope subcommands. Each takes its own argv (argv[0]
 * is the subcommand name) and returns the process exit status. */
#ifndef LKS_COMMANDS_H
#define LKS_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_record(int argc, char **argv);

#endif

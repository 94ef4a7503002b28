/* Command groups. Each takes the arguments after its own name (argv[0] is the
 * group name) and the config path, and returns the process exit code:
 * 0 success, 1 runtime error, 2 usage or config error (one line on stderr). */
#ifndef TG_CLI_CLI_H
#define TG_CLI_CLI_H

#include "config/config.h"
#include "store/store.h"

#define TG_EXIT_OK      0
#define TG_EXIT_RUNTIME 1
#define TG_EXIT_USAGE   2

int tg_cli_serve(int argc, char **argv, const char *config_path);
int tg_cli_tenant(int argc, char **argv, const char *config_path);
int tg_cli_key(int argc, char **argv, const char *config_path);
int tg_cli_usage(int argc, char **argv, const char *config_path);

/* Loads the config and opens its store; on failure prints one line and returns
 * the exit code (2 for a config error, 1 for a store error). */
int tg_cli_open(const char *config_path, tg_config_t **cfg, tg_store_t **store);

#endif

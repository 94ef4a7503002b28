/* What every store-using command does first: load the config, open its store.
 * Errors are printed here, as the one stderr line the command owes the user,
 * so a command only has to return the exit code it is given. */
#include <stdio.h>

#include "cli/cli.h"

int tg_cli_open(const char *config_path, tg_config_t **cfg, tg_store_t **store)
{
    tg_err_t err = {{0}};
    *cfg = NULL;
    *store = NULL;
    if (tg_config_load(config_path, cfg, &err) != 0) {
        fprintf(stderr, "tollgate: %s\n", err.msg);
        return TG_EXIT_USAGE;
    }
    if (tg_store_open((*cfg)->store, store, &err) != 0) {
        fprintf(stderr, "tollgate: %s\n", err.msg);
        tg_config_unref(*cfg);
        *cfg = NULL;
        return TG_EXIT_RUNTIME;
    }
    return TG_EXIT_OK;
}

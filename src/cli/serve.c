/* `tollgate serve`: runs the gateway (src/gateway/server.c). */
#include <stdio.h>

#include "cli/cli.h"
#include "gateway/server.h"

int tg_cli_serve(int argc, char **argv, const char *config_path)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "tollgate: serve takes no arguments (besides -c FILE)\n");
        return TG_EXIT_USAGE;
    }
    return tg_server_run(config_path);
}

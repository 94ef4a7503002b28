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
/* Tokens of the admin API (admintok.c, docs/admin-api.md). */
int tg_cli_admin_token(int argc, char **argv, const char *config_path);
/* Admission policy (limit.c, pause.c, ip.c): each change bumps the store's
 * policy_version, which a running gateway polls. */
int tg_cli_limit(int argc, char **argv, const char *config_path);
int tg_cli_pause(int argc, char **argv, const char *config_path);  /* also `pause list` */
int tg_cli_resume(int argc, char **argv, const char *config_path); /* in pause.c */
int tg_cli_ip(int argc, char **argv, const char *config_path);
/* AI metering (price.c, budget.c, tool.c): prices, budgets and tool rules are policy
 * too, and bump policy_version like limits. */
int tg_cli_price(int argc, char **argv, const char *config_path);
int tg_cli_budget(int argc, char **argv, const char *config_path);
int tg_cli_tool(int argc, char **argv, const char *config_path);
/* Alarms (alarms.c): list, history, export-rules (not test: the notifiers' own). */
int tg_cli_alarms(int argc, char **argv, const char *config_path);
/* `alarms test NAME` (alarms_test.c): a sample notice through every notifier, synchronously. */
int tg_cli_alarms_test(int argc, char **argv, const char *config_path);
/* Plans and invoices (plan.c, invoice.c, export.c; docs/billing.md): not policy, nothing
 * the gateway reads. `tenant set-plan` is handed to plan.c by tenant.c. */
int tg_cli_plan(int argc, char **argv, const char *config_path);
int tg_cli_tenant_set_plan(int argc, char **argv, const char *config_path);
int tg_cli_invoice(int argc, char **argv, const char *config_path);
int tg_cli_export(int argc, char **argv, const char *config_path);
/* Read-only SQL and the reports (query.c), backup, restore and archive (backup.c). */
int tg_cli_query(int argc, char **argv, const char *config_path);
int tg_cli_report(int argc, char **argv, const char *config_path);
int tg_cli_backup(int argc, char **argv, const char *config_path);
int tg_cli_restore(int argc, char **argv, const char *config_path);
int tg_cli_kek(int argc, char **argv, const char *config_path);
int tg_cli_archive(int argc, char **argv, const char *config_path);
/* `store copy` (store.c): every row of a store into a new one of either backend. */
int tg_cli_store(int argc, char **argv, const char *config_path);

/* `ingest` (ingest.c): access logs (CloudFront, API Gateway, CLF, tollgate's own) into
 * usage events, each record counted once however often its file is ingested. */
int tg_cli_ingest(int argc, char **argv, const char *config_path);

/* The audit trail (audit.c, docs/audit.md): `audit verify|export|purge`; `tenant erase ID`
 * (handed over by tenant.c); and the wrapper main.c runs every group that changes
 * something through, which records each successful change as an admin record (actor,
 * action, object, the rows before and after). */
int tg_cli_audit(int argc, char **argv, const char *config_path);
int tg_cli_tenant_erase(int argc, char **argv, const char *config_path);
int tg_cli_audited(int (*run)(int, char **, const char *), int argc, char **argv,
                   const char *config_path);

/* Loads the config and opens its store; on failure prints one line and returns
 * the exit code (2 for a config error, 1 for a store error). In common.c,
 * with the helpers of common.h. */
int tg_cli_open(const char *config_path, tg_config_t **cfg, tg_store_t **store);

#endif

/* tollgate: command dispatch. `-c FILE` (or --config FILE) may stand anywhere;
 * the rest is `tollgate GROUP [ARGS]`, handled by src/cli/. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char usage[] =
    "usage: tollgate [-c FILE] COMMAND [ARGS]\n"
    "  serve                                   run the gateway\n"
    "  tenant add ID [--name NAME] | list | show ID | disable ID | enable ID\n"
    "  key create --tenant ID [--name NAME] [--expires DATE] [--signing]\n"
    "                                          prints the secret(s) once\n"
    "  key list [--tenant ID] | revoke KEY_ID\n"
    "  key rotate KEY_ID [--grace 24h]         a new key; the old one expires after the grace\n"
    "  key import --tenant ID [--name NAME]    an existing secret, read from stdin\n"
    "  admin-token create --role admin|read [--tenant ID] [--expires DATE|DURATION]\n"
    "                     [--name NAME]        prints the secret once\n"
    "  admin-token list | revoke ID\n"
    "  usage [--tenant ID] [--from YYYY-MM-DD] [--to YYYY-MM-DD]\n"
    "        [--by day|hour|route|key|model|tool] [--format table|json|csv]\n"
    "  limit set --tenant ID [--route R | --tool T | --key K | --model M]\n"
    "            [--rps N | --rpm N | --rph N] [--burst N] [--tpm N | --tph N]\n"
    "            [--concurrency N]\n"
    "  limit list [--tenant ID] [--format table|json]\n"
    "  limit rm --tenant ID [--route R | --tool T | --key K | --model M]\n"
    "  pause [--tenant ID] [--reason TEXT]     no --tenant: every tenant (503)\n"
    "  pause list [--format table|json] | resume [--tenant ID]\n"
    "  ip allow|deny CIDR [--tenant ID]        no --tenant: every tenant\n"
    "  ip rm allow|deny CIDR [--tenant ID] | ip list [--tenant ID] [--format table|json]\n"
    "  price set MODEL --input USD --output USD [--cached USD] [--cache-write USD]\n"
    "            [--from YYYY-MM-DD|now]        USD per 1M tokens; MODEL * = fallback\n"
    "  price set --route NAME [--request USD] [--gb USD] [--from ...]\n"
    "  price set --tool NAME --call USD [--from ...]\n"
    "  price list [--format table|json|csv]\n"
    "  price rm MODEL | --route NAME | --tool NAME [--from DATE]\n"
    "  budget set --tenant ID --monthly USD [--soft] [--thresholds 80,90,100]\n"
    "  budget show --tenant ID [--format table|json] | list [--format table|json|csv]\n"
    "  budget rm --tenant ID\n"
    "  tool allow|deny --tenant ID|* PATTERN   MCP tools, fnmatch globs; deny wins\n"
    "  tool rm --tenant ID|* allow|deny PATTERN | tool list [--tenant ID] [--format ...]\n"
    "  alarms list [--format table|json]       current states, firing first\n"
    "  alarms history [--tenant ID] [--limit N] [--format table|json]\n"
    "  alarms export-rules                     the alarms as Prometheus alerting rules\n"
    "  alarms test NAME                        a sample notice through every notifier\n"
    "  ingest --format cloudfront|apigw-json|clf|combined|jsonl [--key-field NAME]\n"
    "         [--tenant-field NAME] [--strict] [--dry-run] FILE...  access logs into events\n"
    "  plan set NAME [--base USD] [--from YYYY-MM] --meter SPEC...   docs/billing.md\n"
    "  plan list [--format table|json|csv] | show NAME [--month YYYY-MM] | rm NAME [--from M]\n"
    "  tenant set-plan ID PLAN [--from YYYY-MM]\n"
    "  tenant erase ID                         a tenant's personal data out of events and audit\n"
    "  invoice --tenant ID|--all --month YYYY-MM [--format table|json|csv|html]\n"
    "          [--out FILE|DIR] [--close]        --close freezes a month that has ended\n"
    "  export --format cloudevents|jsonl --from YYYY-MM-DD --to YYYY-MM-DD [--tenant ID]\n"
    "  query \"SQL\" [--format table|json|csv]   read-only SQL over the views (docs/query.md)\n"
    "  report NAME [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--tenant ID] [--format ...]\n"
    "        NAME: daily hourly keys endpoints transfer cache models tools; --to inclusive\n"
    "  backup FILE [--force]                   online, consistent copy of the store\n"
    "  restore FILE                            gateway stopped; the old store kept as .bak\n"
    "  archive --before YYYY-MM-DD --out FILE.jsonl.zst\n"
    "                                          export older events, verify, then purge them\n"
    "  kek rotate --new-kek-file PATH|--new-kek-env NAME [ARCHIVE...]\n"
    "                                          re-wrap what is sealed under a new KEK\n"
    "  archive read FILE.jsonl.zst             its events as JSON lines (sealed: needs the KEK)\n"
    "  store copy --to URL [--from URL]        every row into a new, empty store (SQLite to\n"
    "                                          PostgreSQL), then counts and sums compared\n"
    "  audit verify [--from YYYY-MM-DD] [--to YYYY-MM-DD]   the audit chain (docs/audit.md)\n"
    "  audit export --format jsonl|csv [--from ...] [--to ...] | audit purge\n"
    "The config is -c FILE, else $TOLLGATE_CONFIG, else ./tollgate.yaml.\n";

int main(int argc, char **argv)
{
    const char *config_flag = NULL;
    char *args[8192]; /* ingest takes many log files (CloudFront writes several an hour) */
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "tollgate: %s needs a file\n", argv[i]);
                return TG_EXIT_USAGE;
            }
            config_flag = argv[++i];
        } else if (n < (int)(sizeof args / sizeof args[0]) - 1) {
            args[n++] = argv[i];
        } else {
            fprintf(stderr, "tollgate: too many arguments\n");
            return TG_EXIT_USAGE;
        }
    }
    args[n] = NULL;
    if (n == 0 || strcmp(args[0], "help") == 0 || strcmp(args[0], "--help") == 0 ||
        strcmp(args[0], "-h") == 0) {
        fputs(usage, n == 0 ? stderr : stdout);
        return n == 0 ? TG_EXIT_USAGE : TG_EXIT_OK;
    }
    const char *cfg = tg_config_default_path(config_flag);
    if (strcmp(args[0], "serve") == 0) return tg_cli_serve(n, args, cfg);
    if (strcmp(args[0], "tenant") == 0) return tg_cli_audited(tg_cli_tenant, n, args, cfg);
    if (strcmp(args[0], "key") == 0) return tg_cli_audited(tg_cli_key, n, args, cfg);
    if (strcmp(args[0], "usage") == 0) return tg_cli_usage(n, args, cfg);
    if (strcmp(args[0], "admin-token") == 0)
        return tg_cli_audited(tg_cli_admin_token, n, args, cfg);
    if (strcmp(args[0], "ingest") == 0) return tg_cli_audited(tg_cli_ingest, n, args, cfg);
    if (strcmp(args[0], "limit") == 0) return tg_cli_audited(tg_cli_limit, n, args, cfg);
    if (strcmp(args[0], "pause") == 0) return tg_cli_audited(tg_cli_pause, n, args, cfg);
    if (strcmp(args[0], "resume") == 0) return tg_cli_audited(tg_cli_resume, n, args, cfg);
    if (strcmp(args[0], "ip") == 0) return tg_cli_audited(tg_cli_ip, n, args, cfg);
    if (strcmp(args[0], "price") == 0) return tg_cli_audited(tg_cli_price, n, args, cfg);
    if (strcmp(args[0], "budget") == 0) return tg_cli_audited(tg_cli_budget, n, args, cfg);
    if (strcmp(args[0], "tool") == 0) return tg_cli_audited(tg_cli_tool, n, args, cfg);
    if (strcmp(args[0], "alarms") == 0 && n > 1 && strcmp(args[1], "test") == 0)
        return tg_cli_audited(tg_cli_alarms_test, n, args, cfg);
    if (strcmp(args[0], "alarms") == 0) return tg_cli_alarms(n, args, cfg);
    if (strcmp(args[0], "plan") == 0) return tg_cli_audited(tg_cli_plan, n, args, cfg);
    if (strcmp(args[0], "invoice") == 0) return tg_cli_audited(tg_cli_invoice, n, args, cfg);
    if (strcmp(args[0], "export") == 0) return tg_cli_export(n, args, cfg);
    if (strcmp(args[0], "query") == 0) return tg_cli_query(n, args, cfg);
    if (strcmp(args[0], "report") == 0) return tg_cli_report(n, args, cfg);
    if (strcmp(args[0], "backup") == 0) return tg_cli_backup(n, args, cfg);
    if (strcmp(args[0], "restore") == 0) return tg_cli_restore(n, args, cfg);
    if (strcmp(args[0], "archive") == 0 && n > 1 && strcmp(args[1], "read") == 0)
        return tg_cli_archive(n, args, cfg); /* reads a file: nothing to audit */
    if (strcmp(args[0], "archive") == 0) return tg_cli_audited(tg_cli_archive, n, args, cfg);
    if (strcmp(args[0], "store") == 0) return tg_cli_store(n, args, cfg);
    if (strcmp(args[0], "kek") == 0) return tg_cli_audited(tg_cli_kek, n, args, cfg);
    if (strcmp(args[0], "audit") == 0) return tg_cli_audit(n, args, cfg);
    fprintf(stderr, "tollgate: unknown command \"%s\" (try tollgate help)\n", args[0]);
    return TG_EXIT_USAGE;
}

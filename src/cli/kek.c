/* `tollgate kek rotate --new-kek-file PATH | --new-kek-env NAME [ARCHIVE...]`: re-wraps
 * everything sealed by the config's KEK (crypt/crypt.h) under a new one, data keys only
 * (the data is never decrypted):
 *
 *   1. the spool (meter/recorder.h), holding its lock: a running gateway holds it, so the
 *      command refuses while one runs on this config (its KEK must change with the store's);
 *   2. every sealed signing secret in the store (api_keys.signing_secret), one transaction
 *      each, replaced only while still the blob that was read (tg_store_key_reseal);
 *   3. every sealed notice of the notification outbox (outbox.sealed, notify/seal.h), likewise
 *      replaced only while still the text that was read (tg_store_outbox_reseal);
 *   4. every call record's sealed bodies (audit_bodies, audit.bodies: encrypt), likewise
 *      replaced only while still the blob that was read (tg_store_audit_body_reseal);
 *   5. the archives named on the command line (crypt/stream.h), each through FILE.rekey.
 *
 * Resumable: a blob or file already under the new KEK id is skipped and counted, so a run
 * stopped midway is run again as it was. A blob under a third KEK is counted and makes the
 * exit 1 (it cannot be re-wrapped without its own KEK). Then the operator points
 * encryption.kek_file (or kek_env) at the new key and starts the gateway. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "crypt/stream.h"
#include "meter/recorder.h"
#include "notify/seal.h"

#define USAGE        "usage: tollgate kek rotate --new-kek-file PATH | --new-kek-env NAME [ARCHIVE...]"
#define KEK_TEXT_MAX 256

typedef struct sealed_key {
    char id[128];
    unsigned char blob[TG_SIGNING_SEALED_LEN];
} sealed_key_t;

typedef struct collect {
    sealed_key_t *v;
    size_t n, cap;
} collect_t;

static int collect_key(const tg_auth_row_t *r, void *ud)
{
    collect_t *c = ud;
    if (!r->signing) return 0;
    sealed_key_t k;
    snprintf(k.id, sizeof k.id, "%s", r->key_id);
    memcpy(k.blob, r->signing_sealed, sizeof k.blob);
    return tg_cli_push((void **)&c->v, &c->n, &c->cap, &k, sizeof k);
}

typedef struct sealed_notice {
    char *id, *sealed;
} sealed_notice_t;

typedef struct notices {
    sealed_notice_t *v;
    size_t n, cap;
} notices_t;

static int collect_notice(const char *id, const char *sealed, void *ud)
{
    sealed_notice_t k = {strdup(id), strdup(sealed)};
    if (!k.id || !k.sealed ||
        tg_cli_push((void **)&((notices_t *)ud)->v, &((notices_t *)ud)->n, &((notices_t *)ud)->cap,
                    &k, sizeof k) != 0) {
        free(k.id);
        free(k.sealed);
        return -1;
    }
    return 0;
}

static void notices_free(notices_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i].id), free(c->v[i].sealed);
    free(c->v);
}

typedef struct tally {
    size_t rewrapped, already, other;
    int failed;
} tally_t;

/* Step 3: the outbox's sealed notices, each re-wrapped and replaced while unchanged. */
static int rotate_outbox(tg_store_t *store, const tg_kek_t *from, const tg_kek_t *to, tally_t *t,
                         tg_err_t *err)
{
    notices_t c = {0};
    char from_id[17], to_id[17], id[17];
    tg_kek_id_hex(from, from_id);
    tg_kek_id_hex(to, to_id);
    if (tg_store_outbox_sealed_each(store, collect_notice, &c, err) != 0) {
        notices_free(&c);
        return -1;
    }
    char *nb = malloc(TG_NOTICE_SEALED_SIZE);
    for (size_t i = 0; nb && i < c.n; i++) {
        if (tg_notice_sealed_kek_id(c.v[i].sealed, id) != 0) {
            fprintf(stderr, "kek rotate: outbox notice %s: its sealed text is damaged\n",
                    c.v[i].id);
            t->failed = 1;
        } else if (!strcmp(id, to_id)) {
            t->already++;
        } else if (strcmp(id, from_id)) {
            t->other++;
        } else if (tg_notice_rewrap(from, to, c.v[i].sealed, nb, err) ||
                   tg_store_outbox_reseal(store, c.v[i].id, c.v[i].sealed, nb, err)) {
            fprintf(stderr, "kek rotate: outbox notice %s: %s\n", c.v[i].id, err->msg);
            t->failed = 1;
        } else {
            t->rewrapped++;
        }
    }
    int rc = nb ? 0 : tg_err_set(err, "out of memory");
    free(nb);
    notices_free(&c);
    return rc;
}

/* Step 4: the ids of the bodies under the current KEK (the blobs themselves, up to 2 x
 * audit.max_body each, are read again one at a time). */
typedef struct body_ids {
    int64_t *v;
    size_t n, cap;
    const tg_kek_t *from, *to;
    tally_t *t;
} body_ids_t;

static int collect_body(int64_t id, const unsigned char *sealed, size_t n, void *ud)
{
    body_ids_t *c = ud;
    if (n < 4 + TG_KEK_ID_LEN) {
        fprintf(stderr, "kek rotate: audit record %lld: its sealed bodies are damaged\n",
                (long long)id);
        c->t->failed = 1;
    } else if (!memcmp(sealed + 4, c->to->id, TG_KEK_ID_LEN)) {
        c->t->already++;
    } else if (memcmp(sealed + 4, c->from->id, TG_KEK_ID_LEN)) {
        c->t->other++;
    } else {
        return tg_cli_push((void **)&c->v, &c->n, &c->cap, &id, sizeof id);
    }
    return 0;
}

static int rotate_bodies(tg_store_t *store, const tg_kek_t *from, const tg_kek_t *to, tally_t *t,
                         tg_err_t *err)
{
    body_ids_t c = {.from = from, .to = to, .t = t};
    if (tg_store_audit_bodies_each(store, collect_body, &c, err) != 0) {
        free(c.v);
        return -1;
    }
    for (size_t i = 0; i < c.n; i++) {
        tg_audit_body_t b;
        unsigned char *nb = NULL;
        int rc = tg_store_audit_body_get(store, c.v[i], &b, err);
        if (rc == TG_STORE_NOTFOUND) continue; /* erased or purged meanwhile */
        if (rc != 0 || tg_crypt_rewrap(from, to, b.sealed, b.len, &nb, err) != 0 ||
            tg_store_audit_body_reseal(store, c.v[i], b.sealed, nb, b.len, err) != 0) {
            fprintf(stderr, "kek rotate: audit record %lld's bodies: %s\n", (long long)c.v[i],
                    err->msg);
            t->failed = 1;
        } else {
            t->rewrapped++;
        }
        if (rc == 0) free(b.sealed);
        free(nb);
    }
    free(c.v);
    return 0;
}

/* The new KEK from a file's first line or an environment variable; never echoed. */
static int new_kek(const char *file, const char *env, tg_kek_t *out, tg_err_t *err)
{
    char text[KEK_TEXT_MAX + 1], what[300];
    size_t n = 0;
    if (file) {
        FILE *f = fopen(file, "r");
        if (!f) return tg_err_set(err, "--new-kek-file %s: cannot be read", file);
        n = fread(text, 1, KEK_TEXT_MAX, f);
        fclose(f);
        text[n] = '\0';
        n = strcspn(text, "\n");
        snprintf(what, sizeof what, "the key in %s", file);
    } else {
        const char *v = getenv(env);
        if (!v || !*v) return tg_err_set(err, "--new-kek-env: $%s is not set or empty", env);
        n = strlen(v) < KEK_TEXT_MAX ? strlen(v) : KEK_TEXT_MAX;
        memcpy(text, v, n);
        snprintf(what, sizeof what, "$%s", env);
    }
    int rc = tg_kek_parse(text, n, what, out, err);
    explicit_bzero(text, sizeof text);
    return rc;
}

static int rotate(int argc, char **argv, const char *config_path)
{
    const char *file = NULL, *env = NULL;
    const char **archives = calloc((size_t)argc, sizeof *archives);
    size_t narch = 0;
    if (!archives) return tg_cli_errorf(TG_EXIT_RUNTIME, "kek rotate: out of memory");
    for (int i = 2; i < argc; i++) {
        if ((!strcmp(argv[i], "--new-kek-file") || !strcmp(argv[i], "--new-kek-env")) &&
            i + 1 < argc) {
            *(strcmp(argv[i], "--new-kek-file") == 0 ? &file : &env) = argv[i + 1];
            i++;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            free(archives);
            printf("%s\n", USAGE);
            return TG_EXIT_OK;
        } else if (argv[i][0] == '-') {
            free(archives);
            return tg_cli_errorf(TG_EXIT_USAGE, "unknown option %s\n%s", argv[i], USAGE);
        } else {
            archives[narch++] = argv[i];
        }
    }
    if (!file == !env) {
        free(archives);
        return tg_cli_errorf(TG_EXIT_USAGE, "give one of --new-kek-file or --new-kek-env\n%s",
                             USAGE);
    }
    tg_config_t *cfg;
    tg_store_t *store;
    tg_err_t err = {{0}};
    tg_kek_t to;
    int rc = tg_cli_open(config_path, &cfg, &store);
    if (rc != 0) {
        free(archives);
        return rc;
    }
    const tg_kek_t *from = &cfg->encryption.kek;
    collect_t keys = {0};
    size_t spool_frames = 0, rewrapped = 0, already = 0, other = 0, files_done = 0;
    int spool_rc = 0, failed = 0;
    char from_id[17], to_id[17];
    if (!cfg->encryption.has_kek) {
        rc = tg_cli_errorf(TG_EXIT_USAGE, "kek rotate: no encryption configured (encryption."
                                          "kek_file or kek_env): nothing is sealed");
        goto out;
    }
    if (new_kek(file, env, &to, &err) != 0) {
        rc = tg_cli_errorf(TG_EXIT_USAGE, "kek rotate: %s", err.msg);
        goto out;
    }
    tg_kek_id_hex(from, from_id);
    tg_kek_id_hex(&to, to_id);
    if (!strcmp(from_id, to_id)) {
        rc = tg_cli_errorf(TG_EXIT_USAGE, "kek rotate: the new KEK is the configured one (id %s)",
                           to_id);
        goto out;
    }
    /* The spool first: its lock says no gateway runs on this config. */
    if ((spool_rc = tg_recorder_spool_rekey(cfg->recorder.spool, from, &to, &spool_frames, &err)) <
        0) {
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "kek rotate: %s; nothing was re-wrapped", err.msg);
        goto out;
    }
    if (tg_store_auth_load(store, collect_key, &keys, &err) != 0) {
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "kek rotate: %s", err.msg);
        goto out;
    }
    for (size_t i = 0; i < keys.n; i++) {
        const unsigned char *id = keys.v[i].blob + 4; /* crypt.h: the blob's KEK id */
        unsigned char *nb = NULL;
        if (!memcmp(id, to.id, TG_KEK_ID_LEN)) {
            already++;
        } else if (memcmp(id, from->id, TG_KEK_ID_LEN)) {
            other++;
        } else if (tg_crypt_rewrap(from, &to, keys.v[i].blob, TG_SIGNING_SEALED_LEN, &nb, &err) ||
                   tg_store_key_reseal(store, keys.v[i].id, keys.v[i].blob, nb,
                                       TG_SIGNING_SEALED_LEN, &err)) {
            fprintf(stderr, "kek rotate: key %s: %s\n", keys.v[i].id, err.msg);
            failed = 1;
        } else {
            rewrapped++;
        }
        free(nb);
    }
    tally_t ob = {0};
    if (rotate_outbox(store, from, &to, &ob, &err) != 0) {
        fprintf(stderr, "kek rotate: outbox: %s\n", err.msg);
        failed = 1;
    }
    failed |= ob.failed;
    tally_t bt = {0};
    if (rotate_bodies(store, from, &to, &bt, &err) != 0) {
        fprintf(stderr, "kek rotate: audit bodies: %s\n", err.msg);
        failed = 1;
    }
    failed |= bt.failed;
    for (size_t i = 0; i < narch; i++) {
        size_t frames = 0;
        int r = tg_stream_rekey(archives[i], from, &to, &frames, &err);
        if (r < 0) {
            fprintf(stderr, "kek rotate: %s\n", err.msg);
            failed = 1;
        } else {
            files_done++;
            printf("%s: %s\n", archives[i],
                   r ? "re-wrapped" : "already under the new key-encryption key");
        }
    }
    printf("re-wrapped %zu signing secrets from key-encryption key %s to %s (%zu already under "
           "it, %zu under another KEK)\n",
           rewrapped, from_id, to_id, already, other);
    printf("re-wrapped %zu outbox notices (%zu already under it, %zu under another KEK)\n",
           ob.rewrapped, ob.already, ob.other);
    printf("re-wrapped %zu calls' audit bodies (%zu already under it, %zu under another KEK)\n",
           bt.rewrapped, bt.already, bt.other);
    printf("spool %s: %s\n", cfg->recorder.spool,
           spool_rc ? "re-wrapped" : "nothing sealed by the current key-encryption key");
    if (narch == 0)
        printf("archives are files tollgate does not track: re-wrap each sealed one with\n"
               "  tollgate kek rotate %s %s ARCHIVE...\n",
               file ? "--new-kek-file" : "--new-kek-env", file ? file : env);
    if (failed || other || ob.other || bt.other)
        rc = tg_cli_errorf(TG_EXIT_RUNTIME,
                           "kek rotate: not everything was re-wrapped (see above); run it again "
                           "before switching the config to the new key");
    else
        printf("now point encryption.kek_file (or kek_env) at the new key and restart\n");
out:
    tg_kek_wipe(&to);
    free(keys.v);
    free(archives);
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}

int tg_cli_kek(int argc, char **argv, const char *config_path)
{
    if (argc > 1 && !strcmp(argv[1], "rotate")) return rotate(argc, argv, config_path);
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))) {
        printf("%s\n", USAGE);
        return TG_EXIT_OK;
    }
    return tg_cli_errorf(TG_EXIT_USAGE, "%s", USAGE);
}

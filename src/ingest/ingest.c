/* The ingest driver: files in, batches of events out (see ingest.h).
 *
 * Reading: zlib's gzread reads plain and gzip files alike (and stdin through gzdopen), in
 * 256 KiB chunks split into lines with memchr; a line past TG_INGEST_LINE_MAX is reported
 * malformed and skipped to its end, so one bad line never stops a run or grows a buffer
 * without bound.
 *
 * Each record becomes an event: its tenant from the log (apigw's field, clf's user, the
 * jsonl line) or else from its key, hashed with tg_apikey_hash and looked up in a table of
 * every api_keys row read once at the start (revoked keys included: the record was made
 * when the key worked). A key that matches nothing goes to tenant '' with key_id
 * 'unk_' + 16 hex of its hash, reason 'unknown_key', and a row in ingest_unknown_keys
 * (hash and first 8 characters); the secret itself is never stored or printed. Outcome:
 * 2xx billable, anything else failed (never rejected: tollgate refused nothing), 000 with
 * reason 'client_gone'; the jsonl format keeps its logged outcome. Price: the price book's
 * route part for the event's route ('*' for logs that have none), as the gateway prices a
 * plain HTTP route; tokens are unknown.
 *
 * Identity: SHA-256 of source, NUL, and the record's id in its log (or, lacking one, the
 * record's bytes), which tg_store_ingest keeps in ingest_seen (why not the event id: see
 * store/migrations.c, m7_ingest). Bytes are not an identity on their own: CLF logs to the
 * second, so a client polling a URL logs the same line several times in one second, each a
 * request. The nth copy of a line within a file (n >= 2) adds "\n" and n to the digest; the
 * first keeps the plain one, so what was ingested before reads the same. A file read again
 * numbers its copies alike. The copies are counted in a table of REPEATS lines, emptied
 * when full: copies of a line further apart than that are taken for one (a line's copies
 * share its second, so they lie close together). A record without an id of its own gets
 * request_id 'ingest-' + 32 hex of that digest, so two distinct records of the same second
 * can never be taken for one replayed event by the store's id-collision check. */
#include "ingest/ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "auth/apikey.h"
#include "util/sizes.h"

#define BATCH       8192
#define CHUNK       (256 * 1024)
#define PROGRESS_AT 65536 /* lines between progress calls */
#define KEYCACHE    256   /* recent keys remembered (a power of two) */
#define REPEATS     65536 /* id-less lines whose copies are counted; 2x slots, a power of 2 */

enum { EMIT_OK = 0, EMIT_MALFORMED = 1, EMIT_STORE = 2 };

/* The ids emit() and resolve_key() write in place: "unk_" + 16 hex, "ingest-" + 32 hex. */
_Static_assert(sizeof((tg_event_t *)0)->key_id >= 4 + 16 + 1, "key_id holds unk_ + 16 hex");
_Static_assert(sizeof((tg_event_t *)0)->request_id >= 7 + 32 + 1, "request_id holds ingest-");

typedef struct keyent {
    unsigned char sha256[32];
    char tenant[TG_TENANT_SIZE];
    char key_id[32];
    int used;
} keyent_t;

struct tg_ingest {
    tg_store_t *store; /* NULL: parse only */
    tg_pricebook_t *pb;
    tg_ingest_opts_t opts;
    tg_ingest_parser_t parser;
    const char *source;
    keyent_t *keys; /* open addressing on the hash's first bytes; kmask + 1 slots */
    size_t kmask;
    /* Keys seen lately and what they resolved to, direct-mapped by a cheap hash of the
     * key: logs repeat a few keys, so most records cost a compare instead of a SHA-256
     * (which was a tenth of the CPU of ingesting a combined log whose 50 keys took turns).
     * Raw keys, in memory only, wiped when the run ends. */
    struct keycache {
        char key[TG_INGEST_KEY_MAX];
        size_t len;          /* 0 = empty */
        const keyent_t *hit; /* NULL: the key is unknown */
        unsigned char sha256[32];
    } kc[KEYCACHE];
    /* Id-less lines of this file and how many times each came (see the top). */
    struct repeat {
        unsigned char digest[16]; /* the line's plain digest, first half */
        uint32_t n;               /* 0 = empty slot */
    } * rep;
    size_t nrep;
    tg_ingest_item_t *batch;
    size_t nbatch;
    tg_ingest_stats_t st;
    char *buf;       /* CHUNK + TG_INGEST_LINE_MAX */
    EVP_MD *md;      /* SHA-256, fetched once (see auth/apikey.c for why) */
    EVP_MD_CTX *mdc; /* reused for every record's digest */
    uint64_t lineno; /* the current file's line */
    char why[256];
    tg_err_t err;
};

static uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static int add_key(const tg_auth_row_t *r, void *ud)
{
    tg_ingest_t *in = ud;
    size_t i = (size_t)load64(r->sha256) & in->kmask;
    while (in->keys[i].used)
        i = (i + 1) & in->kmask;
    keyent_t *k = &in->keys[i];
    k->used = 1;
    memcpy(k->sha256, r->sha256, 32);
    snprintf(k->tenant, sizeof k->tenant, "%s", r->tenant_id);
    snprintf(k->key_id, sizeof k->key_id, "%s", r->key_id);
    return 0;
}

static int count_key(const tg_auth_row_t *r, void *ud)
{
    (void)r;
    ++*(size_t *)ud;
    return 0;
}

static const keyent_t *find_key(const tg_ingest_t *in, const unsigned char sha[32])
{
    for (size_t i = (size_t)load64(sha) & in->kmask; in->keys[i].used; i = (i + 1) & in->kmask)
        if (tg_apikey_hash_eq(in->keys[i].sha256, sha)) return &in->keys[i];
    return NULL;
}

int tg_ingest_new(tg_store_t *store, tg_pricebook_t *pb, const tg_ingest_opts_t *opts,
                  tg_ingest_t **out, tg_err_t *err)
{
    tg_ingest_t *in = calloc(1, sizeof *in);
    if (!in) return tg_err_set(err, "ingest: out of memory");
    in->store = store;
    in->pb = pb;
    in->opts = *opts;
    in->source = tg_ingest_source(opts->format);
    tg_ingest_parser_init(&in->parser, opts->format, opts->key_field, opts->tenant_field);
    in->buf = malloc(CHUNK + TG_INGEST_LINE_MAX);
    in->batch = malloc(BATCH * sizeof *in->batch);
    in->rep = calloc(2 * REPEATS, sizeof *in->rep);
    size_t nkeys = 0, slots = 16;
    in->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    in->mdc = EVP_MD_CTX_new();
    if (!in->buf || !in->batch || !in->rep || !in->md || !in->mdc) goto oom;
    if (store && tg_store_auth_load(store, count_key, &nkeys, err) != 0) goto fail;
    while (slots < 2 * nkeys)
        slots *= 2;
    if (!(in->keys = calloc(slots, sizeof *in->keys))) goto oom;
    in->kmask = slots - 1;
    if (store && tg_store_auth_load(store, add_key, in, err) != 0) goto fail;
    *out = in;
    return 0;
oom:
    tg_err_set(err, "ingest: out of memory");
fail:
    tg_ingest_free(in);
    return -1;
}

void tg_ingest_free(tg_ingest_t *in)
{
    if (!in) return;
    OPENSSL_cleanse(in->kc, sizeof in->kc);
    /* Records hold no secret (keys are hashed before they are batched), but the read
     * buffer held the lines: wipe it too. */
    if (in->buf) OPENSSL_cleanse(in->buf, CHUNK + TG_INGEST_LINE_MAX);
    free(in->buf);
    free(in->batch);
    free(in->rep);
    EVP_MD_CTX_free(in->mdc);
    EVP_MD_free(in->md);
    free(in->keys);
    free(in);
}

const tg_ingest_stats_t *tg_ingest_stats(const tg_ingest_t *in)
{
    return &in->st;
}

int tg_ingest_flush(tg_ingest_t *in, tg_err_t *err)
{
    if (!in->store || in->nbatch == 0) return 0;
    size_t ins = 0, dup = 0;
    int rc = tg_store_ingest(in->store, in->batch, in->nbatch, &ins, &dup, err);
    if (rc != 0) return -1;
    in->st.stored += ins;
    in->st.duplicates += dup;
    in->nbatch = 0;
    return 0;
}

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* nth: the copy of an id-less line (see the top); 1 for the first, and for any record
 * with an id of its own. */
static void digest(tg_ingest_t *in, const void *b, size_t bn, uint32_t nth, unsigned char out[32])
{
    unsigned int len = 32;
    EVP_DigestInit_ex(in->mdc, in->md, NULL);
    EVP_DigestUpdate(in->mdc, in->source, strlen(in->source) + 1); /* its NUL too */
    EVP_DigestUpdate(in->mdc, b, bn);
    if (nth > 1) {
        char suffix[16];
        int sn = snprintf(suffix, sizeof suffix, "\n%u", nth); /* a line has no '\n' */
        EVP_DigestUpdate(in->mdc, suffix, (size_t)sn);
    }
    EVP_DigestFinal_ex(in->mdc, out, &len);
}

/* Which copy within this file the id-less line of plain digest d is: 1, 2, ... */
static uint32_t copy_of(tg_ingest_t *in, const unsigned char d[32])
{
    size_t mask = 2 * REPEATS - 1;
    if (in->nrep == REPEATS) {
        memset(in->rep, 0, 2 * REPEATS * sizeof *in->rep);
        in->nrep = 0;
    }
    size_t i = (size_t)load64(d) & mask;
    while (in->rep[i].n && memcmp(in->rep[i].digest, d, sizeof in->rep[i].digest) != 0)
        i = (i + 1) & mask;
    struct repeat *r = &in->rep[i];
    if (!r->n) {
        memcpy(r->digest, d, sizeof r->digest);
        in->nrep++;
    }
    return ++r->n;
}

/* Tenant and key of a record carrying a raw key. */
static void resolve_key(tg_ingest_t *in, tg_ingest_rec_t *rec, tg_ingest_item_t *it)
{
    tg_event_t *ev = &it->ev;
    uint32_t h = 2166136261u; /* FNV-1a: picks the slot; the key itself is compared */
    for (size_t i = 0; i < rec->key_len; i++)
        h = (h ^ (unsigned char)rec->key[i]) * 16777619u;
    struct keycache *c = &in->kc[h & (KEYCACHE - 1)];
    if (rec->key_len != c->len || memcmp(rec->key, c->key, rec->key_len) != 0) {
        tg_apikey_hash(rec->key, rec->key_len, c->sha256);
        memcpy(c->key, rec->key, rec->key_len);
        c->len = rec->key_len;
        c->hit = find_key(in, c->sha256);
    }
    if (c->hit) {
        if (ev->tenant[0] && strcmp(ev->tenant, c->hit->tenant) != 0) {
            /* The log says one tenant, the key belongs to another: billing either could be
             * wrong, so neither is (tenant '', as for an unknown key), and it shows. */
            in->st.mismatched++;
            ev->tenant[0] = '\0';
            TG_EVENT_SET(ev, reason, "tenant_mismatch", 15);
        } else if (!ev->tenant[0]) {
            TG_EVENT_SET(ev, tenant, c->hit->tenant, strlen(c->hit->tenant));
        }
        TG_EVENT_SET(ev, key_id, c->hit->key_id, strlen(c->hit->key_id));
        return;
    }
    in->st.unknown++;
    memcpy(ev->key_id, "unk_", 4); /* + 16 hex and the NUL: fits key_id[32] */
    hex(c->sha256, 8, ev->key_id + 4);
    if (!ev->reason[0]) TG_EVENT_SET(ev, reason, "unknown_key", 11);
    memcpy(it->key_sha256, c->sha256, 32);
    size_t pn = tg_apikey_prefix_len(rec->key_len);
    memcpy(it->key_prefix, rec->key, pn);
    it->key_prefix[pn] = '\0';
}

static int emit(void *ud, tg_ingest_rec_t *rec)
{
    tg_ingest_t *in = ud;
    if (rec->ev.tenant[0] && !tg_tenant_id_valid(rec->ev.tenant)) {
        snprintf(in->why, sizeof in->why,
                 "tenant \"%.63s\" is not a tenant id (1-63 of "
                 "[A-Za-z0-9._-])",
                 rec->ev.tenant);
        return EMIT_MALFORMED;
    }
    if (rec->ev.bytes_in > TG_INGEST_BYTES_MAX || rec->ev.bytes_out > TG_INGEST_BYTES_MAX ||
        rec->ev.count > TG_INGEST_BYTES_MAX) {
        snprintf(in->why, sizeof in->why, "a byte count or count above %lld (1 TiB)",
                 (long long)TG_INGEST_BYTES_MAX);
        return EMIT_MALFORMED;
    }
    in->st.records++;
    if (!in->store) return EMIT_OK;
    /* A full batch is stored before the next record goes in (also when an earlier try
     * failed: the batch is still whole, and is offered again). */
    if (in->nbatch == BATCH && tg_ingest_flush(in, &in->err) != 0) return EMIT_STORE;

    tg_ingest_item_t *it = &in->batch[in->nbatch];
    memset(it->key_sha256, 0, sizeof it->key_sha256);
    it->key_prefix[0] = '\0';
    it->ev = rec->ev;
    tg_event_t *ev = &it->ev;
    if (rec->key_len)
        resolve_key(in, rec, it);
    else if (!ev->tenant[0] && !ev->reason[0] && !rec->has_outcome)
        TG_EVENT_SET(ev, reason, "no_key", 6);
    if (!rec->has_outcome) {
        ev->outcome =
            ev->status >= 200 && ev->status <= 299 ? TG_OUTCOME_BILLABLE : TG_OUTCOME_FAILED;
        if (ev->status == 0 && !ev->reason[0]) TG_EVENT_SET(ev, reason, "client_gone", 11);
    }
    ev->tokens_in = ev->tokens_out = ev->tokens_cached = ev->tokens_cache_write = TG_TOKENS_UNKNOWN;
    TG_EVENT_SET(ev, source, in->source, strlen(in->source));
    if (rec->rid) {
        digest(in, rec->rid, rec->rid_len, 1, it->digest);
    } else {
        digest(in, rec->raw, rec->raw_len, 1, it->digest);
        uint32_t nth = copy_of(in, it->digest);
        if (nth > 1) digest(in, rec->raw, rec->raw_len, nth, it->digest);
    }
    if (!ev->request_id[0]) { /* "ingest-" + 32 hex and the NUL: fits request_id[64] */
        memcpy(ev->request_id, "ingest-", 7);
        hex(it->digest, 16, ev->request_id + 7);
    }
    ev->id = tg_event_new_id(ev->ts_us);
    if (in->pb) tg_pricebook_price(in->pb, ev, TG_ROUTE_HTTP);
    in->nbatch++;
    return EMIT_OK;
}

static void report(tg_ingest_t *in, const char *name, const char *why)
{
    in->st.malformed++;
    if (in->opts.malformed) in->opts.malformed(in->opts.ud, name, in->lineno, why);
}

/* A line past TG_INGEST_LINE_MAX: counted, reported, never parsed. */
static void too_long(tg_ingest_t *in, const char *name)
{
    in->st.lines++;
    in->lineno++;
    report(in, name, "line longer than 1 MiB");
}

/* One line (no newline); -1 when the store failed. */
static int line(tg_ingest_t *in, const char *name, const char *s, size_t n)
{
    in->st.lines++;
    in->lineno++;
    in->why[0] = '\0';
    char why[256];
    int rc = tg_ingest_parse(&in->parser, s, n, emit, in, why, sizeof why);
    if (rc == EMIT_STORE) return -1;
    if (rc < 0) report(in, name, why);
    if (rc == EMIT_MALFORMED) report(in, name, in->why);
    return 0;
}

int tg_ingest_file(tg_ingest_t *in, const char *path, tg_err_t *err)
{
    int stdin_ = strcmp(path, "-") == 0;
    int fd = stdin_ ? dup(0) : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tg_err_set(err, "%s: %s", path, strerror(errno));
    struct stat sb;
    uint64_t size = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) ? (uint64_t)sb.st_size : 0;
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return tg_err_set(err, "%s: out of memory", path);
    }
    gzbuffer(gz, CHUNK);
    const char *name = stdin_ ? "-" : path;
    uint64_t last_off = 0;
    in->lineno = 0;
    tg_ingest_parser_reset(&in->parser);
    memset(in->rep, 0, 2 * REPEATS * sizeof *in->rep); /* copies are counted per file */
    in->nrep = 0;
    size_t have = 0;  /* bytes in buf not yet consumed */
    int skipping = 0; /* inside a line past TG_INGEST_LINE_MAX */
    int ret = 0, eof = 0, truncated = 0;
    while (!eof) {
        int r = gzread(gz, in->buf + have, CHUNK);
        if (r < 0) {
            int e;
            const char *m = gzerror(gz, &e);
            ret = tg_err_set(err, "%s: %s", path, e == Z_ERRNO ? strerror(errno) : m);
            break;
        }
        eof = r == 0;
        if (eof) { /* zlib ends a gzip stream cut short quietly, with Z_BUF_ERROR set */
            int e;
            gzerror(gz, &e);
            truncated = e == Z_BUF_ERROR;
        }
        have += (size_t)r;
        z_off_t off = gzoffset(gz);
        if (off > 0) {
            in->st.bytes += (uint64_t)off - last_off;
            last_off = (uint64_t)off;
        }
        size_t start = 0;
        for (;;) {
            char *nl = memchr(in->buf + start, '\n', have - start);
            if (!nl && !(eof && start < have)) break;
            size_t end = nl ? (size_t)(nl - in->buf) : have;
            if (skipping || end - start > TG_INGEST_LINE_MAX) {
                too_long(in, name);
                skipping = 0;
            } else if (line(in, name, in->buf + start, end - start) != 0) {
                tg_err_set(err, "%s", in->err.msg);
                ret = TG_INGEST_STORE_FAILED;
                goto done;
            }
            start = end + 1;
            if (!nl) break;
            if (in->lineno % PROGRESS_AT == 0 && in->opts.progress)
                in->opts.progress(in->opts.ud, &in->st, name, last_off, size);
        }
        if (start > have) start = have;
        memmove(in->buf, in->buf + start, have - start);
        have -= start;
        if (have >= TG_INGEST_LINE_MAX) { /* no newline within the cap: skip to the next */
            skipping = 1;
            have = 0;
        }
    }
    if (ret == 0 && skipping) too_long(in, name); /* the file ended inside it */
    if (ret == 0 && truncated)
        ret = tg_err_set(err, "%s: truncated gzip data: only the records before the cut were read",
                         path);
done:
    gzclose(gz);
    if (ret == 0) in->st.files++;
    if (in->opts.progress)
        in->opts.progress(in->opts.ud, &in->st, name, size ? size : last_off, size);
    return ret;
}

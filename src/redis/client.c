/* The shared limiter's connection to Redis: see client.h.
 *
 * Every command sent owns a ticket until hiredis hands its reply (or NULL, when the
 * connection goes) to on_reply: the ticket keeps a copy of the command (to send it again
 * after a NOSCRIPT), and for an admission what undoes it. Admissions waiting for their
 * reply are also in a list in the order they were sent, which is the order of their
 * deadlines (one timeout for all), so one timer at the head's deadline times them out. */
#include "redis/client.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define TIMEOUTS_DOWN  3 /* admissions in a row without an answer: down */
/* A connection not up (its script loaded) this long after connect_now is given up. */
#define CONNECT_MS  1000
#define JOURNAL_MAX (8u << 20) /* bytes of commands kept while down */
#define PROBE_MS    250        /* a stalled connection is PINGed this often */
#define PROBES_MAX  20         /* PINGs unanswered before it is dropped */
#define CLOSE_MS    1000       /* at exit, the last settlements' time to be answered */

/* A command as it was built, without its SHA (argv[1] is the client's at each send). */
typedef struct blob {
    struct blob *next; /* the journal's order */
    int argc;
    size_t bytes; /* its whole allocation */
    size_t *lens;
    char *data;
    int sent;         /* a settlement sent at least once: its outcome may be unknown */
    uint64_t sent_ms; /* its first send (uv_now: the loop's monotonic clock) */
} blob_t;

enum { K_ADMIT, K_SETTLE, K_LOAD, K_CLAIM };

struct tg_redis_ticket {
    tg_redis_t *rc;
    tg_redis_ticket_t *prev, *next; /* the waiting list (admissions) */
    int queued;                     /* in the waiting list: cb not called yet */
    int kind;
    int retried; /* sent again after NOSCRIPT */
    uint64_t deadline_ms;
    tg_redis_admit_cb cb;  /* admissions */
    tg_redis_claim_cb ccb; /* claims */
    void *ud;
    tg_redis_hold_t hold;  /* admissions: what an undo gives back */
    tg_admit_plan_t *plan; /* admissions: to decode the reply (its values point into the
                              waiting request: read only while it waits) */
    size_t nundo;          /* admissions: the counters an undo moves back, keys made when */
    tg_redis_adj_t *undo;  /* it was sent */
    blob_t *cmd;
};

struct tg_redis {
    uv_loop_t *loop;
    redisAsyncContext *ac; /* NULL: not connected */
    int up;                /* connected and the script loaded */
    int closing;           /* tg_redis_free was called */
    int finished;          /* and the client is ending (finish_free) */
    int said_down;         /* "down" was logged since the last "up" */
    char said_why[160];    /* with this reason (a set-up refusal that differs is logged too) */
    int said_claim_error;  /* a claim's error reply was logged since the last claim answered */
    /* A loss the shared counts will never see was logged since the last "up": once per
     * outage, the rest counted in the metrics (a flood must not write a line per command). */
    int said_expired; /* a settlement too old to be sent again */
    int said_full;    /* the journal had no room */
    size_t lost_exit; /* settlements left unanswered at exit (logged by finish_free) */
    char host[256];
    int port, db;
    char *user;     /* an ACL user, or NULL (the default user) */
    char *password; /* AUTH's, or NULL: none sent. Never logged; wiped when freed */
    long timeout_ms, ttl_ms;
    int64_t op_ttl_ms; /* a settlement marker's life (TG_REDIS_OP_TTL_MS) */
    int worker;
    long backoff_ms;
    int timeouts; /* admissions in a row that timed out */
    int stalled;  /* down for timeouts, connection kept: late replies still come (and are
                     undone) and a PING answered brings it back up */
    int probes;   /* PINGs sent while stalled, unanswered */
    uv_timer_t retry, deadline;
    int open_handles;
    tg_redis_ticket_t *head, *tail;
    blob_t *jhead, *jtail; /* the journal */
    size_t jbytes;
    char sha[41];
    char instance[17]; /* random, per client: request ids unique across gateways */
    uint64_t seq;
    tg_redis_cmd_t scratch;
    tg_redis_stats_t *stats;
};

static void connect_now(tg_redis_t *rc);
static void on_handle_closed(uv_handle_t *h);
static void finish_free(tg_redis_t *rc);
static void schedule_retry(tg_redis_t *rc);

/* ---- commands ---------------------------------------------------------------------------- */

static blob_t *blob_of(const tg_redis_cmd_t *c)
{
    size_t bytes = sizeof(blob_t) + (size_t)c->argc * sizeof(size_t) + c->used;
    blob_t *b = malloc(bytes);
    if (!b) return NULL;
    b->next = NULL;
    b->sent = 0;
    b->sent_ms = 0;
    b->argc = c->argc;
    b->bytes = bytes;
    b->lens = (size_t *)(b + 1);
    b->data = (char *)(b->lens + c->argc);
    memcpy(b->lens, c->argvlen, (size_t)c->argc * sizeof(size_t));
    if (c->used) memcpy(b->data, c->buf, c->used);
    return b;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

/* Queues b on the connection with argv[1] the current SHA (an EVALSHA: every kind but a
 * claim, a plain SET). 0, or -1. */
static int send_blob(tg_redis_t *rc, blob_t *b, tg_redis_ticket_t *t)
{
    const char *argv[TG_REDIS_CMD_ARGS];
    size_t lens[TG_REDIS_CMD_ARGS];
    if (!rc->ac || b->argc < 2 || b->argc > TG_REDIS_CMD_ARGS) return -1;
    const char *p = b->data;
    for (int i = 0; i < b->argc; i++) {
        argv[i] = p;
        lens[i] = b->lens[i];
        p += b->lens[i];
    }
    if (t->kind != K_CLAIM) {
        argv[1] = rc->sha;
        lens[1] = 40;
    }
    if (redisAsyncCommandArgv(rc->ac, on_reply, t, b->argc, argv, lens) != REDIS_OK) return -1;
    if (!b->sent) {
        b->sent = 1;
        b->sent_ms = uv_now(rc->loop);
    }
    return 0;
}

static void ticket_free(tg_redis_ticket_t *t)
{
    free(t->cmd);
    free(t);
}

static tg_redis_ticket_t *ticket_new(tg_redis_t *rc, int kind, blob_t *cmd, size_t nrules)
{
    size_t extra = kind == K_ADMIT ? sizeof(tg_admit_plan_t) + nrules * sizeof(tg_redis_adj_t) : 0;
    tg_redis_ticket_t *t = calloc(1, sizeof *t + extra);
    if (!t) return NULL;
    t->rc = rc;
    t->kind = kind;
    t->cmd = cmd;
    if (kind == K_ADMIT) {
        t->plan = (tg_admit_plan_t *)(t + 1);
        t->undo = (tg_redis_adj_t *)(t->plan + 1);
    }
    return t;
}

/* ---- the waiting list ---------------------------------------------------------------------- */

static void unqueue(tg_redis_t *rc, tg_redis_ticket_t *t)
{
    if (!t->queued) return;
    t->queued = 0;
    if (t->prev)
        t->prev->next = t->next;
    else
        rc->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        rc->tail = t->prev;
    t->prev = t->next = NULL;
}

static void on_deadline(uv_timer_t *h);

static void arm_deadline(tg_redis_t *rc)
{
    if (!rc->head) {
        uv_timer_stop(&rc->deadline);
        return;
    }
    uint64_t now = uv_now(rc->loop);
    uint64_t due = rc->head->deadline_ms > now ? rc->head->deadline_ms - now : 0;
    uv_timer_start(&rc->deadline, on_deadline, due, 0);
}

/* ---- state ---------------------------------------------------------------------------------- */

/* Down, logged once per change of state; setup_failed asks (again) for a refusal whose
 * reason differs from the one logged, so "connection closed" does not hide a WRONGPASS that
 * keeps it down, while the same refusal at every reconnect is logged once. */
static void mark_down_why(tg_redis_t *rc, const char *why, int new_reason)
{
    if (rc->up) {
        rc->up = 0;
        atomic_fetch_sub_explicit(&rc->stats->up, 1, memory_order_relaxed);
    }
    if ((!rc->said_down || (new_reason && strncmp(rc->said_why, why, sizeof rc->said_why - 1))) &&
        !rc->closing) {
        rc->said_down = 1;
        snprintf(rc->said_why, sizeof rc->said_why, "%s", why);
        TG_WARN("limits: redis %s:%d down (worker %d): %s; limits.on_backend_down applies until it "
                "is back",
                rc->host, rc->port, rc->worker, why);
    }
}

static void mark_down(tg_redis_t *rc, const char *why)
{
    mark_down_why(rc, why, 0);
}

static void on_retry(uv_timer_t *h)
{
    connect_now(h->data);
}

/* hiredis 0.14's libuv adapter drops a poll's error status, so a refused connection is never
 * reported to it (nor to on_connect): a connection not up in CONNECT_MS is given up here. */
static void on_connect_timeout(uv_timer_t *h)
{
    tg_redis_t *rc = h->data;
    if (rc->up || !rc->ac) return;
    redisAsyncContext *ac = rc->ac;
    rc->ac = NULL;
    mark_down(rc, "cannot connect");
    redisAsyncFree(ac);
    schedule_retry(rc);
}

static void schedule_retry(tg_redis_t *rc)
{
    if (rc->closing) return;
    uv_timer_start(&rc->retry, on_retry, (uint64_t)rc->backoff_ms, 0);
    rc->backoff_ms = rc->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : rc->backoff_ms * 2;
}

/* A settlement sent before, its outcome unknown, may be sent again now (its marker in
 * Redis outlives the resend); else it is freed and counted: it might be counted twice. */
static int resendable(tg_redis_t *rc, blob_t *b)
{
    if (!b->sent || tg_redis_resend_ok(b->sent_ms, uv_now(rc->loop), rc->op_ttl_ms)) return 1;
    atomic_fetch_add_explicit(&rc->stats->settles_expired, 1, memory_order_relaxed);
    if (!rc->said_expired) {
        rc->said_expired = 1;
        TG_WARN("limits: redis %s:%d (worker %d): a settlement whose reply was lost is not sent "
                "again: first sent %llu ms ago, older than its marker allows; the shared counts "
                "may miss it (tollgate_limits_backend_settles_expired_total counts every one)",
                rc->host, rc->port, rc->worker,
                (unsigned long long)(uv_now(rc->loop) - b->sent_ms));
    }
    free(b);
    return 0;
}

static void flush_journal(tg_redis_t *rc)
{
    while (rc->jhead && rc->up) {
        blob_t *b = rc->jhead;
        tg_redis_ticket_t *t = ticket_new(rc, K_SETTLE, b, 0);
        if (!t) return;
        rc->jhead = b->next;
        if (!rc->jhead) rc->jtail = NULL;
        rc->jbytes -= b->bytes;
        b->next = NULL;
        int again = b->sent;
        if (!resendable(rc, b)) { /* (freed and counted) */
            t->cmd = NULL;
            ticket_free(t);
            continue;
        }
        if (send_blob(rc, b, t) != 0) {
            ticket_free(t);
            atomic_fetch_add_explicit(&rc->stats->journal_dropped, 1, memory_order_relaxed);
            continue;
        }
        atomic_fetch_add_explicit(&rc->stats->replayed, 1, memory_order_relaxed);
        if (again) atomic_fetch_add_explicit(&rc->stats->settles_resent, 1, memory_order_relaxed);
    }
}

/* Keeps b (taken) for when Redis is back, within JOURNAL_MAX. */
static void journal(tg_redis_t *rc, blob_t *b)
{
    if (rc->jbytes + b->bytes > JOURNAL_MAX || rc->closing) {
        free(b);
        atomic_fetch_add_explicit(&rc->stats->journal_dropped, 1, memory_order_relaxed);
        if (rc->closing) {
            rc->lost_exit++;
        } else if (!rc->said_full) {
            rc->said_full = 1;
            TG_WARN("limits: redis %s:%d (worker %d): the journal is full (%u bytes): what is "
                    "admitted locally until Redis is back is not sent; the shared counts miss it "
                    "(tollgate_limits_backend_journal_dropped_total counts every command)",
                    rc->host, rc->port, rc->worker, JOURNAL_MAX);
        }
        return;
    }
    b->next = NULL;
    if (rc->jtail)
        rc->jtail->next = b;
    else
        rc->jhead = b;
    rc->jtail = b;
    rc->jbytes += b->bytes;
    atomic_fetch_add_explicit(&rc->stats->journaled, 1, memory_order_relaxed);
}

/* Connected, script loaded, answering: admissions go to Redis again, and what was admitted
 * locally meanwhile is sent. */
static void become_up(tg_redis_t *rc)
{
    uv_timer_stop(&rc->retry); /* (the connect timeout, or the stall's probe) */
    rc->stalled = 0;
    rc->probes = 0;
    rc->timeouts = 0;
    if (!rc->up) {
        rc->up = 1;
        rc->backoff_ms = BACKOFF_MIN_MS;
        atomic_fetch_add_explicit(&rc->stats->up, 1, memory_order_relaxed);
        TG_INFO("limits: redis %s:%d up (worker %d)%s", rc->host, rc->port, rc->worker,
                rc->jhead ? ": sending what was admitted locally meanwhile" : "");
        rc->said_down = 0;
        rc->said_expired = rc->said_full = 0;
    }
    flush_journal(rc);
}

/* An error Redis answers without having run the command (a script refused at its first
 * write changed nothing): the server cannot write for now, so the same command is worth
 * sending again once it can. Anything else (a script error) is not. */
static int cannot_write(const redisReply *r)
{
    static const char *const codes[] = {"OOM ",  "READONLY ",   "MISCONF ", "LOADING ",
                                        "BUSY ", "MASTERDOWN ", "TRYAGAIN "};
    if (!r || r->type != REDIS_REPLY_ERROR) return 0;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (!strncmp(r->str, codes[i], strlen(codes[i]))) return 1;
    return 0;
}

static void on_pong(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    tg_redis_t *rc = ac->data;
    redisReply *r = reply;
    if (!rc || rc->closing || !r || !rc->stalled) return;
    /* Answered but still refusing writes (OOM, READONLY...): the connection is kept. Any
     * other answer is up, as a PONG was (an ACL that forbids the probe's key, say). */
    if (cannot_write(r)) {
        rc->probes = 0;
        return;
    }
    /* Every reply before it has been read (and a late admission undone): up again. */
    become_up(rc);
}

static void on_probe(uv_timer_t *h);

/* Down with the connection kept (stalled): admissions fall back and settlements are
 * journaled; a probe answered brings it back up. */
static void stall(tg_redis_t *rc, const char *why)
{
    mark_down(rc, why);
    rc->stalled = 1;
    rc->probes = 0;
    uv_timer_start(&rc->retry, on_probe, PROBE_MS, 0);
}

/* While stalled: a probe per PROBE_MS; PROBES_MAX unanswered and the connection is dropped
 * (and made again with the backoff). The probe is a write of a key of its own (a PING is
 * answered by a server that refuses every write: out of memory, a read-only replica). */
static void on_probe(uv_timer_t *h)
{
    tg_redis_t *rc = h->data;
    if (!rc->stalled || !rc->ac) return;
    if (++rc->probes > PROBES_MAX) {
        redisAsyncContext *ac = rc->ac;
        rc->ac = NULL;
        rc->stalled = 0;
        redisAsyncFree(ac); /* (pending callbacks run without a reply; then the retry) */
        if (!uv_is_active((uv_handle_t *)&rc->retry)) schedule_retry(rc);
        return;
    }
    redisAsyncCommand(rc->ac, on_pong, NULL, "SET tg:probe 1 PX 1000");
    uv_timer_start(&rc->retry, on_probe, PROBE_MS, 0);
}

/* A reply's error text for a log line: never one that holds the password (Redis does not
 * echo it, but a proxy in front of it might). */
static const char *error_text(const tg_redis_t *rc, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ERROR) return "an unexpected reply";
    if (rc->password && strstr(r->str, rc->password))
        return "an error (not shown: it holds the password)";
    return r->str;
}

/* The connection being set up (AUTH, SELECT, SCRIPT LOAD) got an error reply to step: it
 * failed like a refused connection (down, the reason logged once, made again with the
 * backoff; each new connection authenticates again). Detached first (ac->data NULL): the
 * replies still pending on it and its disconnect are nobody's. hiredis frees it once the
 * callback that calls this returns. */
static void setup_failed(tg_redis_t *rc, redisAsyncContext *ac, const char *step,
                         const redisReply *r)
{
    char why[320];
    const char *hint = "";
    if (!strncmp(r->str, "NOAUTH", 6) && !rc->password)
        hint = " (Redis asks for a password: redis://:PASSWORD@HOST in limits.backend, or "
               "limits.password_file)";
    else if (!strcmp(step, "AUTH"))
        hint = " (check the user and password of limits.backend or limits.password_file)";
    snprintf(why, sizeof why, "%s refused: %s%s", step, error_text(rc, r), hint);
    rc->ac = NULL;
    ac->data = NULL;
    mark_down_why(rc, why, 1);
    redisAsyncFree(ac);
    schedule_retry(rc); /* (in place of the connect timeout) */
}

/* During the set-up: the connection's first replies, before it is up or stalled. */
static int setting_up(const tg_redis_t *rc, const redisAsyncContext *ac)
{
    return !rc->up && !rc->stalled && rc->ac == ac;
}

static void on_loaded(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    tg_redis_t *rc = ac->data;
    redisReply *r = reply;
    if (!rc || rc->closing || !r) return; /* (no reply: the connection went; retried) */
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
        if (r->type == REDIS_REPLY_ERROR && setting_up(rc, ac)) {
            setup_failed(rc, ac, "SCRIPT LOAD", r);
            return;
        }
        TG_WARN("limits: redis %s:%d (worker %d): cannot load the script: %s", rc->host, rc->port,
                rc->worker, error_text(rc, r));
        return;
    }
    memcpy(rc->sha, r->str, 40);
    if (!rc->stalled) become_up(rc); /* (stalled: the PING that follows decides) */
}

/* A database that cannot be selected is a failed connection: the script loaded in database 0
 * would count every limit in the wrong place. */
static void on_select(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    tg_redis_t *rc = ac->data;
    redisReply *r = reply;
    if (rc && !rc->closing && r && r->type == REDIS_REPLY_ERROR && setting_up(rc, ac)) {
        char step[32];
        snprintf(step, sizeof step, "SELECT %d", rc->db);
        setup_failed(rc, ac, step, r);
    }
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    tg_redis_t *rc = ac->data;
    redisReply *r = reply;
    if (rc && !rc->closing && r && r->type == REDIS_REPLY_ERROR && setting_up(rc, ac))
        setup_failed(rc, ac, "AUTH", r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    tg_redis_t *rc = ac->data;
    if (!rc) return;
    if (status != REDIS_OK) {
        rc->ac = NULL; /* hiredis frees it */
        mark_down(rc, ac->errstr[0] ? ac->errstr : "cannot connect");
        schedule_retry(rc);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    tg_redis_t *rc = ac->data;
    if (!rc) return;
    rc->ac = NULL;
    rc->stalled = 0;
    if (rc->closing) {
        finish_free(rc);
        return;
    }
    mark_down(rc, ac->errstr[0] ? ac->errstr : "connection closed");
    schedule_retry(rc);
}

static void connect_now(tg_redis_t *rc)
{
    if (rc->closing || rc->ac) return;
    TG_DEBUG("limits: redis %s:%d: connecting (worker %d)", rc->host, rc->port, rc->worker);
    redisAsyncContext *ac = redisAsyncConnect(rc->host, rc->port);
    if (!ac || ac->err) {
        mark_down(rc, ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        schedule_retry(rc);
        return;
    }
    ac->data = rc;
    if (redisLibuvAttach(ac, rc->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_retry(rc);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    rc->ac = ac;
    uv_timer_start(&rc->retry, on_connect_timeout, CONNECT_MS, 0);
    if (rc->password) {
        /* First, on every connection: Redis answers anything else NOAUTH until it. Argv,
         * so any byte of the password goes as it is. */
        const char *argv[3] = {"AUTH", rc->user ? rc->user : rc->password, rc->password};
        size_t lens[3] = {4, strlen(argv[1]), strlen(rc->password)};
        redisAsyncCommandArgv(ac, on_auth, NULL, rc->user ? 3 : 2, argv, lens);
    }
    if (rc->db) redisAsyncCommand(ac, on_select, NULL, "SELECT %d", rc->db);
    /* (An EVALSHA that finds no script loads it again too: on_reply.) */
    redisAsyncCommand(ac, on_loaded, NULL, "SCRIPT LOAD %s", tg_redis_lua);
}

/* ---- replies --------------------------------------------------------------------------------- */

/* The undo of an admission that admitted with nobody waiting: every counter moved back,
 * the slot and the reservation given back. */
static void undo(tg_redis_t *rc, tg_redis_ticket_t *t)
{
    atomic_fetch_add_explicit(&rc->stats->undone, 1, memory_order_relaxed);
    tg_redis_settle(rc, &t->hold, 0, t->undo, t->nundo);
}

/* A claim's reply: "OK" (set), nil (set already: NX), anything else no answer. Its waiter
 * told, if it still waits; a late answer changes nothing (see client.h). */
static void on_claim_reply(tg_redis_t *rc, tg_redis_ticket_t *t, const redisReply *r)
{
    tg_redis_claim_t res = TG_REDIS_NOANSWER;
    if (r && r->type == REDIS_REPLY_STATUS && r->len == 2 && !memcmp(r->str, "OK", 2))
        res = TG_REDIS_CLAIMED;
    else if (r && r->type == REDIS_REPLY_NIL)
        res = TG_REDIS_TAKEN;
    else if (r && r->type == REDIS_REPLY_ERROR && !rc->said_claim_error) {
        /* Once until a claim succeeds again: a Redis that refuses every claim (an ACL
         * without the key, a wrong type) must not write a line per signed request. */
        rc->said_claim_error = 1;
        TG_WARN("signing: redis %s:%d refused the replay check (worker %d): %s; "
                "limits.on_backend_down decides until it succeeds",
                rc->host, rc->port, rc->worker, error_text(rc, r));
    }
    if (res != TG_REDIS_NOANSWER) rc->said_claim_error = 0;
    if (t->queued) {
        unqueue(rc, t);
        arm_deadline(rc);
        if (res != TG_REDIS_NOANSWER) rc->timeouts = 0;
        if (res == TG_REDIS_TAKEN)
            atomic_fetch_add_explicit(&rc->stats->claims_taken, 1, memory_order_relaxed);
        if (res == TG_REDIS_NOANSWER)
            atomic_fetch_add_explicit(&rc->stats->claims_unanswered, 1, memory_order_relaxed);
        t->ccb(t->ud, res);
    }
    ticket_free(t);
}

/* A settlement's reply. None (the connection dropped after it was sent): Redis may or may
 * not have run it, so it is journaled and sent again once back, which its marker makes
 * harmless, unless it is too old for that (resendable). None at exit: counted, lost. */
static void on_settle_reply(tg_redis_t *rc, tg_redis_ticket_t *t, const redisReply *r)
{
    if (!r && !rc->closing) {
        if (resendable(rc, t->cmd)) journal(rc, t->cmd);
        t->cmd = NULL;
    } else if (!r) {
        atomic_fetch_add_explicit(&rc->stats->settle_errors, 1, memory_order_relaxed);
        rc->lost_exit++;
    } else if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
               r->element[0]->type == REDIS_REPLY_INTEGER) {
        long long v = r->element[0]->integer;
        if (tg_redis_settle_reply(&v, 1) == TG_REDIS_SEEN)
            atomic_fetch_add_explicit(&rc->stats->settles_seen, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&rc->stats->settle_errors, 1, memory_order_relaxed);
        TG_DEBUG("limits: redis settle failed: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply");
    }
    ticket_free(t);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    tg_redis_ticket_t *t = priv;
    tg_redis_t *rc = t->rc;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8) && !t->retried &&
        t->kind != K_CLAIM && rc->ac && !rc->closing) {
        /* Redis lost the script (a restart, SCRIPT FLUSH): load it, then the same command,
         * which Redis runs after the load. */
        t->retried = 1;
        redisAsyncCommand(rc->ac, on_loaded, NULL, "SCRIPT LOAD %s", tg_redis_lua);
        if (send_blob(rc, t->cmd, t) == 0) return;
    }
    if (cannot_write(r) && !rc->closing) {
        /* Out of memory, a replica, loading...: down until a probe can write. A settlement
         * it refused is sent again then (dropped, its counts were lost: a client got past
         * its limit with the admissions made meanwhile); an admission falls back below. */
        if (!rc->stalled && rc->ac) stall(rc, r->str);
        if (t->kind == K_SETTLE) {
            journal(rc, t->cmd);
            t->cmd = NULL;
            ticket_free(t);
            return;
        }
    }
    if (t->kind == K_SETTLE) {
        on_settle_reply(rc, t, r);
        return;
    }
    if (t->kind == K_CLAIM) {
        on_claim_reply(rc, t, r);
        return;
    }
    long long v[5 + 2 * TG_PLAN_MAX_RULES];
    size_t n = 0;
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 4 &&
             r->elements <= sizeof v / sizeof v[0];
    for (size_t i = 0; ok && i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_INTEGER)
            ok = 0;
        else
            v[n++] = r->element[i]->integer;
    }
    if (r && r->type == REDIS_REPLY_ERROR)
        TG_WARN("limits: redis admission failed (worker %d): %s", rc->worker, r->str);
    if (t->queued) {
        unqueue(rc, t);
        arm_deadline(rc);
        tg_admission_t a;
        int64_t spend = -1, ahead[TG_PLAN_MAX_RULES], stamp = 0;
        int nahead = ok ? tg_redis_admit_reply(v, n, t->plan, &a, &spend, ahead, &stamp) : 0;
        if (nahead < 0) {
            TG_WARN("limits: redis admission (worker %d): a reply of the wrong shape", rc->worker);
            ok = 0;
            nahead = 0;
        }
        if (ok) rc->timeouts = 0;
        t->cb(t->ud, ok ? &a : NULL, spend, t->plan, ahead, (size_t)nahead, stamp);
    } else if (ok && v[0] == TG_REDIS_OK) {
        undo(rc, t); /* timed out or cancelled, and admitted after all */
    }
    ticket_free(t);
}

static void on_deadline(uv_timer_t *h)
{
    tg_redis_t *rc = h->data;
    /* libuv runs due timers before it polls: after an iteration longer than limits.timeout
     * (a busy worker) an answer that came in time may sit unread while its admission times
     * out. What the socket holds is read first. (Measured alone, this changed nothing: the
     * commands were not sent yet, which tg_redis_admit's write fixes; it covers the answer
     * that comes during a long iteration after the write. A disconnect found here frees
     * the context and answers its waiting tickets with no reply.) */
    if (rc->ac && rc->up) redisAsyncHandleRead(rc->ac);
    uint64_t now = uv_now(rc->loop);
    int expired = 0;
    while (rc->head && rc->head->deadline_ms <= now) {
        tg_redis_ticket_t *t = rc->head;
        unqueue(rc, t);
        expired++;
        /* (The ticket stays with hiredis until its reply.) */
        if (t->kind == K_CLAIM) {
            atomic_fetch_add_explicit(&rc->stats->claims_unanswered, 1, memory_order_relaxed);
            t->ccb(t->ud, TG_REDIS_NOANSWER);
        } else {
            atomic_fetch_add_explicit(&rc->stats->timeouts, 1, memory_order_relaxed);
            t->cb(t->ud, NULL, -1, NULL, NULL, 0, 0);
        }
    }
    rc->timeouts += expired;
    if (rc->timeouts >= TIMEOUTS_DOWN && rc->up && rc->ac) {
        /* Down, but the connection is kept: what Redis still runs of the admissions sent
         * is answered late and undone, rather than counted with nobody to give it back
         * (a dropped connection's commands may still run). A PING decides when it is back. */
        stall(rc, "no answer within limits.timeout");
    }
    arm_deadline(rc);
}

/* ---- the interface -----------------------------------------------------------------------------
 */

static void free_secret(char *s)
{
    if (!s) return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

tg_redis_t *tg_redis_new(uv_loop_t *loop, const tg_redis_addr_t *addr, long timeout_ms, long ttl_ms,
                         int worker, tg_redis_stats_t *stats)
{
    tg_redis_t *rc = calloc(1, sizeof *rc);
    if (!rc) return NULL;
    if ((addr->user && !(rc->user = strdup(addr->user))) ||
        (addr->password && !(rc->password = strdup(addr->password)))) {
        free_secret(rc->user);
        free(rc);
        return NULL;
    }
    rc->loop = loop;
    snprintf(rc->host, sizeof rc->host, "%s", addr->host);
    rc->port = addr->port;
    rc->db = addr->db;
    rc->timeout_ms = timeout_ms;
    rc->ttl_ms = ttl_ms;
    rc->op_ttl_ms = TG_REDIS_OP_TTL_MS;
    rc->worker = worker;
    rc->stats = stats;
    rc->backoff_ms = BACKOFF_MIN_MS;
    unsigned char rnd[8], md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (RAND_bytes(rnd, sizeof rnd) != 1 ||
        EVP_Digest(tg_redis_lua, strlen(tg_redis_lua), md, &mdlen, EVP_sha1(), NULL) != 1) {
        free_secret(rc->user);
        free_secret(rc->password);
        free(rc);
        return NULL;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(rc->instance + 2 * i, 3, "%02x", rnd[i]);
    for (unsigned i = 0; i < 20 && i < mdlen; i++)
        snprintf(rc->sha + 2 * i, 3, "%02x", md[i]);
    uv_timer_init(loop, &rc->retry);
    uv_timer_init(loop, &rc->deadline);
    rc->retry.data = rc->deadline.data = rc;
    rc->open_handles = 2;
    atomic_fetch_add_explicit(&stats->workers, 1, memory_order_relaxed);
    connect_now(rc);
    return rc;
}

static void on_handle_closed(uv_handle_t *h)
{
    tg_redis_t *rc = h->data;
    if (--rc->open_handles) return;
    free_secret(rc->user);
    free_secret(rc->password);
    free(rc);
}

/* The end of a client: the connection freed (pending callbacks run with no reply), the
 * journal dropped (counted), the timers closed; rc itself is freed when they are. Once. */
static void finish_free(tg_redis_t *rc)
{
    if (rc->finished) return;
    rc->finished = 1;
    if (rc->ac) {
        redisAsyncContext *ac = rc->ac;
        rc->ac = NULL;
        redisAsyncFree(ac);
    }
    if (rc->up) atomic_fetch_sub_explicit(&rc->stats->up, 1, memory_order_relaxed);
    rc->up = 0;
    atomic_fetch_sub_explicit(&rc->stats->workers, 1, memory_order_relaxed);
    size_t kept = 0;
    while (rc->jhead) {
        blob_t *b = rc->jhead;
        rc->jhead = b->next;
        free(b);
        kept++;
        atomic_fetch_add_explicit(&rc->stats->journal_dropped, 1, memory_order_relaxed);
    }
    /* The metrics die with the process: the loss is written where it outlives it. */
    if (kept || rc->lost_exit)
        TG_WARN("limits: redis %s:%d (worker %d): at exit, %zu commands kept while it was down "
                "were not sent and %zu settlements were left unanswered or unsent: the shared "
                "counts miss them",
                rc->host, rc->port, rc->worker, kept, rc->lost_exit);
    uv_timer_stop(&rc->retry);
    uv_timer_stop(&rc->deadline);
    uv_close((uv_handle_t *)&rc->retry, on_handle_closed);
    uv_close((uv_handle_t *)&rc->deadline, on_handle_closed);
}

static void on_close_deadline(uv_timer_t *h)
{
    finish_free(h->data);
}

void tg_redis_free(tg_redis_t *rc)
{
    if (!rc) return;
    rc->closing = 1;
    uv_timer_stop(&rc->retry);
    uv_timer_stop(&rc->deadline);
    if (rc->ac && rc->up) {
        /* The last requests' settlements (slots, reservations, costs) are still being sent
         * or answered: a graceful disconnect lets them finish (hiredis closes once every
         * reply is in, then on_disconnect ends the client), within CLOSE_MS. */
        uv_timer_start(&rc->retry, on_close_deadline, CLOSE_MS, 0);
        redisAsyncDisconnect(rc->ac);
        return;
    }
    finish_free(rc);
}
int tg_redis_is_up(const tg_redis_t *rc)
{
    return rc->up;
}

long tg_redis_ttl_ms(const tg_redis_t *rc)
{
    return rc->ttl_ms;
}

const char *tg_redis_sha(const tg_redis_t *rc)
{
    return rc->sha;
}

void tg_redis_next_id(tg_redis_t *rc, char *out)
{
    snprintf(out, TG_REDIS_ID_SIZE, "%s-%d-%llu", rc->instance, rc->worker,
             (unsigned long long)++rc->seq);
}

/* t, just sent, waits for its reply in the list, its deadline limits.timeout from now. */
static void wait_for(tg_redis_t *rc, tg_redis_ticket_t *t)
{
    /* On the wire now, not at the next iteration's poll: libuv runs due timers before it
     * polls, so after a long iteration (a busy worker) the command was still in hiredis's
     * buffer when its deadline passed (101 of 1000 admissions to a local Redis timed out,
     * and 390 fell back with the stalls that followed; none since). A write that fails is
     * left to the poll (hiredis's write event finds the error and ends the connection), so
     * no callback runs inside this call. */
    int done;
    (void)redisBufferWrite(&rc->ac->c, &done);
    uv_update_time(rc->loop); /* (the iteration's instant may be long past: a busy loop) */
    t->deadline_ms = uv_now(rc->loop) + (uint64_t)rc->timeout_ms;
    t->queued = 1;
    t->prev = rc->tail;
    if (rc->tail)
        rc->tail->next = t;
    else
        rc->head = t;
    rc->tail = t;
    if (rc->head == t) arm_deadline(rc);
}

tg_redis_ticket_t *tg_redis_admit(tg_redis_t *rc, const tg_redis_cmd_t *c,
                                  const tg_admit_plan_t *plan, const tg_redis_hold_t *hold,
                                  tg_redis_admit_cb cb, void *ud)
{
    if (!rc->up || !rc->ac || c->overflow) return NULL;
    blob_t *b = blob_of(c);
    tg_redis_ticket_t *t = b ? ticket_new(rc, K_ADMIT, b, plan->n) : NULL;
    if (!t) {
        free(b);
        return NULL;
    }
    t->hold = *hold;
    /* Only the rules in use: a plan is mostly its empty tail. */
    memcpy(t->plan, plan, offsetof(tg_admit_plan_t, rules));
    memcpy(t->plan->rules, plan->rules, plan->n * sizeof plan->rules[0]);
    memcpy(t->plan->model, plan->model, sizeof plan->model);
    t->plan->cap = plan->cap;
    t->plan->has_budget = plan->has_budget;
    t->plan->hard = plan->hard;
    t->plan->budget = plan->budget;
    t->plan->spent = plan->spent;
    t->plan->est_cost = plan->est_cost;
    for (size_t i = 0; i < plan->n; i++) /* the model's value is the plan's own */
        if (plan->rules[i].value == plan->model) t->plan->rules[i].value = t->plan->model;
    t->nundo = tg_redis_plan_adj(plan, hold->tenant, -1, 0, t->undo);
    t->cb = cb;
    t->ud = ud;
    if (send_blob(rc, b, t) != 0) {
        ticket_free(t);
        return NULL;
    }
    atomic_fetch_add_explicit(&rc->stats->admits, 1, memory_order_relaxed);
    wait_for(rc, t);
    return t;
}

tg_redis_ticket_t *tg_redis_claim(tg_redis_t *rc, const char *key, size_t klen, int64_t px_ms,
                                  tg_redis_claim_cb cb, void *ud)
{
    if (!rc->up || !rc->ac) {
        atomic_fetch_add_explicit(&rc->stats->claims_unanswered, 1, memory_order_relaxed);
        return NULL;
    }
    tg_redis_cmd_t *c = &rc->scratch;
    char px[24];
    int pl = snprintf(px, sizeof px, "%lld", (long long)(px_ms > 0 ? px_ms : 1));
    c->argc = 0;
    c->used = 0;
    c->overflow = klen > sizeof c->buf / 2;
    const char *argv[] = {"SET", key, "1", "NX", "PX", px};
    size_t lens[] = {3, klen, 1, 2, 2, (size_t)pl};
    for (size_t i = 0; i < 6 && !c->overflow; i++) {
        memcpy(c->buf + c->used, argv[i], lens[i]);
        c->argv[c->argc] = c->buf + c->used;
        c->argvlen[c->argc++] = lens[i];
        c->used += lens[i];
    }
    blob_t *b = c->overflow ? NULL : blob_of(c);
    tg_redis_ticket_t *t = b ? ticket_new(rc, K_CLAIM, b, 0) : NULL;
    if (!t || send_blob(rc, b, t) != 0) {
        if (t)
            ticket_free(t);
        else
            free(b);
        atomic_fetch_add_explicit(&rc->stats->claims_unanswered, 1, memory_order_relaxed);
        return NULL;
    }
    t->ccb = cb;
    t->ud = ud;
    atomic_fetch_add_explicit(&rc->stats->claims, 1, memory_order_relaxed);
    wait_for(rc, t);
    return t;
}

void tg_redis_cancel(tg_redis_ticket_t *t)
{
    if (!t || !t->queued) return;
    tg_redis_t *rc = t->rc;
    unqueue(rc, t);
    arm_deadline(rc);
}

void tg_redis_settle(tg_redis_t *rc, const tg_redis_hold_t *hold, int64_t cost,
                     const tg_redis_adj_t *adj, size_t n)
{
    tg_redis_cmd_t *c = &rc->scratch;
    char op[TG_REDIS_ID_SIZE];
    tg_redis_next_id(rc, op); /* this command's own: an admission may have several */
    if (tg_redis_settle_cmd(c, rc->sha, hold, op, rc->op_ttl_ms, cost, adj, n) != 0) {
        atomic_fetch_add_explicit(&rc->stats->settle_errors, 1, memory_order_relaxed);
        return;
    }
    blob_t *b = blob_of(c);
    if (!b) {
        atomic_fetch_add_explicit(&rc->stats->settle_errors, 1, memory_order_relaxed);
        return;
    }
    if (rc->up && rc->ac) {
        tg_redis_ticket_t *t = ticket_new(rc, K_SETTLE, b, 0);
        if (t && send_blob(rc, b, t) == 0) {
            atomic_fetch_add_explicit(&rc->stats->settles, 1, memory_order_relaxed);
            return;
        }
        if (t) {
            t->cmd = NULL;
            ticket_free(t);
        }
    }
    journal(rc, b); /* down: kept until Redis is back */
}

void tg_redis_set_op_ttl(tg_redis_t *rc, int64_t ms)
{
    if (ms > 0) rc->op_ttl_ms = ms;
}

tg_redis_cmd_t *tg_redis_scratch(tg_redis_t *rc)
{
    return &rc->scratch;
}

void tg_redis_count_fallback(tg_redis_t *rc)
{
    atomic_fetch_add_explicit(&rc->stats->fallbacks, 1, memory_order_relaxed);
}

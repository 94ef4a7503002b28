/* WAL checkpoints on a thread of their own, for the connection that writes the most (the
 * recorder's writer: tg_store_checkpoint_in_background).
 *
 * Why: a checkpoint copies the WAL into the database file and syncs both. SQLite runs it
 * inside the commit that took the WAL past wal_autocheckpoint pages, so the writer's
 * append took 27-55 ms about every 16 MB of WAL at ~70,000 events a second (longer on a
 * busy disk), and the events that arrived meanwhile waited: the oldest was committed up to
 * 66 ms after its request began, against a 50 ms flush interval (bench/RESULTS.md). Here
 * the writer's connection runs no checkpoint of its own; a WAL hook on it wakes this
 * thread once the WAL holds SQ_CKPT_PAGES frames, and the thread runs a PASSIVE checkpoint
 * on a second connection: it copies what the readers allow and never takes the writer's
 * lock, so the writer keeps committing meanwhile.
 *
 * When: a round once SQ_CKPT_PAGES frames wait to be copied (the first when the WAL reaches
 * that size), and after it, while the WAL is past that size, a round for what came since
 * at most every SQ_CKPT_GAP_US. The WAL starts again from its beginning only at a commit
 * that finds every frame copied, so under constant writes a round has to end between two
 * commits for that: short rounds, often, make it likely (the WAL stayed at 17-20 MB in the
 * bench), and the gap bounds what they cost the disk (a round syncs the WAL and the
 * database file). Past SQ_CKPT_FORCE_PAGES frames the writer checkpoints itself (PASSIVE,
 * as SQLite's autocheckpoint does; little is left to copy by then), which bounds the WAL.
 * A failed round (a full disk) is logged and tried again at the next round; only a lost
 * WAL index (walshm.h) ends the thread, and the writer then checkpoints as SQLite would.
 * The clock is an argument (sq_ckpt_set_clock), so tests choose when a gap has passed. */
#include "store/sqlite_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/log.h"

struct sq_ckpt {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int want;             /* a round is asked for */
    int busy;             /* a round runs */
    int stop;             /* sq_ckpt_stop: leave */
    int dead;             /* the thread gave up: the writer checkpoints itself */
    int failing;          /* the last round failed (logged once until one works again) */
    long rounds;          /* rounds this thread ran (PASSIVE checkpoints tried) */
    long by_writer;       /* checkpoints the writer's connection ran itself */
    int frames;           /* the WAL's frames at the last commit (the hook's) */
    int copied;           /* of those, copied by the last round of this WAL (0: none yet) */
    unsigned gen;         /* counts the WAL's restarts the hook saw (a round's copied then stale) */
    int64_t last_end_us;  /* when the last round ended, by now() */
    int64_t (*now)(void); /* monotonic microseconds: tg_mono_us, or a test's */
    sqlite3 *db;          /* the thread's own connection */
    tg_walshm_t shm;
    struct sq_ckpt *abandoned_next; /* in `abandoned` once stopped with its index lost */
};

static pthread_mutex_t abandoned_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sq_ckpt *abandoned;

/* Marks the thread gone, once, saying why: from then on the writer checkpoints itself. */
static void give_up(sq_ckpt_t *c, const char *why)
{
    pthread_mutex_lock(&c->mu);
    int first = !c->dead;
    c->dead = 1;
    pthread_mutex_unlock(&c->mu);
    if (first) TG_WARN("store: WAL checkpoints are back on the writer's commits (%s)", why);
}

static void *ckpt_main(void *arg)
{
    sq_ckpt_t *c = arg;
    pthread_setname_np(pthread_self(), "tg-checkpoint");
    for (;;) {
        pthread_mutex_lock(&c->mu);
        while (!c->want && !c->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->stop) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        c->want = 0;
        c->busy = 1;
        unsigned gen = c->gen;
        pthread_mutex_unlock(&c->mu);

        tg_err_t err = {{0}};
        int rc = SQLITE_OK, ck = 0, lost = 0;
        char why[300] = "";
        if (tg_walshm_check(&c->shm, &err) != 0) {
            lost = 1;
            give_up(c, err.msg);
        } else {
            rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, &ck);
            if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
                snprintf(why, sizeof why, "%s", sqlite3_errmsg(c->db));
        }

        pthread_mutex_lock(&c->mu);
        c->busy = 0;
        c->rounds++;
        c->last_end_us = c->now();
        /* What this round copied counts for the WAL it ran on: not if the WAL started
         * again meanwhile (the writer found everything copied). */
        if (rc == SQLITE_OK && c->gen == gen && ck > c->copied) c->copied = ck;
        int was_failing = c->failing;
        c->failing = why[0] != 0;
        int dead = c->dead;
        pthread_cond_broadcast(&c->cv); /* sq_ckpt_settle */
        pthread_mutex_unlock(&c->mu);
        if (why[0] && !was_failing)
            TG_WARN("store: a WAL checkpoint failed (%s); tried again at the next round, the "
                    "writer checkpoints itself past %d pages of WAL",
                    why, SQ_CKPT_FORCE_PAGES);
        else if (!why[0] && was_failing && !lost)
            TG_INFO("store: WAL checkpoints work again");
        if (dead) break;
    }
    return NULL;
}

/* The writer connection's WAL hook: after each commit, with the WAL's frame count. */
static int on_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    sq_ckpt_t *c = arg;
    pthread_mutex_lock(&c->mu);
    if (frames < c->frames) { /* the WAL started again from its beginning */
        c->gen++;
        c->copied = 0;
    }
    c->frames = frames;
    if (frames < SQ_CKPT_PAGES) {
        pthread_mutex_unlock(&c->mu);
        return SQLITE_OK;
    }
    int waiting = frames > c->copied ? frames - c->copied : 0;
    int idle = !c->busy && !c->want && !c->dead;
    int self = c->dead || (frames >= SQ_CKPT_FORCE_PAGES && idle);
    if (!self && idle &&
        (waiting >= SQ_CKPT_PAGES ||
         (waiting > 0 && c->now() - c->last_end_us >= SQ_CKPT_GAP_US))) {
        c->want = 1;
        pthread_cond_signal(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    if (self) {
        /* As SQLite's own autocheckpoint: PASSIVE, its result ignored (the next commit
         * tries again). */
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_lock(&c->mu);
        c->by_writer++;
        pthread_mutex_unlock(&c->mu);
    }
    return SQLITE_OK;
}

static void ckpt_free(sq_ckpt_t *c)
{
    if (c->db) sqlite3_close_v2(c->db);
    tg_walshm_release(&c->shm);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int sq_ckpt_start(sq_store_t *s, tg_err_t *err)
{
    if (s->ckpt) return 0;
    const char *path = sqlite3_db_filename(s->db, "main");
    if (!path || !*path) return 0; /* in memory: no WAL */
    if (tg_walshm_check(&s->shm, err) != 0) return -1;
    sq_ckpt_t *c = calloc(1, sizeof *c);
    if (!c) return tg_err_set(err, "store: checkpointer: out of memory");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->now = tg_mono_us;
    int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    /* A first read opens the WAL and maps its index: a connection that has read nothing
     * checkpoints nothing. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(c->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        tg_err_set(err, "store %s: checkpointer: %s", path,
                   c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        ckpt_free(c);
        return -1;
    }
    if (tg_walshm_arm(&c->shm, path, err) != 0) {
        ckpt_free(c);
        return -1;
    }
    if (pthread_create(&c->thread, NULL, ckpt_main, c) != 0) {
        ckpt_free(c);
        return tg_err_set(err, "store %s: checkpointer: cannot start its thread", path);
    }
    /* Off first: sqlite3_wal_autocheckpoint installs a hook of its own, replaced here. */
    sqlite3_wal_autocheckpoint(s->db, 0);
    sqlite3_wal_hook(s->db, on_commit, c);
    s->ckpt = c;
    return 0;
}

void sq_ckpt_settle(sq_store_t *s)
{
    sq_ckpt_t *c = s->ckpt;
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    while ((c->want || c->busy) && !c->dead)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

void sq_ckpt_stats(sq_store_t *s, sq_ckpt_stats_t *st)
{
    sq_ckpt_t *c = s->ckpt;
    memset(st, 0, sizeof *st);
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    st->rounds = c->rounds;
    st->by_writer = c->by_writer;
    st->dead = c->dead;
    st->failing = c->failing;
    st->frames = c->frames;
    st->restarts = c->gen;
    pthread_mutex_unlock(&c->mu);
}

void sq_ckpt_set_clock(sq_store_t *s, int64_t (*now)(void))
{
    sq_ckpt_t *c = s->ckpt;
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->now = now;
    c->last_end_us = now();
    pthread_mutex_unlock(&c->mu);
}

void sq_ckpt_stop(sq_store_t *s)
{
    sq_ckpt_t *c = s->ckpt;
    if (!c) return;
    /* The writer's connection back to SQLite's own checkpoints (it may be used on). */
    sqlite3_wal_hook(s->db, NULL, NULL);
    sqlite3_wal_autocheckpoint(s->db, SQ_CKPT_PAGES);
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    s->ckpt = NULL;
    /* Its WAL index lost, the connection is not touched, not even to close it (as sqlite.c
     * does with a handle's): kept reachable from here, so leak checkers say nothing. */
    if (tg_walshm_check(&c->shm, NULL) != 0) {
        pthread_mutex_lock(&abandoned_mu);
        c->abandoned_next = abandoned;
        abandoned = c;
        pthread_mutex_unlock(&abandoned_mu);
        return;
    }
    ckpt_free(c);
}

/* The archive of old usage events (`tollgate archive`): the events older than a UTC day
 * exported as JSON lines (one object per event, every column of usage_events by name,
 * NULL as null), zstd-compressed; the file read back and checked (the number of events
 * and a SHA-256 over their ids); only then the events are purged from the store.
 * usage_daily is kept, so daily reports, budgets and invoices still see the archived days.
 *
 * A failure before the purge leaves the store as it was and no file at the output path
 * (the file is written as PATH.partial and linked into place once verified; an existing
 * PATH is never overwritten). The purge deletes exactly the ids read back from the file,
 * in short transactions (tg_store_events_delete); if it fails midway, what it already
 * deleted is in the verified file, and running archive again (to a new file) takes the
 * rest.
 *
 * With a KEK (encryption configured) the compressed bytes are sealed as they are written
 * (crypt/stream.h: a header naming the KEK's id, then sealed 1 MiB frames): the file is
 * never whole in memory, and reading it needs that KEK. A plain archive (written before
 * encryption was configured) is still read as it is. */
#ifndef TG_ARCHIVE_ARCHIVE_H
#define TG_ARCHIVE_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include <stdio.h>

#include "crypt/crypt.h"
#include "store/store.h"
#include "util/err.h"

typedef struct tg_archive_stats {
    int64_t events;  /* events in the file (written, then found again on reading it) */
    int64_t deleted; /* events purged from the store */
    int64_t bytes;   /* size of the file */
    char sha256[65]; /* hex SHA-256 over the ids in file order, 8 bytes big-endian each */
} tg_archive_stats_t;

/* Archives the events with ts_us < before_us into the new file out_path (sealed by kek
 * unless it is NULL), then purges them. 0; -1 (err set) with nothing purged; TG_STORE_BUSY or -1
 * from the purge, with the file complete and st->deleted what was purged. */
int tg_archive_run(tg_store_t *s, int64_t before_us, const char *out_path, const tg_kek_t *kek,
                   tg_archive_stats_t *st, tg_err_t *err);

/* Reads the archive at path: *count events and their ids' SHA-256 (hex, 65 bytes); with
 * ids non-NULL, the ids too (malloc'd, *nids of them; the caller frees); with copy
 * non-NULL, the JSON lines are written to it as they are read (provisional until 0 is
 * returned). Every line must be a JSON object with an integer "id". A sealed archive
 * needs kek (NULL or another KEK: an error naming the KEK id it needs). */
int tg_archive_read(const char *path, const tg_kek_t *kek, FILE *copy, int64_t *count,
                    char sha256[65], int64_t **ids, size_t *nids, tg_err_t *err);

#endif

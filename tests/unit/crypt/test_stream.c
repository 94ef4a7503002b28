/* Tests src/crypt/stream.c: a stream of several frames read back whole; a file cut at a
 * frame boundary, cut mid-frame, with a flipped bit or data after its end refused; no KEK
 * or another KEK refused naming the id the file needs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "crypt/chunk.h"
#include "crypt/kek_fixture.h"
#include "crypt/stream.h"

#define DATA (TG_STREAM_CHUNK * 2 + 1000) /* two full frames and a final one */

static unsigned char *data(void)
{
    unsigned char *d = malloc(DATA);
    for (size_t i = 0; i < DATA; i++)
        d[i] = (unsigned char)(i * 7 + i / 251);
    return d;
}

/* The stream of DATA bytes sealed by k, written in uneven pieces; its bytes malloc'd. */
static unsigned char *sealed(const tg_kek_t *k, size_t *len)
{
    unsigned char *d = data(), *out = NULL;
    FILE *f = open_memstream((char **)&out, len);
    tg_sealw_t *w;
    tg_err_t err = {{0}};
    assert_int_equal(tg_sealw_open(f, k, &w, &err), 0);
    for (size_t at = 0; at < DATA;) {
        size_t n = DATA - at < 70001 ? DATA - at : 70001;
        assert_int_equal(tg_sealw_write(w, d + at, n, &err), 0);
        at += n;
    }
    assert_int_equal(tg_sealw_finish(w, &err), 0);
    fclose(f);
    free(d);
    return out;
}

/* Reads bytes back with k: 0 and the data checked, or -1 with err's text in msg. */
static int read_back(const unsigned char *bytes, size_t len, const tg_kek_t *k, char msg[600])
{
    FILE *f = fmemopen((void *)bytes, len, "rb");
    tg_sealr_t *r;
    tg_err_t err = {{0}};
    int rc = -1;
    unsigned char *want = data();
    size_t at = 0;
    if (tg_stream_is_sealed(f) == 1 && tg_sealr_open(f, k, "x.zst", &r, &err) == 0) {
        const unsigned char *p;
        size_t n;
        int got;
        while ((got = tg_sealr_next(r, &p, &n, &err)) == 1) {
            assert_true(at + n <= DATA);
            assert_memory_equal(p, want + at, n);
            at += n;
        }
        if (got == 0 && at == DATA) rc = 0;
        tg_sealr_free(r);
    }
    snprintf(msg, 600, "%s", err.msg);
    free(want);
    fclose(f);
    return rc;
}

static void test_round_trip(void **state)
{
    (void)state;
    tg_kek_t a = fx_kek(FX_KEK_A);
    size_t len;
    unsigned char *s = sealed(&a, &len);
    char msg[600];
    assert_int_equal(len, TG_STREAM_HEAD + DATA + 3 * (TG_CHUNK_HEAD + TG_SEAL_OVERHEAD));
    assert_int_equal(read_back(s, len, &a, msg), 0);
    free(s);
}

static void test_cut_or_altered_refused(void **state)
{
    (void)state;
    tg_kek_t a = fx_kek(FX_KEK_A);
    size_t len, frame = TG_CHUNK_HEAD + TG_STREAM_CHUNK + TG_SEAL_OVERHEAD;
    unsigned char *s = sealed(&a, &len);
    char msg[600];
    /* Cut after the first frame: each frame opens, the end is missing. */
    assert_int_equal(read_back(s, TG_STREAM_HEAD + frame, &a, msg), -1);
    assert_non_null(strstr(msg, "final frame"));
    /* Cut mid-frame. */
    assert_int_equal(read_back(s, len - 10, &a, msg), -1);
    /* One flipped bit in the second frame. */
    s[TG_STREAM_HEAD + frame + 500] ^= 4;
    assert_int_equal(read_back(s, len, &a, msg), -1);
    assert_non_null(strstr(msg, "does not authenticate"));
    s[TG_STREAM_HEAD + frame + 500] ^= 4;
    /* Bytes after the final frame. */
    unsigned char *more = malloc(len + 5);
    memcpy(more, s, len);
    memset(more + len, 0, 5);
    assert_int_equal(read_back(more, len + 5, &a, msg), -1);
    free(more);
    assert_int_equal(read_back(s, len, &a, msg), 0);
    free(s);
}

static void test_needs_its_kek(void **state)
{
    (void)state;
    tg_kek_t a = fx_kek(FX_KEK_A), b = fx_kek(FX_KEK_B);
    size_t len;
    unsigned char *s = sealed(&a, &len);
    char msg[600], id[17];
    tg_kek_id_hex(&a, id);
    assert_int_equal(read_back(s, len, &b, msg), -1);
    assert_non_null(strstr(msg, id));
    assert_int_equal(read_back(s, len, NULL, msg), -1);
    assert_non_null(strstr(msg, id));
    assert_null(memmem(s, len, "\x07\x0e\x15\x1c", 4)); /* the data is not in clear */
    free(s);
}

/* kek rotate on a file: re-wrapped to the new KEK it reads back with it alone; a second
 * run has nothing to do; a third KEK is refused. */
static void test_rekey(void **state)
{
    (void)state;
    tg_kek_t a = fx_kek(FX_KEK_A), b = fx_kek(FX_KEK_B), c = fx_kek(FX_KEK_A);
    c.key[0] ^= 1;
    c.id[0] ^= 1;
    size_t len, frames;
    unsigned char *s = sealed(&a, &len);
    char path[] = "/tmp/tg_test_stream.XXXXXX", msg[600];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, s, len), (ssize_t)len);
    close(fd);
    tg_err_t err = {{0}};
    assert_int_equal(tg_stream_rekey(path, &a, &b, &frames, &err), 1);
    assert_int_equal(frames, 3);
    assert_int_equal(tg_stream_rekey(path, &a, &b, &frames, &err), 0);
    assert_int_equal(tg_stream_rekey(path, &c, &a, &frames, &err), -1); /* under b: neither */
    FILE *f = fopen(path, "rb");
    unsigned char *back = malloc(len);
    assert_int_equal(fread(back, 1, len, f), len);
    fclose(f);
    unlink(path);
    assert_int_equal(read_back(back, len, &b, msg), 0);
    assert_int_equal(read_back(back, len, &a, msg), -1);
    /* The data part of every frame is kept byte for byte: only the wrapped keys changed. */
    assert_memory_equal(back + TG_STREAM_HEAD + TG_CHUNK_HEAD + 72,
                        s + TG_STREAM_HEAD + TG_CHUNK_HEAD + 72, 1000);
    free(back);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_cut_or_altered_refused),
        cmocka_unit_test(test_needs_its_kek),
        cmocka_unit_test(test_rekey),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

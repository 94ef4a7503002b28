/* Tests src/store/walshm.c, and the SQLite store's use of it: a WAL index that cannot be
 * written is refused at open with its name; one truncated, removed or replaced under an
 * open store makes every call fail as "busy" instead of touching the mapping (SIGBUS).
 * Those runs happen in a forked child, so a SIGBUS would show as the child's signal and
 * the connection the store deliberately leaves open does not count as a leak here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"
#include "store/walshm.h"
#include "util/log.h"

static char dir[256], db[300], shm[310];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tg_test_walshm.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/t.db", dir);
    snprintf(shm, sizeof shm, "%s-shm", db);
    tg_log_level = (tg_log_level_t)(TG_LOG_ERROR + 1); /* the guard's one error line is expected */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "chattr -i '%s' 2>/dev/null; rm -rf '%s'", shm, dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void write_file(const char *path, size_t size)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    close(fd);
}

static void test_precheck_absent_and_regular(void **state)
{
    (void)state;
    tg_err_t err = {{0}};
    assert_int_equal(tg_walshm_precheck(db, &err), 0); /* absent: SQLite creates it */
    write_file(shm, 32768);
    assert_int_equal(tg_walshm_precheck(db, &err), 0);
}

static void test_precheck_not_a_file(void **state)
{
    (void)state;
    tg_err_t err = {{0}};
    assert_int_equal(mkdir(shm, 0755), 0);
    assert_int_equal(tg_walshm_precheck(db, &err), -1);
    assert_non_null(strstr(err.msg, shm));
    assert_non_null(strstr(err.msg, "is a directory"));
    rmdir(shm);
    assert_int_equal(mkfifo(shm, 0644), 0);
    assert_int_equal(tg_walshm_precheck(db, &err), -1);
    assert_non_null(strstr(err.msg, "is a FIFO"));
    unlink(shm);
    assert_int_equal(symlink("/dev/zero", shm), 0);
    assert_int_equal(tg_walshm_precheck(db, &err), -1);
    assert_non_null(strstr(err.msg, "symbolic link"));
}

/* FS_IMMUTABLE_FL: refused even for root. Skipped where the filesystem or the process
 * cannot set it. */
static void test_precheck_immutable(void **state)
{
    (void)state;
    write_file(shm, 32768);
    int fd = open(shm, O_RDONLY);
    assert_true(fd >= 0);
    int flags = 0;
    int ok = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
    flags |= FS_IMMUTABLE_FL;
    ok = ok && ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
    close(fd);
    if (!ok) skip();
    tg_err_t err = {{0}};
    assert_int_equal(tg_walshm_precheck(db, &err), -1);
    assert_non_null(strstr(err.msg, "cannot be written"));
    assert_non_null(strstr(err.msg, shm));
}

static void test_guard(void **state)
{
    (void)state;
    tg_walshm_t g;
    tg_err_t err = {{0}};
    assert_int_equal(tg_walshm_arm(&g, db, &err), 0); /* no -shm: nothing to guard */
    assert_null(g.path);
    assert_int_equal(tg_walshm_check(&g, &err), 0);

    write_file(shm, 32768);
    assert_int_equal(tg_walshm_arm(&g, db, &err), 0);
    assert_non_null(g.path);
    assert_int_equal(tg_walshm_check(&g, &err), 0);
    assert_int_equal(tg_walshm_check(&g, &err), 0);
    tg_walshm_release(&g);
}

static void test_guard_grow_truncate(void **state)
{
    (void)state;
    tg_walshm_t g;
    tg_err_t err = {{0}};
    write_file(shm, 32768);
    assert_int_equal(tg_walshm_arm(&g, db, &err), 0);
    assert_int_equal(truncate(shm, 65536), 0); /* SQLite grows it: fine */
    assert_int_equal(tg_walshm_check(&g, &err), 0);
    assert_int_equal(truncate(shm, 32768), 0); /* shrunk below what was seen */
    assert_int_equal(tg_walshm_check(&g, &err), -1);
    assert_non_null(strstr(err.msg, "truncated"));
    assert_int_equal(truncate(shm, 65536), 0); /* latched: grown back is still lost */
    assert_int_equal(tg_walshm_check(&g, &err), -1);
    tg_walshm_release(&g);
}

static void test_guard_removed_and_replaced(void **state)
{
    (void)state;
    tg_walshm_t g;
    tg_err_t err = {{0}};
    write_file(shm, 32768);
    assert_int_equal(tg_walshm_arm(&g, db, &err), 0);
    assert_int_equal(unlink(shm), 0);
    assert_int_equal(tg_walshm_check(&g, &err), -1);
    assert_non_null(strstr(err.msg, "removed"));
    tg_walshm_release(&g);

    write_file(shm, 32768);
    assert_int_equal(tg_walshm_arm(&g, db, &err), 0);
    char other[400];
    snprintf(other, sizeof other, "%s/other", dir);
    write_file(other, 65536);
    assert_int_equal(rename(other, shm), 0);
    assert_int_equal(tg_walshm_check(&g, &err), -1);
    assert_non_null(strstr(err.msg, "replaced"));
    tg_walshm_release(&g);
}

/* The store refuses to open on an unusable -shm, naming it. */
static void test_store_open_refused(void **state)
{
    (void)state;
    assert_int_equal(mkdir(shm, 0755), 0);
    char url[400];
    snprintf(url, sizeof url, "sqlite:%s", db);
    tg_store_t *s = NULL;
    tg_err_t err = {{0}};
    assert_int_equal(tg_store_open(url, &s, &err), -1);
    assert_null(s);
    assert_non_null(strstr(err.msg, shm));
    assert_non_null(strstr(strchr(err.msg, ':'), "is a directory"));
}

/* In a child: open a store, truncate its -shm under it, and use it. Exit 0 when every
 * call failed as busy with the reason; a SIGBUS would be the child's death by signal. */
static int child_truncated(const char *url)
{
    tg_store_t *s = NULL;
    tg_err_t err = {{0}};
    if (tg_store_open(url, &s, &err) != 0) return 10;
    tg_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.id = 1;
    ev.ts_us = 1795000020LL * 1000000LL;
    ev.status = 401;
    ev.outcome = TG_OUTCOME_REJECTED;
    size_t ins = 0;
    if (tg_store_append(s, &ev, 1, &ins, &err) != 0 || ins != 1) return 11;
    if (truncate(shm, 0) != 0) return 12;
    ev.id = 2;
    int rc = tg_store_append(s, &ev, 1, &ins, &err);
    if (rc != TG_STORE_BUSY) return 13;
    if (!strstr(err.msg, "truncated while in use")) return 14;
    int64_t v = 0;
    if (tg_store_auth_version(s, &v, &err) == 0) return 15;
    if (tg_store_writable(s, &err) != TG_STORE_BUSY) return 16;
    tg_store_close(s); /* must not touch the mapping */
    return 0;
}

static void test_store_truncated_under_it(void **state)
{
    (void)state;
    char url[400];
    snprintf(url, sizeof url, "sqlite:%s", db);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(child_truncated(url));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) fail_msg("the store died of signal %d", WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_precheck_absent_and_regular, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precheck_not_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precheck_immutable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guard_grow_truncate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guard_removed_and_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_open_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_truncated_under_it, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

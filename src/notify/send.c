/* One notice to one notifier: see send.h. HTTP through libcurl's easy interface (a blocking
 * transfer on the caller's thread, which is the sender's own), exec through posix_spawn. */
#include "notify/send.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "notify/payload.h"

static void result(tg_notify_result_t *res, tg_notify_outcome_t o, long status, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

static void result(tg_notify_result_t *res, tg_notify_outcome_t o, long status, const char *fmt,
                   ...)
{
    va_list ap;
    res->outcome = o;
    res->http_status = status;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
}

static int stopping(const tg_notify_ctl_t *ctl)
{
    return ctl && ((ctl->stop && atomic_load_explicit(ctl->stop, memory_order_relaxed)) ||
                   (ctl->also && atomic_load_explicit(ctl->also, memory_order_relaxed)));
}

/* ---- HTTP ------------------------------------------------------------------------- */

/* The answer's status is all a notifier needs: the first byte of its body ends the
 * transfer (CURLE_WRITE_ERROR, classified by the status below). A receiver that answers
 * 200 and then sends a body forever, or a huge one, has taken the notice: waiting for the
 * body's end would time out and send it again at every try. */
static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    (void)size;
    (void)n;
    return 0;
}

static int progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return stopping(ud); /* non-zero aborts the transfer */
}

static void post(const tg_notifier_conf_t *nc, const char *url, const char *body,
                 struct curl_slist *headers, const tg_notify_ctl_t *ctl, tg_notify_result_t *res)
{
    CURL *c = curl_easy_init();
    if (!c) {
        result(res, TG_NOTIFY_RETRY, 0, "cannot start libcurl");
        return;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, nc->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, nc->timeout_ms);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tollgate-notify");
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)ctl);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (status >= 200) /* answered: whatever came after the status line (a body cut short,
                          a timeout or a stop while it dripped) does not change the answer */
        result(res, tg_notify_classify_http(status), status, "HTTP %ld", status);
    else if (rc == CURLE_ABORTED_BY_CALLBACK)
        result(res, TG_NOTIFY_ABORTED, 0, "stopped");
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        result(res, TG_NOTIFY_RETRY, 0, "timed out after %ld ms", nc->timeout_ms);
    else /* errbuf names the host and port at most, not the path */
        result(res, TG_NOTIFY_RETRY, 0, "%s",
               errbuf[0]        ? errbuf
               : rc != CURLE_OK ? curl_easy_strerror(rc)
                                : "no answer");
}

static struct curl_slist *header(struct curl_slist *l, int *bad, const char *fmt, const char *v)
{
    char line[256];
    snprintf(line, sizeof line, fmt, v);
    struct curl_slist *n = l && !*bad ? curl_slist_append(l, line) : NULL;
    if (!n) *bad = 1;
    return n ? n : l;
}

static void send_webhook(const tg_notifier_conf_t *nc, const tg_notice_t *n, int64_t now_us,
                         const tg_notify_ctl_t *ctl, tg_notify_result_t *res)
{
    char *body = tg_notify_json(n);
    char sig[TG_NOTIFY_SIG_SIZE], ts[32];
    if (!body || tg_notify_signature(nc->secret, nc->secret_len, body, strlen(body), sig) != 0) {
        free(body);
        result(res, TG_NOTIFY_RETRY, 0, "cannot build the body or its signature");
        return;
    }
    snprintf(ts, sizeof ts, "%lld", (long long)(now_us / 1000000));
    int bad = 0;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = header(h, &bad, "X-Tollgate-Signature: %s", sig);
    h = header(h, &bad, "X-Tollgate-Timestamp: %s", ts);
    h = header(h, &bad, "Expect:%s", ""); /* no 100-continue round trip */
    if (!h || bad)
        result(res, TG_NOTIFY_RETRY, 0, "out of memory");
    else
        post(nc, nc->url, body, h, ctl, res);
    curl_slist_free_all(h);
    free(body);
}

/* POSTs body (an alert list) to nc's /api/v2/alerts. */
static void post_alerts(const tg_notifier_conf_t *nc, const char *body, const tg_notify_ctl_t *ctl,
                        tg_notify_result_t *res)
{
    size_t ul = strlen(nc->url);
    char *url = malloc(ul + sizeof "/api/v2/alerts");
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (!body || !url || !h) {
        result(res, TG_NOTIFY_RETRY, 0, "out of memory");
    } else {
        memcpy(url, nc->url, ul);
        while (ul > 0 && url[ul - 1] == '/') /* "http://am:9093/" is the same base */
            ul--;
        memcpy(url + ul, "/api/v2/alerts", sizeof "/api/v2/alerts");
        post(nc, url, body, h, ctl, res);
    }
    curl_slist_free_all(h);
    free(url);
}

/* As Prometheus does: a firing alert ends 4 re-send intervals from now unless posted again,
 * so it neither resolves while it fires nor outlives a gateway that is gone. */
static int64_t lease_end(const tg_notifier_conf_t *nc, int64_t now_us)
{
    return nc->resend_ms > 0 ? now_us + 4 * (int64_t)nc->resend_ms * 1000 : 0;
}

static void send_alertmanager(const tg_notifier_conf_t *nc, const tg_notice_t *n, int64_t now_us,
                              const tg_notify_ctl_t *ctl, tg_notify_result_t *res)
{
    if (!strncmp(n->state, "pending", sizeof n->state)) {
        result(res, TG_NOTIFY_OK, 0, "not sent: Alertmanager takes firing and resolved only");
        return;
    }
    char *body = tg_notify_alertmanager_json(n, NULL, lease_end(nc, now_us));
    post_alerts(nc, body, ctl, res);
    free(body);
}

void tg_notify_send_alerts(const tg_notifier_conf_t *nc, const tg_notice_t *v, size_t n,
                           int64_t now_us, const tg_notify_ctl_t *ctl, tg_notify_result_t *res)
{
    memset(res, 0, sizeof *res);
    if (nc->type != TG_NOTIFIER_ALERTMANAGER) {
        result(res, TG_NOTIFY_PERMANENT, 0, "not an alertmanager notifier");
        return;
    }
    char *body = tg_notify_alertmanager_list_json(v, n, NULL, lease_end(nc, now_us));
    post_alerts(nc, body, ctl, res);
    free(body);
}

/* ---- exec ------------------------------------------------------------------------- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* "NAME=value" into a malloc'd string. */
static char *env_var(const char *name, const char *v, size_t cap)
{
    size_t nl = strlen(name), vl = strnlen(v, cap);
    char *s = malloc(nl + 1 + vl + 1);
    if (!s) return NULL;
    memcpy(s, name, nl);
    s[nl] = '=';
    memcpy(s + nl + 1, v, vl);
    s[nl + 1 + vl] = '\0';
    return s;
}

/* Writes body to fd (non-blocking) until done, the child closed its end, or the deadline. */
static void feed(int fd, const char *body, size_t len, int64_t deadline, const tg_notify_ctl_t *ctl)
{
    size_t off = 0;
    while (off < len && !stopping(ctl)) {
        ssize_t w = write(fd, body + off, len - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno != EAGAIN) return; /* EPIPE: it does not read stdin; its exit says */
        int64_t left = deadline - ctl->mono_us();
        if (left <= 0) return;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, (int)(left / 1000 > 100 ? 100 : left / 1000 + 1));
    }
}

static void send_exec(const tg_notifier_conf_t *nc, const tg_notice_t *n,
                      const tg_notify_ctl_t *ctl, tg_notify_result_t *res)
{
    char *body = tg_notify_json(n);
    char *envp[8] = {0};
    int pipefd[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int have_fa = 0, have_attr = 0;
    if (!body) {
        result(res, TG_NOTIFY_RETRY, 0, "out of memory");
        return;
    }
    envp[0] = strdup("PATH=/usr/local/bin:/usr/bin:/bin");
    envp[1] = env_var("TOLLGATE_NOTICE_ID", n->id, sizeof n->id);
    envp[2] = env_var("TOLLGATE_NOTICE_KIND", n->kind, sizeof n->kind);
    envp[3] = env_var("TOLLGATE_ALARM", n->alarm, sizeof n->alarm);
    envp[4] = env_var("TOLLGATE_TENANT", n->tenant, sizeof n->tenant);
    envp[5] = env_var("TOLLGATE_STATE", n->state, sizeof n->state);
    envp[6] = env_var("TOLLGATE_SEVERITY", n->severity, sizeof n->severity);
    for (int i = 0; i < 7; i++)
        if (!envp[i]) {
            result(res, TG_NOTIFY_RETRY, 0, "out of memory");
            goto out;
        }
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        result(res, TG_NOTIFY_RETRY, 0, "pipe: %s", strerror(errno));
        goto out;
    }
    posix_spawn_file_actions_init(&fa);
    have_fa = 1;
    posix_spawnattr_init(&attr);
    have_attr = 1;
    posix_spawn_file_actions_adddup2(&fa, pipefd[0], 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3); /* sockets, the store: none of its business */
    sigset_t none, deflt;
    sigemptyset(&none);
    sigemptyset(&deflt);
    sigaddset(&deflt, SIGPIPE); /* the gateway ignores it; the program gets the default */
    sigaddset(&deflt, SIGHUP);
    sigaddset(&deflt, SIGTERM);
    sigaddset(&deflt, SIGINT);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &deflt);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    pid_t pid;
    int rc = posix_spawn(&pid, nc->argv[0], &fa, &attr, nc->argv, envp);
    close(pipefd[0]);
    pipefd[0] = -1;
    if (rc != 0) {
        result(res, TG_NOTIFY_RETRY, 0, "cannot run %s: %s", nc->argv[0], strerror(rc));
        goto out;
    }
    int64_t deadline = ctl->mono_us() + (int64_t)nc->timeout_ms * 1000;
    fcntl(pipefd[1], F_SETFL, fcntl(pipefd[1], F_GETFL) | O_NONBLOCK);
    feed(pipefd[1], body, strlen(body), deadline, ctl);
    close(pipefd[1]);
    pipefd[1] = -1;
    int status = 0, done = 0, timed_out = 0;
    while (!done) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR)) {
            done = 1;
            break;
        }
        if (stopping(ctl) || ctl->mono_us() >= deadline) {
            timed_out = !stopping(ctl);
            kill(-pid, SIGKILL); /* its group: whatever it started goes too */
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        sleep_ms(5);
    }
    if (timed_out)
        result(res, TG_NOTIFY_RETRY, 0, "timed out after %ld ms (killed)", nc->timeout_ms);
    else if (!done)
        result(res, TG_NOTIFY_ABORTED, 0, "stopped");
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        result(res, TG_NOTIFY_OK, 0, "exit status 0");
    else if (WIFEXITED(status))
        result(res, TG_NOTIFY_RETRY, 0, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        result(res, TG_NOTIFY_RETRY, 0, "killed by signal %d", WTERMSIG(status));
    else
        result(res, TG_NOTIFY_RETRY, 0, "ended abnormally");
out:
    if (have_fa) posix_spawn_file_actions_destroy(&fa);
    if (have_attr) posix_spawnattr_destroy(&attr);
    if (pipefd[0] >= 0) close(pipefd[0]);
    if (pipefd[1] >= 0) close(pipefd[1]);
    for (int i = 0; i < 7; i++)
        free(envp[i]);
    free(body);
}

void tg_notify_send(const tg_notifier_conf_t *nc, const tg_notice_t *n, int64_t now_us,
                    const tg_notify_ctl_t *ctl, tg_notify_result_t *res)
{
    memset(res, 0, sizeof *res);
    switch (nc->type) {
    case TG_NOTIFIER_WEBHOOK: send_webhook(nc, n, now_us, ctl, res); return;
    case TG_NOTIFIER_ALERTMANAGER: send_alertmanager(nc, n, now_us, ctl, res); return;
    case TG_NOTIFIER_EXEC: send_exec(nc, n, ctl, res); return;
    }
    result(res, TG_NOTIFY_PERMANENT, 0, "unknown notifier type");
}

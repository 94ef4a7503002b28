/* Diagnostic log (not the access log). The level is checked before anything is
 * formatted, so a disabled TG_DEBUG costs one load and a compare. Lines go to
 * stderr as `2026-11-23T10:00:00Z level message`. */
#ifndef TG_UTIL_LOG_H
#define TG_UTIL_LOG_H

typedef enum { TG_LOG_DEBUG, TG_LOG_INFO, TG_LOG_WARN, TG_LOG_ERROR } tg_log_level_t;

extern tg_log_level_t tg_log_level;

/* Parses "debug", "info", "warn", "error"; returns -1 on anything else. */
int tg_log_parse_level(const char *s, tg_log_level_t *out);
void tg_log_write(tg_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define TG_LOG(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) >= tg_log_level) tg_log_write((lvl), __VA_ARGS__);                               \
    } while (0)
#define TG_DEBUG(...) TG_LOG(TG_LOG_DEBUG, __VA_ARGS__)
#define TG_INFO(...)  TG_LOG(TG_LOG_INFO, __VA_ARGS__)
#define TG_WARN(...)  TG_LOG(TG_LOG_WARN, __VA_ARGS__)
#define TG_ERROR(...) TG_LOG(TG_LOG_ERROR, __VA_ARGS__)

/* An invariant whose violation would corrupt accounting: checked in release
 * builds too, prints both sides with file and line, then aborts. */
#define TG_ASSERT_EQ(a, b)                                                                         \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) tg_assert_fail(__FILE__, __LINE__, #a " == " #b, a_, b_);                    \
    } while (0)
#define TG_ASSERT(c)                                                                               \
    do {                                                                                           \
        if (!(c)) tg_assert_fail(__FILE__, __LINE__, #c, 0, 0);                                    \
    } while (0)
void tg_assert_fail(const char *file, int line, const char *expr, long long a, long long b)
    __attribute__((noreturn));

#endif

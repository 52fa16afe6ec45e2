/* dns/log.h - one line per event on stderr, level checked before formatting.
 *
 * A call reads key=value pairs: log_warn("forward", "upstream=%s error=\"%s\"", ...). A value
 * is a bare token or a quoted string; text that a client or a file controls goes through
 * log_quote() (or dns_name_to_text() for names), so it can neither end the line nor forge a
 * field. The line is written as text (time level=... module=... then the pairs) or, with
 * --log-format json, as one JSON object whose every field is escaped. */
#ifndef DNS_LOG_H
#define DNS_LOG_H

#include <stddef.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

extern enum log_level log_current_level;

/* Both are set once at start, before any thread but main's runs. */
void log_set_level(enum log_level level);
void log_set_format(enum log_format format);
enum log_format log_current_format(void);
/* "error", "warn", "info", "debug" -> 0, or -1 when unknown. */
int log_parse_level(const char *text, enum log_level *out);
/* "text", "json" -> 0, or -1 when unknown. */
int log_parse_format(const char *text, enum log_format *out);
void log_write(enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies text into out for a quoted value (key="%s"): '"' and '\' behind a backslash, control
 * bytes as \DDD. Always NUL-terminates (cut short when cap is); returns out. */
char *log_quote(const char *text, char *out, size_t cap);

/* The line log_write() writes for body (the formatted pairs), newline included, in the
 * current format; NUL-terminated, cut to fit cap (JSON stays valid). Returns its length.
 * Exposed for the tests. */
size_t log_render(char *out, size_t cap, enum log_level level, const char *module,
                  const char *body);

/* Lower case: they read as the functions they wrap. */
// NOLINTBEGIN(readability-identifier-naming)
#define log_error(module, ...) log_write(LOG_LEVEL_ERROR, module, __VA_ARGS__)
#define log_warn(module, ...)                                                                      \
    do {                                                                                           \
        if (log_current_level >= LOG_LEVEL_WARN)                                                   \
            log_write(LOG_LEVEL_WARN, module, __VA_ARGS__);                                        \
    } while (0)
#define log_info(module, ...)                                                                      \
    do {                                                                                           \
        if (log_current_level >= LOG_LEVEL_INFO)                                                   \
            log_write(LOG_LEVEL_INFO, module, __VA_ARGS__);                                        \
    } while (0)
#define log_debug(module, ...)                                                                     \
    do {                                                                                           \
        if (log_current_level >= LOG_LEVEL_DEBUG)                                                  \
            log_write(LOG_LEVEL_DEBUG, module, __VA_ARGS__);                                       \
    } while (0)
// NOLINTEND(readability-identifier-naming)

#endif

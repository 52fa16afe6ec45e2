/* dns/log.h - one key=value line per event on stderr, level checked before formatting. */
#ifndef DNS_LOG_H
#define DNS_LOG_H

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

extern enum log_level log_current_level;

void log_set_level(enum log_level level);
/* "error", "warn", "info", "debug" -> 0, or -1 when unknown. */
int log_parse_level(const char *text, enum log_level *out);
void log_write(enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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

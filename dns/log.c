/* dns/log.c - stderr logging. One write per line so lines from workers never interleave.
 *
 * Invariant: whatever the bytes handed in, a line is one line. In text form every control
 * byte of the body is written as \DDD; in JSON form the body's key=value pairs become fields
 * and every key and value is escaped for JSON (invalid UTF-8 as U+FFFD), so a client's bytes
 * that reached a log call can neither start a line nor add a field. */
#include "dns/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_BODY_MAX 4096
#define LOG_LINE_MAX 8192
#define JSON_CUT ",\"truncated\":true}\n" /* what a JSON line cut short ends with */

enum log_level log_current_level = LOG_LEVEL_INFO;
static enum log_format current_format = LOG_FORMAT_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const format_names[] = {"text", "json"};

void log_set_level(enum log_level level)
{
    log_current_level = level;
}

void log_set_format(enum log_format format)
{
    current_format = format;
}

enum log_format log_current_format(void)
{
    return current_format;
}

static int parse_name(const char *text, const char *const *names, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(text, names[i]) == 0)
            return (int)i;
    }
    return -1;
}

int log_parse_level(const char *text, enum log_level *out)
{
    int i = parse_name(text, level_names, sizeof(level_names) / sizeof(level_names[0]));
    if (i < 0)
        return -1;
    *out = (enum log_level)i;
    return 0;
}

int log_parse_format(const char *text, enum log_format *out)
{
    int i = parse_name(text, format_names, sizeof(format_names) / sizeof(format_names[0]));
    if (i < 0)
        return -1;
    *out = (enum log_format)i;
    return 0;
}

/* --- a bounded writer ----------------------------------------------------------------------- */

/* Appends stop at limit; once one did not fit, full stays set and nothing more is added. */
struct out {
    char *buf;
    size_t len, limit;
    bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full || n > o->limit - o->len) {
        o->full = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_ddd(struct out *o, uint8_t c)
{
    char ddd[4] = {'\\', (char)('0' + c / 100), (char)('0' + c / 10 % 10), (char)('0' + c % 10)};
    put(o, ddd, sizeof(ddd));
}

static bool is_control(uint8_t c)
{
    return c < 0x20 || c == 0x7f;
}

char *log_quote(const char *text, char *out, size_t cap)
{
    if (cap == 0)
        return out;
    struct out o = {out, 0, cap - 1, false};
    for (const char *p = text; *p && !o.full; p++) {
        uint8_t c = (uint8_t)*p;
        size_t before = o.len;
        if (is_control(c))
            put_ddd(&o, c);
        else if (c == '"' || c == '\\')
            put(&o, (const char[]){'\\', (char)c}, 2);
        else
            put(&o, (const char *)p, 1);
        if (o.full)
            o.len = before; /* never half an escape */
    }
    out[o.len] = '\0';
    return out;
}

/* --- the text form ---------------------------------------------------------------------------- */

static void render_text(struct out *o, const char *ts, enum log_level level, const char *module,
                        const char *body)
{
    put_str(o, ts);
    put_str(o, " level=");
    put_str(o, level_names[level]);
    put_str(o, " module=");
    put_str(o, module);
    put_str(o, " ");
    for (const char *p = body; *p && !o->full; p++) {
        if (is_control((uint8_t)*p))
            put_ddd(o, (uint8_t)*p);
        else
            put(o, p, 1);
    }
}

/* --- the JSON form ---------------------------------------------------------------------------- */

/* The length of the well-formed UTF-8 sequence at p (1 to 4), or 0 when it is not one. */
static size_t utf8_length(const uint8_t *p)
{
    size_t n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || p[0] >= 0xf5)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    }
    /* Overlong three- and four-byte forms, surrogates, and code points above U+10FFFF. */
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
        return 0;
    return n;
}

/* A JSON string of s[0..n); with unquote, the \" and \\ of a quoted log value are undone. */
static void put_json_string(struct out *o, const char *s, size_t n, bool unquote)
{
    static const char hex[] = "0123456789abcdef";
    put(o, "\"", 1);
    for (size_t i = 0; i < n && !o->full;) {
        uint8_t c = (uint8_t)s[i];
        if (unquote && c == '\\' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\')) {
            put(o, "\\", 1);
            put(o, s + i + 1, 1);
            i += 2;
        } else if (c == '"' || c == '\\') {
            put(o, (const char[]){'\\', (char)c}, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            put(o, (const char[]){'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]}, 6);
            i++;
        } else if (c < 0x80) {
            put(o, s + i, 1);
            i++;
        } else {
            size_t len = i + 4 <= n ? utf8_length((const uint8_t *)s + i) : 0;
            if (len == 0 && i + 4 > n) {
                uint8_t tail[4] = {0};
                memcpy(tail, s + i, n - i);
                len = utf8_length(tail);
            }
            if (len == 0) {
                put_str(o, "\\ufffd");
                i++;
            } else {
                put(o, s + i, len);
                i += len;
            }
        }
    }
    put(o, "\"", 1);
}

/* A bare value that is a JSON number as it stands (no leading zeros, no exponent). */
static bool is_json_number(const char *s, size_t n)
{
    size_t i = s[0] == '-' ? 1 : 0;
    size_t digits = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        i++;
        digits++;
    }
    if (digits == 0 || (digits > 1 && s[i - digits] == '0'))
        return false;
    if (i < n && s[i] == '.') {
        size_t frac = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == frac)
            return false;
    }
    return i == n;
}

struct token {
    const char *key, *value; /* key NULL: a word that is no pair */
    size_t key_len, value_len;
    bool quoted;
};

static bool is_key_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* The value after "key=" at p: a quoted one runs to the next '"' that no backslash escapes
 * (or to the end), a bare one to the next space. Returns where it ends. */
static const char *parse_value(const char *p, struct token *t)
{
    if (*p != '"') {
        t->value = p;
        while (*p && *p != ' ')
            p++;
        t->value_len = (size_t)(p - t->value);
        return p;
    }
    t->quoted = true;
    t->value = ++p;
    while (*p && *p != '"')
        p += (*p == '\\' && p[1]) ? 2 : 1;
    t->value_len = (size_t)(p - t->value);
    return *p == '"' ? p + 1 : p;
}

/* The next word or key=value of a body; false at its end. */
static bool next_token(const char **pp, struct token *t)
{
    const char *p = *pp;
    while (*p == ' ')
        p++;
    if (*p == '\0')
        return false;
    const char *start = p;
    while (is_key_byte(*p))
        p++;
    memset(t, 0, sizeof(*t));
    if (p > start && *p == '=') {
        t->key = start;
        t->key_len = (size_t)(p - start);
        *pp = parse_value(p + 1, t);
        return true;
    }
    for (p = start; *p && *p != ' ';)
        p++;
    t->value = start;
    t->value_len = (size_t)(p - start);
    *pp = p;
    return true;
}

/* Adds ,"key":value, or nothing at all when it would not fit. */
static void put_field(struct out *o, const char *key, size_t key_len, const char *value,
                      size_t value_len, bool bare_number, bool unquote)
{
    size_t mark = o->len;
    put(o, ",", 1);
    put_json_string(o, key, key_len, false);
    put(o, ":", 1);
    if (bare_number)
        put(o, value, value_len);
    else
        put_json_string(o, value, value_len, unquote);
    if (o->full)
        o->len = mark;
}

static void render_json(struct out *o, const char *ts, enum log_level level, const char *module,
                        const char *body)
{
    put_str(o, "{\"ts\":\"");
    put_str(o, ts);
    put_str(o, "\",\"level\":\"");
    put_str(o, level_names[level]);
    put_str(o, "\"");
    put_field(o, "module", 6, module, strlen(module), false, false);
    /* The words that are no pair ("serving", "stopped") make the message, in order. */
    char msg[LOG_BODY_MAX];
    size_t n = 0;
    struct token t;
    for (const char *p = body; next_token(&p, &t);) {
        if (t.key == NULL && n + t.value_len + 1 < sizeof(msg)) {
            if (n > 0)
                msg[n++] = ' ';
            memcpy(msg + n, t.value, t.value_len);
            n += t.value_len;
        }
    }
    if (n > 0)
        put_field(o, "msg", 3, msg, n, false, false);
    for (const char *p = body; next_token(&p, &t) && !o->full;) {
        if (t.key != NULL)
            put_field(o, t.key, t.key_len, t.value, t.value_len,
                      !t.quoted && is_json_number(t.value, t.value_len), t.quoted);
    }
}

size_t log_render(char *out, size_t cap, enum log_level level, const char *module, const char *body)
{
    static const size_t reserve = sizeof(JSON_CUT); /* the cut ending and the NUL */
    if (cap < reserve + 64) {
        if (cap > 0)
            out[0] = '\0';
        return 0;
    }
    char ts[64];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(now.tv_nsec / 1000000));
    struct out o = {out, 0, cap - reserve, false};
    if (current_format == LOG_FORMAT_JSON)
        render_json(&o, ts, level, module, body);
    else
        render_text(&o, ts, level, module, body);
    /* The reserve is left for the ending: a JSON line that lost fields says so. */
    bool cut = o.full;
    o.limit = cap - 1;
    o.full = false;
    if (current_format == LOG_FORMAT_JSON)
        put_str(&o, cut ? JSON_CUT : "}\n");
    else
        put_str(&o, "\n");
    out[o.len] = '\0';
    return o.len;
}

void log_write(enum log_level level, const char *module, const char *fmt, ...)
{
    if (level > log_current_level)
        return;
    char body[LOG_BODY_MAX];
    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = log_render(line, sizeof(line), level, module, body);
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

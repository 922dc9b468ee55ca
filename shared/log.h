/*
 * Logging for all three programs: to stderr or syslog, level tested before
 * formatting.  log_warn() appends strerror(errno); fatal() exits.
 */
#ifndef SHARED_LOG_H
#define SHARED_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

extern enum log_level log_level_cur;

/* Log to stderr (tostderr != 0) or syslog under the name ident. */
void log_init(const char *ident, int tostderr, enum log_level level);
void log_set_level(enum log_level level);
/* Parse "error", "warn", "info", "debug"; returns 0 or -1 if unknown. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#define log_debug_on() (log_level_cur >= LOG_LVL_DEBUG)

#endif

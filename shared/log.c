/*
 * Logging to stderr or syslog for xmppd, xmppctl and xmpptop.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

enum log_level log_level_cur = LOG_LVL_INFO;
static int log_tostderr = 1;
static const char *log_ident = "xmppd";

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void
log_init(const char *ident, int tostderr, enum log_level level)
{
	log_ident = ident;
	log_tostderr = tostderr;
	log_level_cur = level;
	if (!tostderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_level(enum log_level level)
{
	log_level_cur = level;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	    i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_LVL_WARN;
		return 0;
	}
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	return level_names[level];
}

static void
vlog(enum log_level level, const char *fmt, va_list ap, const char *errstr)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char msg[2048];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_tostderr) {
		struct timespec ts;
		struct tm tm;
		char stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		if (errstr)
			fprintf(stderr, "%s.%03ldZ %s %s: %s: %s\n", stamp,
			    ts.tv_nsec / 1000000, log_ident,
			    level_names[level], msg, errstr);
		else
			fprintf(stderr, "%s.%03ldZ %s %s: %s\n", stamp,
			    ts.tv_nsec / 1000000, log_ident,
			    level_names[level], msg);
	} else if (errstr)
		syslog(prio[level], "%s: %s", msg, errstr);
	else
		syslog(prio[level], "%s", msg);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	const char *e = strerror(errno);

	if (log_level_cur < LOG_LVL_WARN)
		return;
	va_start(ap, fmt);
	vlog(LOG_LVL_WARN, fmt, ap, e);
	va_end(ap);
}

#define LOG_FN(fn, lvl)                          \
	void fn(const char *fmt, ...)            \
	{                                        \
		va_list ap;                      \
		if (log_level_cur < (lvl))       \
			return;                  \
		va_start(ap, fmt);               \
		vlog((lvl), fmt, ap, NULL);      \
		va_end(ap);                      \
	}

LOG_FN(log_warnx, LOG_LVL_WARN)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_debug, LOG_LVL_DEBUG)

void
fatal(const char *fmt, ...)
{
	va_list ap;
	const char *e = strerror(errno);

	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, fmt, ap, e);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}

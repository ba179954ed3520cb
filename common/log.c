/* log: format a line, make it safe for any sink (no control characters, bounded), hand it over. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <syslog.h>

#include "ftm_log.h"

#define FTM_LOG_LINE_MAX 1024	/* bytes of a line, NUL excluded; longer lines are cut */

/* A cut line must not end in half a UTF-8 character: drop an incomplete trailing sequence. */
static void cut_utf8_tail(char *line)
{
	size_t len = strlen(line), i = len, need;
	unsigned char lead;

	while (i > 0 && len - i < 4 && ((unsigned char)line[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return;
	lead = (unsigned char)line[i - 1];
	if (lead < 0xc0)
		return;			/* ASCII or a stray continuation: nothing to repair */
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
	if (len - (i - 1) < need)
		line[i - 1] = '\0';
}

static __thread bool trace_raised;	/* this thread is deciding a login under a debug switch */

bool ftm_log_trace_raise(bool on)
{
	bool was = trace_raised;

	trace_raised = on;
	return was;
}

void ftm_vlog(const ftm_log_t *log, ftm_log_level_t level, const char *fmt, va_list ap)
{
	char line[FTM_LOG_LINE_MAX + 1];
	size_t pre = 0;
	int n;

	if (log == NULL || log->sink == NULL || fmt == NULL)
		return;
	if (level > log->max_level) {
		if (!trace_raised || level > FTM_LOG_DEBUG)
			return;
		level = FTM_LOG_INFO;
		pre = sizeof(FTM_LOG_TRACE_PREFIX) - 1;
		memcpy(line, FTM_LOG_TRACE_PREFIX, pre);
	}
	n = vsnprintf(line + pre, sizeof(line) - pre, fmt, ap);
	if (n < 0)
		return;
	n += (int)pre;
	if ((size_t)n > FTM_LOG_LINE_MAX)
		cut_utf8_tail(line);
	/* Anything that could forge a second line or drive a terminal becomes '?'. */
	for (char *p = line; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c == 0x7f)
			*p = '?';
	}
	log->sink(log->sink_ctx, level, line);
}

void ftm_log(const ftm_log_t *log, ftm_log_level_t level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ftm_vlog(log, level, fmt, ap);
	va_end(ap);
}

void ftm_log_sink_stderr(void *sink_ctx, ftm_log_level_t level, const char *line)
{
	(void)sink_ctx;
	fprintf(stderr, "ftmpush[%s]: %s\n", ftm_log_level_name(level), line);
}

int ftm_log_syslog_priority(ftm_log_level_t level)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG };

	return prio[level <= FTM_LOG_DEBUG2 ? level : FTM_LOG_DEBUG2];
}

void ftm_log_sink_syslog(void *sink_ctx, ftm_log_level_t level, const char *line)
{
	(void)sink_ctx;
	syslog(ftm_log_syslog_priority(level), "%s", line);
}

const char *ftm_log_level_name(ftm_log_level_t level)
{
	switch (level) {
	case FTM_LOG_ERR:	return "error";
	case FTM_LOG_WARN:	return "warning";
	case FTM_LOG_INFO:	return "info";
	case FTM_LOG_DEBUG:	return "debug";
	case FTM_LOG_DEBUG2:	return "debug2";
	}
	return "unknown";
}

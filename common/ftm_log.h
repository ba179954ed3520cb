/* ftm_log: one log sink interface for every front end (radlog, pam_syslog, stderr). */
#ifndef FTM_LOG_H
#define FTM_LOG_H

#include <stdarg.h>
#include <stdbool.h>

typedef enum {
	FTM_LOG_ERR = 0,
	FTM_LOG_WARN,
	FTM_LOG_INFO,
	FTM_LOG_DEBUG,
	FTM_LOG_DEBUG2
} ftm_log_level_t;

/* A sink receives one already formatted, control-character-free line without a trailing newline. */
typedef void (*ftm_log_sink_fn)(void *sink_ctx, ftm_log_level_t level, const char *line);

typedef struct ftm_log {
	ftm_log_sink_fn	sink;		/* NULL: discard */
	void		*sink_ctx;
	ftm_log_level_t	max_level;	/* lines above this level are dropped */
} ftm_log_t;

/* Formats, strips control characters, truncates at 1024 bytes, passes to the sink.
 * Callers never pass a seed, code or password as an argument. log may be NULL. */
void ftm_log(const ftm_log_t *log, ftm_log_level_t level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void ftm_vlog(const ftm_log_t *log, ftm_log_level_t level, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Ready sink: writes "ftmpush[level]: line" to stderr. sink_ctx unused. */
void ftm_log_sink_stderr(void *sink_ctx, ftm_log_level_t level, const char *line);
/* Ready sink: syslog(3) at ftm_log_syslog_priority(level), after the caller's openlog. sink_ctx unused. */
void ftm_log_sink_syslog(void *sink_ctx, ftm_log_level_t level, const char *line);
/* The syslog priority (LOG_ERR ... LOG_DEBUG) of a level, for every syslog-like sink (pam_syslog too). */
int ftm_log_syslog_priority(ftm_log_level_t level);

const char *ftm_log_level_name(ftm_log_level_t level);

/* Debug on demand, for the calling thread: while raised, a FTM_LOG_DEBUG line that a log's max_level
 * would drop reaches its sink all the same, at FTM_LOG_INFO and prefixed FTM_LOG_TRACE_PREFIX, so every
 * sink prints it in its normal log. Returns the previous setting (to restore it). */
#define FTM_LOG_TRACE_PREFIX "debug: "
bool ftm_log_trace_raise(bool on);

#endif

/* ftm_util: the small helpers every core file needs (bounded copies, error buffers, JSON members). */
#ifndef FTM_UTIL_H
#define FTM_UTIL_H

#include <stddef.h>
#include <stdint.h>

struct json_object;

/* Copy src (NULL: "") into dst, always terminated, truncated to len. */
void ftm_copy(char *dst, size_t len, const char *src);
/* s, or dflt when s is NULL or empty (log fields: "-" for nothing). */
const char *ftm_or(const char *s, const char *dflt);
/* printf into an optional error buffer (err NULL or err_len 0: nothing). */
void ftm_set_err(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Milliseconds on CLOCK_MONOTONIC (deadlines and ages; never a wall-clock time). */
int64_t ftm_mono_ms(void);
/* The string member name of a JSON object, NULL when absent or not a string. */
const char *ftm_json_string(struct json_object *obj, const char *name);

#endif

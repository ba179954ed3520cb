/* util: the small helpers every core file needs, written once. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "ftm_util.h"

/* What snprintf(dst, len, "%s", src) does, without the printf machinery: several copies per login. */
void ftm_copy(char *dst, size_t len, const char *src)
{
	size_t n;

	if (dst == NULL || len == 0)
		return;
	n = src != NULL ? strnlen(src, len - 1) : 0;
	if (n > 0)
		memmove(dst, src, n);
	dst[n] = '\0';
}

const char *ftm_or(const char *s, const char *dflt)
{
	return s != NULL && *s != '\0' ? s : dflt;
}

void ftm_set_err(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

int64_t ftm_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *ftm_json_string(struct json_object *obj, const char *name)
{
	struct json_object *v;

	if (obj == NULL || !json_object_object_get_ex(obj, name, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

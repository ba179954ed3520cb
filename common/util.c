/* util: the small helpers every core file needs, written once. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "ftm_otp.h"
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

/* glibc's explicit_bzero is a memset the compiler may not drop; OpenSSL's cleanse stores byte by byte
 * (a login zeroes several kilobytes: rows, split results, verdicts). Here, not in otp.c: the PAM
 * module's thin part, which has no OpenSSL, zeroes what was typed too. */
void ftm_memzero(void *p, size_t n)
{
	if (p == NULL || n == 0)
		return;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 25))
	explicit_bzero(p, n);
#else
	for (volatile unsigned char *v = p; n > 0; n--)
		*v++ = 0;
#endif
}

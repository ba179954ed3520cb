/* fuzz_callback: the HTTPS callback listener's request handling (push_listener.c) with libmicrohttpd
 * stubbed at its API (fuzz_mhd_stub.c), in front of a real engine holding one pending push. Checks
 * that only a request holding a real capability or gateway proof decides the push, and that a 200
 * to an answer always means it was decided.
 *
 * Input: one flag byte (bit 0: number matching), then lines: METHOD, URL, Content-Length ("-": no
 * such header), chunk sizes (each byte + 1 is the size of one body piece), then the body. Placeholders
 * (fuzz_push.h: @C0@ capability, @TX@, @PA@ proof ...) stand for the secrets of the pending push. */
#include "config.h"

#include "fuzz_push.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next '\n'-terminated field of in, NUL-terminated in place; NULL when there is none. */
static char *field(char **in, char *end)
{
	char *s = *in, *nl;

	if (s >= end)
		return NULL;
	nl = memchr(s, '\n', (size_t)(end - s));
	if (nl == NULL)
		return NULL;
	*nl = '\0';
	*in = nl + 1;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_push_t f;
	char *text, *in, *end, *method, *url, *cl, *chunks, reply[1024];
	size_t len;
	unsigned used, status;
	ftm_push_verdict_t v;

	if (size < 1 || size > 16384)
		return 0;
	fuzz_push_begin(&f, data[0] & 1, true);
	text = fuzz_subst(&f, data + 1, size - 1, &len, &used);
	in = text;
	end = text + len;
	method = field(&in, end);
	url = field(&in, end);
	cl = field(&in, end);
	chunks = field(&in, end);
	if (method && url && cl && chunks) {
		status = fuzz_mhd_request(method, url, strcmp(cl, "-") == 0 ? NULL : cl, in, (size_t)(end - in),
					  (const uint8_t *)chunks, strlen(chunks), reply, sizeof(reply));
		v = fuzz_push_verdict(&f);
		if (v != FTM_PUSH_PENDING && !(used & (FUZZ_USED_CAP | FUZZ_USED_PROOF)))
			abort();	/* decided without a secret */
		if (status == 200 && v == FTM_PUSH_PENDING && strcmp(url, "/ftm/v1/health") != 0 &&
		    !fuzz_names_earlier(&f, text, len))
			abort();	/* "200" to the phone, but the login still waits (and no other push was named) */
		if (status == 0 || (status != 200 && strstr(reply, "\"error\"") == NULL))
			abort();	/* every request gets an answer; every refusal says why */
	}
	free(text);
	fuzz_push_end(&f);
	return 0;
}

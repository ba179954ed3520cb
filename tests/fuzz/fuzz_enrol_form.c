/* fuzz_enrol_form: libFuzzer harness for ftm_enrol_parse_form (the enrolment page's form body, off the wire). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ftm_enrol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char otp[FTM_CODE_MAX + 1];
	char *body = malloc(size + 1);	/* exactly the bytes received: no terminator is promised */

	if (body == NULL)
		return 0;
	memcpy(body, data, size);
	if (ftm_enrol_parse_form(body, size, otp) == 0) {
		size_t n = strlen(otp);

		/* accepted: 6-8 ASCII digits, and "code=" + them is in the body */
		if (n < 6 || n > FTM_CODE_MAX || strspn(otp, "0123456789") != n || size > FTM_ENROL_BODY_MAX)
			abort();
		if (memmem(body, size, "code=", 5) == NULL || memmem(body, size, otp, n) == NULL)
			abort();
	}
	free(body);
	return 0;
}

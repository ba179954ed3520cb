/* enrol_form: the enrolment page's confirm form, the one parser of it (fuzzed: tests/fuzz/). */
#include "config.h"

#include <stdbool.h>
#include <string.h>

#include "ftm_enrol.h"

int ftm_enrol_parse_form(const char *body, size_t len, char otp[FTM_CODE_MAX + 1])
{
	bool found = false;
	size_t i = 0;

	if (body == NULL || len == 0 || len > FTM_ENROL_BODY_MAX)
		return -1;
	while (i < len) {
		size_t start = i, eq, end;

		while (i < len && body[i] != '&')
			i++;
		end = i;
		for (eq = start; eq < end && body[eq] != '='; eq++)
			;
		if (eq - start == 4 && memcmp(body + start, "code", 4) == 0) {
			size_t vlen = end > eq ? end - eq - 1 : 0;

			if (found || eq == end || vlen < 6 || vlen > FTM_CODE_MAX)
				return -1;
			for (size_t k = 0; k < vlen; k++)
				if (body[eq + 1 + k] < '0' || body[eq + 1 + k] > '9')
					return -1;
			memcpy(otp, body + eq + 1, vlen);
			otp[vlen] = '\0';
			found = true;
		} else {
			/* other fields are not ours: only plain urlencoded bytes are accepted around ours */
			for (size_t k = start; k < end; k++) {
				unsigned char c = (unsigned char)body[k];
				if (c < 0x21 || c > 0x7e)
					return -1;
			}
		}
		if (i < len)
			i++;	/* the '&' */
	}
	return found ? 0 : -1;
}

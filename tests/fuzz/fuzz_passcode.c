/* fuzz_passcode: libFuzzer harness for ftm_passcode_split and _split_recovery (what a user types, off the wire). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ftm_passcode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ftm_passcode_t p;
	unsigned digits;
	char *input;
	size_t len;

	if (size < 1)
		return 0;
	digits = data[0] % 10;		/* 0..9: the valid 6..8 and a few invalid ones */
	input = malloc(size);
	if (input == NULL)
		return 0;
	memcpy(input, data + 1, size - 1);
	input[size - 1] = '\0';
	len = strlen(input);

	if (ftm_passcode_split(input, digits, &p) != 0) {
		if (len <= FTM_INPUT_MAX)
			abort();		/* only overlong input may be refused */
	} else {
		/* password + code is exactly the input, and a code is exactly `digits` ASCII digits */
		size_t pl = strlen(p.password), cl = strlen(p.code);

		if (len > FTM_INPUT_MAX || pl + cl != len || memcmp(p.password, input, pl) != 0 ||
		    memcmp(p.code, input + pl, cl) != 0)
			abort();
		if (p.has_code != (cl > 0) || (p.has_code && !ftm_passcode_is_code(p.code, digits)))
			abort();
	}
	/* the recovery reading: the same partition of the input, a code only of a recovery code's shape, and
	 * never where a 6- or 8-digit token code reads one too */
	if (ftm_passcode_split_recovery(input, &p) != 0) {
		if (len <= FTM_INPUT_MAX)
			abort();
	} else {
		size_t pl = strlen(p.password), cl = strlen(p.code);
		ftm_passcode_t t6, t8;

		if (pl + cl != len || memcmp(p.password, input, pl) != 0 || memcmp(p.code, input + pl, cl) != 0)
			abort();
		if (p.has_code != (cl > 0) || (p.has_code && (cl != FTM_RECOVERY_LEN || !ftm_recovery_is_code(p.code))))
			abort();
		if (ftm_passcode_split(input, 6, &t6) != 0 || ftm_passcode_split(input, 8, &t8) != 0 ||
		    (p.has_code && (t6.has_code || t8.has_code)))
			abort();
		ftm_passcode_clear(&t6);
		ftm_passcode_clear(&t8);
	}
	ftm_passcode_clear(&p);
	free(input);
	return 0;
}

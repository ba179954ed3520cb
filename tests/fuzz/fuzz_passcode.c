/* fuzz_passcode: libFuzzer harness for ftm_passcode_split (what a user types, straight off the wire). */
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
	ftm_passcode_clear(&p);
	free(input);
	return 0;
}

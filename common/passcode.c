/* passcode: split typed input into a password and a trailing token code (password + 6 or 8 digits). */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "ftm_passcode.h"

static bool is_ascii_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* password = the input but its last code_len characters, code = those (code_len 0: no code). */
static void split_at(const char *input, size_t len, size_t code_len, ftm_passcode_t *out)
{
	size_t plen = len - code_len;

	memcpy(out->password, input, plen);
	out->password[plen] = '\0';
	memcpy(out->code, input + plen, code_len);
	out->code[code_len] = '\0';
	out->has_code = code_len > 0;
}

int ftm_passcode_split(const char *input, unsigned digits, ftm_passcode_t *out)
{
	size_t len, trailing = 0;

	if (input == NULL || out == NULL)
		return -1;
	len = strnlen(input, FTM_INPUT_MAX + 1);
	if (len > FTM_INPUT_MAX)
		return -1;
	ftm_passcode_clear(out);
	while (trailing < len && is_ascii_digit(input[len - 1 - trailing]))
		trailing++;
	split_at(input, len, digits >= 6 && digits <= FTM_CODE_MAX && trailing >= digits ? digits : 0, out);
	return 0;
}

int ftm_passcode_split_recovery(const char *input, ftm_passcode_t *out)
{
	size_t len;

	if (input == NULL || out == NULL)
		return -1;
	len = strnlen(input, FTM_INPUT_MAX + 1);
	if (len > FTM_INPUT_MAX)
		return -1;
	ftm_passcode_clear(out);
	split_at(input, len,
		 len >= FTM_RECOVERY_LEN && ftm_recovery_is_code(input + len - FTM_RECOVERY_LEN) ? FTM_RECOVERY_LEN : 0,
		 out);
	return 0;
}

bool ftm_passcode_is_code(const char *s, unsigned digits)
{
	unsigned i;

	if (s == NULL || digits == 0 || digits > FTM_CODE_MAX)
		return false;
	for (i = 0; i < digits; i++)
		if (!is_ascii_digit(s[i]))
			return false;
	return s[i] == '\0';
}

bool ftm_passcode_asks_push(const char *answer)
{
	size_t start, end;

	if (answer == NULL)
		return false;
	start = strspn(answer, " \t");
	end = strnlen(answer, FTM_INPUT_MAX + 1);
	while (end > start && (answer[end - 1] == ' ' || answer[end - 1] == '\t'))
		end--;
	return end == start || (end - start == 4 && strncasecmp(answer + start, "push", 4) == 0);
}

void ftm_passcode_clear(ftm_passcode_t *p)
{
	if (p != NULL)
		ftm_memzero(p, sizeof(*p));
}

/* ftm_passcode: split what the user typed into a password and a trailing token code. */
#ifndef FTM_PASSCODE_H
#define FTM_PASSCODE_H

#include <stdbool.h>
#include <stddef.h>
#include "ftm_otp.h"
#include "ftm_recovery.h"

#define FTM_INPUT_MAX	512	/* bytes of typed input accepted; longer input is refused */
/* The longest code a split hands on: a token code (FTM_CODE_MAX digits) or a recovery code. */
#define FTM_PASSCODE_CODE_MAX	(FTM_RECOVERY_LEN > FTM_CODE_MAX ? FTM_RECOVERY_LEN : FTM_CODE_MAX)

typedef struct {
	char	password[FTM_INPUT_MAX + 1];	/* the part before the code (or the whole input) */
	char	code[FTM_PASSCODE_CODE_MAX + 1];	/* the trailing digits (or recovery code), "" when none */
	bool	has_code;			/* input ended in at least `digits` ASCII digits */
} ftm_passcode_t;

/* Split `input` for a token of `digits` digits: when the input ends in >= digits ASCII digits,
 * code = the last `digits` of them and password = everything before. Otherwise has_code = false and
 * password = input. Returns 0, or -1 when input is NULL or longer than FTM_INPUT_MAX (nothing set).
 * Whether the code verifies, and so which reading wins, is the verdict's business (ftm_auth). */
int ftm_passcode_split(const char *input, unsigned digits, ftm_passcode_t *out);

/* The reading with a recovery code: when input ends in a recovery code's shape (ftm_recovery.h), code =
 * those FTM_RECOVERY_LEN characters and password = everything before; otherwise has_code = false and
 * password = input. The shapes never overlap: a token code ends the input in digits, a recovery code
 * puts its hyphen sixth from the end, so trying this reading costs a token code nothing. Returns as
 * ftm_passcode_split. */
int ftm_passcode_split_recovery(const char *input, ftm_passcode_t *out);

/* True when s is exactly `digits` ASCII digits. */
bool ftm_passcode_is_code(const char *s, unsigned digits);

/* An answer at the push prompt that asks for the push rather than giving a code: nothing (Enter),
 * blanks, or the word "push" in any case, for clients that cannot send an empty answer (OpenVPN's
 * static challenge). */
bool ftm_passcode_asks_push(const char *answer);

void ftm_passcode_clear(ftm_passcode_t *p);

#endif

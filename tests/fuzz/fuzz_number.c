/* fuzz_number: the number-matching answer typed at the login prompt (ftm_push_challenge_answer) for a
 * real engine holding one pending number-matching push. Checks that only the login's own State with
 * exactly the right number approves, and that a wrong number never does; that the login's own State is
 * always answered; and that another login's State (the engine knows it: it issued it) is refused and
 * leaves this login's push as it was.
 *
 * Input: the State, '\n', the typed answer; @S@ stands for the real State, @SO@ for the State of the
 * push before this one (another user's), @N@ for the right number. */
#include "config.h"

#include "fuzz_push.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_push_t f;
	ftm_login_t login = { f.user, "192.0.2.1", "vpn", "host" };
	ftm_outcome_t out;
	char *text, *answer;
	size_t len;
	unsigned used;
	bool handled, own;
	ftm_push_verdict_t v;

	if (size > 4096)
		return 0;
	fuzz_push_begin(&f, true, false);
	text = fuzz_subst(&f, data, size, &len, &used);
	answer = memchr(text, '\n', len);
	if (answer) {
		*answer++ = '\0';
		handled = ftm_push_challenge_answer(f.p, &login, text, answer, time(NULL), &out);
		v = fuzz_push_verdict(&f);
		own = (used & FUZZ_USED_STATE) && strcmp(text, f.state) == 0;
		if (own && !handled)
			abort();	/* its own State is always answered */
		if (handled && !own && !fuzz_is_earlier_state(&f, text))
			abort();	/* it answers only States it issued */
		if (handled && !own && (out.result == FTM_RES_OK || v != FTM_PUSH_PENDING))
			abort();	/* an earlier login's State: refused, and this login's push untouched */
		if ((handled && out.result == FTM_RES_OK) || v == FTM_PUSH_APPROVED) {
			if (strcmp(answer, f.number) != 0 || !(used & FUZZ_USED_STATE))
				abort();	/* approved without the State and the exact number */
		}
		if (handled && out.result == FTM_RES_OK && v != FTM_PUSH_APPROVED)
			abort();	/* the login goes on, the push does not say so */
	}
	free(text);
	fuzz_push_end(&f);
	return 0;
}

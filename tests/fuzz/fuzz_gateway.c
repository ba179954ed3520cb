/* fuzz_gateway: a gateway app's answer (ftm_push_answer_gateway, docs/protocol.md 4.2) to a real
 * engine holding one pending push. Checks that only an answer carrying a real proof decides it, that
 * a decision is the one the proof signs, and that a refusal changes nothing.
 *
 * Input: one flag byte (bit 0: number matching), then the JSON body, where @TX@ is the transaction,
 * @PA@ / @PD@ / @PN@ the proofs of approve, deny and approve-with-the-right-number, @N@ the number. */
#include "config.h"

#include "fuzz_push.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_push_t f;
	char *body, reply[512];
	size_t len;
	unsigned used;
	int st;
	ftm_push_verdict_t v;

	if (size < 1 || size > 8192)
		return 0;
	fuzz_push_begin(&f, data[0] & 1, false);
	body = fuzz_subst(&f, data + 1, size - 1, &len, &used);
	st = ftm_push_answer_gateway(f.p, body, len, time(NULL), reply, sizeof(reply));
	v = fuzz_push_verdict(&f);
	if (v != FTM_PUSH_PENDING && !(used & FUZZ_USED_PROOF))
		abort();	/* decided without the seed */
	if ((st == 200) != (v != FTM_PUSH_PENDING) && !(st == 200 && fuzz_names_earlier(&f, body, len)))
		abort();	/* 200 exactly when it decided (or when it decided an earlier push the body named) */
	if (v == FTM_PUSH_APPROVED && strstr(body, f.proof_a) == NULL && strstr(body, f.proof_n) == NULL)
		abort();	/* approved, but no proof of approve in the answer */
	if (st != 200 && strstr(reply, "\"error\"") == NULL)
		abort();
	free(body);
	fuzz_push_end(&f);
	return 0;
}

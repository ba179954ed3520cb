/* message: the user texts that carry a number or a name (the fixed ones are in ftm_message.h). */
#include "config.h"

#include <stdio.h>

#include "ftm_message.h"

/* A token's serial as the user reads it ("your token" when the core named none). */
static const char *token_name(const char *serial)
{
	return serial != NULL && serial[0] != '\0' ? serial : "your token";
}

void ftm_msg_enrol_wrong_code(char *buf, size_t len, unsigned tries_left)
{
	snprintf(buf, len, "That code is not right. %u tr%s left. Check that the app shows the token you just "
		 "added, and type the code it shows now.", tries_left, tries_left == 1 ? "y" : "ies");
}

void ftm_msg_replay(char *buf, size_t len, unsigned wait_seconds)
{
	snprintf(buf, len, "Please wait %u seconds to login again", wait_seconds);
}

void ftm_msg_locked(char *buf, size_t len, unsigned wait_seconds)
{
	unsigned minutes = (wait_seconds + 59) / 60;

	if (wait_seconds == 0)
		snprintf(buf, len, "%s", FTM_MSG_LOCKED);
	else
		snprintf(buf, len, "%s: try again in %u minute%s", FTM_MSG_LOCKED, minutes, minutes == 1 ? "" : "s");
}

void ftm_msg_push_prompt(char *buf, size_t len, const char *serial)
{
	/* OpenSSH shows nothing of a conversation until a prompt: the push waits for Enter. */
	snprintf(buf, len, "Press Enter to send a push to your phone (%s), or type a token code: ",
		 token_name(serial));
}

void ftm_msg_push_sending(char *buf, size_t len, const char *serial, int number_matching)
{
	if (number_matching)
		snprintf(buf, len, "Sending a push to your phone (%s): it shows a number to type here",
			 token_name(serial));
	else
		snprintf(buf, len, "Sending a push to your phone (%s): approve it", token_name(serial));
}

void ftm_msg_recovery_accepted(char *buf, size_t len, unsigned left)
{
	if (left == 0)
		snprintf(buf, len, "Recovery code accepted: 0 left. Ask your administrator for new codes");
	else
		snprintf(buf, len, "Recovery code accepted: %u left", left);
}

void ftm_msg_prompt(char *buf, size_t len, const char *message)
{
	if (message != NULL && message[0] != '\0')
		snprintf(buf, len, "%s: ", message);
	else
		snprintf(buf, len, "%s", FTM_MSG_PROMPT_CODE);
}

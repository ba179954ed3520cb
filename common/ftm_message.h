/* ftm_message: every text a user reads (Reply-Message, PAM prompt or error), defined here once. */
#ifndef FTM_MESSAGE_H
#define FTM_MESSAGE_H

#include <stddef.h>

/* Verdicts of the second factor */
#define FTM_MSG_BAD_CODE	"Invalid token code"
#define FTM_MSG_BAD_ANSWER	"Invalid answer"
#define FTM_MSG_LOCKED		"Token locked"
#define FTM_MSG_EXPIRED		"Token expired: ask your administrator to re-issue it"
#define FTM_MSG_NO_TOKEN	"No token"
#define FTM_MSG_STORE_DOWN	"Token store unavailable"
#define FTM_MSG_ERROR		"Authentication error"
#define FTM_MSG_CODE_REQUIRED	"Token code required: enter your password followed by the token code"
#define FTM_MSG_DENIED		"Token denied or timeout"

/* Challenges (RADIUS Access-Challenge, PAM prompt) */
#define FTM_MSG_ENTER_CODE	"Enter the token code"
#define FTM_MSG_PUSH_DOWN_CODE	"Push unavailable. Enter the token code"
#define FTM_MSG_ENTER_NUMBER	"Enter the number shown on your phone"
#define FTM_MSG_CHALLENGE_BAD	"Invalid challenge: log in again"
#define FTM_MSG_CHALLENGE_OLD	"Challenge expired: log in again"
#define FTM_MSG_CHALLENGE_UNKNOWN "Invalid or expired challenge: log in again"

/* Push */
#define FTM_MSG_PUSH_DOWN	"Push unavailable"
#define FTM_MSG_PUSH_NOT_SENT	"Push could not be sent"
#define FTM_MSG_PUSH_CANCELLED	"Push cancelled"
#define FTM_MSG_PUSHD_DOWN	"Push unavailable (push daemon not running)"
#define FTM_MSG_PUSHD_UNTRUSTED	"Push unavailable (push daemon not trusted)"
#define FTM_MSG_PUSHD_ERROR	"Push unavailable (push daemon error)"
#define FTM_MSG_PUSHD_BAD_REQUEST "Push unavailable (bad request)"

/* The first factor and the request, as the front ends report them */
#define FTM_MSG_BAD_PASSWORD	"Wrong password"
#define FTM_MSG_NO_PAP		"This login needs a password (PAP): CHAP and MS-CHAP cannot carry a token code"
#define FTM_MSG_UNAVAILABLE	"Authentication service unavailable"
#define FTM_MSG_BAD_USER	"Invalid user name"
#define FTM_MSG_NO_USER		"No user name"

/* PAM prompts */
#define FTM_MSG_PROMPT_PASSWORD	"Password: "
#define FTM_MSG_PROMPT_CODE	"Token code: "

/* Texts with a number or a name in them: built only here. */
void ftm_msg_replay(char *buf, size_t len, unsigned wait_seconds);	/* "Please wait N seconds ..." */
/* PAM push_wait=prompt: ask before pushing to the token named serial. */
void ftm_msg_push_prompt(char *buf, size_t len, const char *serial);
/* PAM: said while the push goes out (number: the phone shows a number to type here). */
void ftm_msg_push_sending(char *buf, size_t len, const char *serial, int number_matching);
/* A challenge question as a prompt: "MESSAGE: ", or the code prompt when message is empty. */
void ftm_msg_prompt(char *buf, size_t len, const char *message);

#endif

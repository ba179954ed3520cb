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

/* Recovery codes, typed in place of a token code */
#define FTM_MSG_RECOVERY_BAD	"Invalid recovery code"
#define FTM_MSG_RECOVERY_USED	"Recovery code already used"

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
#define FTM_MSG_PUSHD_NOT_ALLOWED "Push unavailable (not allowed for this user from here)"

/* The first factor and the request, as the front ends report them */
#define FTM_MSG_BAD_PASSWORD	"Wrong password"
#define FTM_MSG_NO_PAP		"This login needs a password (PAP): CHAP and MS-CHAP cannot carry a token code"
#define FTM_MSG_UNAVAILABLE	"Authentication service unavailable"
#define FTM_MSG_BAD_USER	"Invalid user name"
#define FTM_MSG_NO_USER		"No user name"

/* PAM prompts */
#define FTM_MSG_PROMPT_PASSWORD	"Password: "
#define FTM_MSG_PROMPT_CODE	"Token code: "

/* The enrolment page of activation links: a title and a text per answer */
#define FTM_MSG_ENROL_UNKNOWN_TITLE	"This link is not valid"
#define FTM_MSG_ENROL_UNKNOWN	"The link is wrong or was replaced by a newer one (a token is re-issued with a new link). " \
				"Use the newest link you received, or ask your administrator for a new one."
#define FTM_MSG_ENROL_EXPIRED_TITLE	"This link has expired"
#define FTM_MSG_ENROL_EXPIRED	"Activation links work for a limited time. Ask your administrator for a new link."
#define FTM_MSG_ENROL_USED_TITLE	"This link has been used"
#define FTM_MSG_ENROL_USED	"Your token is already set up: log in with your password and the code your app shows. " \
				"Lost or replaced your phone? Ask your administrator for a new token."
#define FTM_MSG_ENROL_EXHAUSTED_TITLE	"Too many wrong codes"
#define FTM_MSG_ENROL_EXHAUSTED	"Too many wrong codes were typed on this link, so it no longer works. " \
				"Ask your administrator for a new link."
#define FTM_MSG_ENROL_LOCKED_TITLE	"Your token is locked"
#define FTM_MSG_ENROL_LOCKED	"Ask your administrator to unlock it, or for a new token."
#define FTM_MSG_ENROL_ERROR_TITLE	"Enrolment is unavailable"
#define FTM_MSG_ENROL_ERROR	"The service cannot check your link right now. Try again in a few minutes."
#define FTM_MSG_ENROL_BAD_FORM_TITLE	"The form could not be read"
#define FTM_MSG_ENROL_BAD_FORM	"Go back to the link in your e-mail and type the code your app shows (digits only)."
#define FTM_MSG_ENROL_RATE_TITLE	"Too many requests"
#define FTM_MSG_ENROL_RATE	"Wait a minute, then open the link again."
#define FTM_MSG_ENROL_METHOD_TITLE	"Not allowed"
#define FTM_MSG_ENROL_METHOD	"Open the link in your e-mail with a web browser."
#define FTM_MSG_ENROL_DONE_TITLE	"Your token is active"
#define FTM_MSG_ENROL_DONE	"From now on, log in with your password followed by the code your app shows " \
				"(for example p@ssw0rd123456), or approve the push on your phone when your token has one."

/* Texts with a number or a name in them: built only here. */
/* The enrolment page after a wrong code: how many tries the link still takes. */
void ftm_msg_enrol_wrong_code(char *buf, size_t len, unsigned tries_left);
void ftm_msg_replay(char *buf, size_t len, unsigned wait_seconds);	/* "Please wait N seconds ..." */
/* FTM_MSG_LOCKED, or "Token locked: try again in N minutes" when the lock ends by itself in
 * wait_seconds (lockout_duration; N rounded up). */
void ftm_msg_locked(char *buf, size_t len, unsigned wait_seconds);
/* PAM push_wait=prompt: ask before pushing to the token named serial. */
void ftm_msg_push_prompt(char *buf, size_t len, const char *serial);
/* PAM: said while the push goes out (number: the phone shows a number to type here). */
void ftm_msg_push_sending(char *buf, size_t len, const char *serial, int number_matching);
/* A recovery code was accepted: "Recovery code accepted: N left" (and what to do when none are). */
void ftm_msg_recovery_accepted(char *buf, size_t len, unsigned left);
/* A challenge question as a prompt: "MESSAGE: ", or the code prompt when message is empty. */
void ftm_msg_prompt(char *buf, size_t len, const char *message);

#endif

/* rendezvous_login: the login ops of the socket protocol (ftm_rendezvous.h): a PAM login's split and
 * code verdict asked of ftmpushd. Both sides' encoding is here; what the answers mean is the core's
 * (ftm_auth_split, ftm_auth_verify_code in ftmpushd), and what they become is pam_ftmpush's finish(). */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ftm_message.h"
#include "ftm_otp.h"
#include "ftm_rendezvous.h"
#include "ftm_util.h"
#include "rdv_frame.h"

static const char *op_name(ftm_rdv_op_t op)
{
	return op == FTM_RDV_OP_SPLIT ? "split" : "verify";
}

/* A string member holding what was typed: zeroed in place before the object is put. */
static void jzero(json_object *obj, const char *key)
{
	json_object *v;

	if (json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string))
		ftm_memzero((char *)json_object_get_string(v), (size_t)json_object_get_string_len(v));
}

/* A boolean member: 1 true, 0 false or absent, -1 another type. */
static int jbool(json_object *obj, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return -1;
	return json_object_get_boolean(v) ? 1 : 0;
}

/* ---- client ---- */

/* How long after its split a kept connection may still carry the verify (ftm_rdv_login_set_reuse_ms). */
static atomic_uint reuse_ms = FTM_RDV_LOGIN_REUSE_MS;

void ftm_rdv_login_set_reuse_ms(unsigned ms)
{
	atomic_store(&reuse_ms, ms ? ms : FTM_RDV_LOGIN_REUSE_MS);
}

/* The split's connection kept for the verify: closed by the daemon meanwhile (its idle timeout, a
 * restart)? Readable (an end of file, or anything the daemon would never send unasked), hung up or in
 * error all mean it cannot carry the verify. */
static bool conn_dead(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, 0) != 0;
}

/* A new connection to the daemon at path, which must be ftmpushd: the fd, or -1 with the code. */
static int login_connect(const char *path, const char *store, bool after_split, ftm_rdv_login_rc_t *rc,
			 char *err, size_t err_len)
{
	struct ucred cr;
	int fd;

	fd = ftm_rdv_connect(path);
	if (fd < 0) {
		if ((errno == ENOENT || errno == ECONNREFUSED) && !after_split) {
			ftm_set_err(err, err_len, "ftmpushd not running at %s (%s)", path, strerror(errno));
			*rc = FTM_RDV_LOGIN_NO_DAEMON;
		} else if (errno == ENOENT || errno == ECONNREFUSED) {
			/* it split this login: it decides its verdict, or the login fails */
			ftm_set_err(err, err_len, "ftmpushd at %s went away between the split and the verify (%s)", path,
				    strerror(errno));
			*rc = FTM_RDV_LOGIN_FAILED;
		} else {
			ftm_set_err(err, err_len, "ftmpushd at %s: connect: %s", path, strerror(errno));
			*rc = FTM_RDV_LOGIN_FAILED;
		}
		return -1;
	}
	if (!ftm_rdv_server_trusted(fd, store, &cr)) {
		close(fd);
		ftm_set_err(err, err_len, "the process at %s (pid %ld uid %lu) is not ftmpushd (not root, not us, not the token store's owner): refused",
			    path, (long)cr.pid, (unsigned long)cr.uid);
		*rc = FTM_RDV_LOGIN_FAILED;
		return -1;
	}
	return fd;
}

/* Send one login request and read its one answer: *reply (caller puts it), or not ANSWERED.
 * keep (NULL: none): the split's connection (keep->fd >= 0), used for this request and closed after
 * it; a split's connection is left in *keep for its verify, with when the split went. */
static ftm_rdv_login_rc_t login_call(const char *socket_path, const char *store, ftm_rdv_op_t op,
				     const ftm_login_t *login, const char *input, ftm_rdv_kept_t *keep, json_object **reply,
				     char *err, size_t err_len)
{
	const char *path = socket_path != NULL && *socket_path ? socket_path : FTM_DEFAULT_SOCKET;
	ftm_rdv_login_rc_t lrc = FTM_RDV_LOGIN_FAILED;
	bool after_split = false, kept = false;
	json_object *msg;
	int64_t sent = 0;
	int fd = -1, rc;

	*reply = NULL;
	if (keep != NULL) {
		/* the daemon split this login: it decides the verify or nobody does (a split op has none) */
		after_split = keep->split || keep->fd >= 0;
		fd = keep->fd;
		/* too old (the daemon's wait may end as the verify goes), or closed meanwhile */
		kept = fd >= 0 && ftm_mono_ms() - keep->sent_ms < (int64_t)atomic_load(&reuse_ms) && !conn_dead(fd);
		*keep = FTM_RDV_KEPT_NONE;
		if (fd >= 0 && !kept) {
			close(fd);
			fd = -1;
		}
	}
	msg = json_object_new_object();
	json_object_object_add(msg, "v", json_object_new_int(1));
	json_object_object_add(msg, "op", json_object_new_string(op_name(op)));
	ftm_rdv_jadd_str(msg, "user", login->user);
	ftm_rdv_jadd_str(msg, "client", login->client);
	ftm_rdv_jadd_str(msg, "nas", login->nas);
	ftm_rdv_jadd_str(msg, "host", login->host);
	ftm_rdv_jadd_str(msg, "store", store);
	json_object_object_add(msg, op == FTM_RDV_OP_SPLIT ? "typed" : "code", json_object_new_string(input));
	for (;;) {
		if (fd < 0 && (fd = login_connect(path, store, after_split, &lrc, err, err_len)) < 0) {
			rc = -1;
			break;
		}
		sent = ftm_mono_ms();
		rc = ftm_rdv_send_json(fd, msg);
		if (rc == 0 || !kept)
			break;
		/* The kept connection broke as the request went: the daemon never had all of it, so it
		 * decided nothing; the request goes once more, on a new connection. */
		close(fd);
		fd = -1;
		kept = false;
	}
	jzero(msg, op == FTM_RDV_OP_SPLIT ? "typed" : "code");
	json_object_put(msg);
	if (fd < 0)
		return lrc;
	if (rc != 0) {
		ftm_set_err(err, err_len, "sending the %s request to ftmpushd at %s: %s", op_name(op), path,
			    strerror(errno));
		close(fd);
		return FTM_RDV_LOGIN_FAILED;
	}
	*reply = ftm_rdv_recv_json(fd, ftm_mono_ms() + (int64_t)FTM_RDV_LOGIN_TIMEOUT * 1000, -1);
	if (*reply == NULL) {
		ftm_set_err(err, err_len, "no %s answer from ftmpushd at %s: %s", op_name(op), path,
			    errno == ETIMEDOUT ? "timed out" : errno == ECONNRESET ? "the daemon closed the connection"
			    : strerror(errno));
		close(fd);
		return FTM_RDV_LOGIN_FAILED;
	}
	if (!ftm_rdv_version_ok(*reply)) {
		close(fd);
		json_object_put(*reply);
		*reply = NULL;
		ftm_set_err(err, err_len, "ftmpushd at %s: malformed %s answer (version)", path, op_name(op));
		return FTM_RDV_LOGIN_FAILED;
	}
	if (op == FTM_RDV_OP_SPLIT && keep != NULL) {
		/* the caller's, for the verify (or closed by ftm_rdv_login_close) */
		*keep = (ftm_rdv_kept_t){ .fd = fd, .sent_ms = sent, .split = true };
	} else {
		close(fd);
	}
	return FTM_RDV_LOGIN_ANSWERED;
}

void ftm_rdv_login_close(ftm_rdv_kept_t *keep)
{
	if (keep == NULL)
		return;
	if (keep->fd >= 0)
		close(keep->fd);
	*keep = FTM_RDV_KEPT_NONE;
}

/* The daemon refused this peer before deciding anything ("refused":"peer"). */
static bool peer_refused(json_object *reply, char *err, size_t err_len)
{
	const char *r = ftm_json_string(reply, "refused");

	if (r == NULL || strcmp(r, "peer") != 0)
		return false;
	ftm_set_err(err, err_len, "ftmpushd does not decide for this user from this process: %.200s",
		    ftm_or(ftm_json_string(reply, "reason"), "-"));
	return true;
}

/* A refusal instead of the op's answer (a daemon busy or too old, a bad request): its reason. */
static bool refused(json_object *reply, char *err, size_t err_len)
{
	const char *r = ftm_json_string(reply, "result"), *v = ftm_json_string(reply, "verdict");

	if ((r == NULL || strcmp(r, "error") != 0) && v == NULL)
		return false;
	ftm_set_err(err, err_len, "ftmpushd refused the login: %.200s", ftm_or(ftm_json_string(reply, "reason"), "-"));
	return true;
}

ftm_rdv_login_rc_t ftm_rdv_login_split(const char *socket_path, const char *store, const ftm_login_t *login,
				       const char *typed, ftm_split_t *out, ftm_rdv_kept_t *keep, char *err,
				       size_t err_len)
{
	static const char *const strings[] = { "push_serial", NULL };
	ftm_rdv_login_rc_t rc;
	json_object *reply;
	int has_token, pass, push, alt;
	size_t len = typed != NULL ? strnlen(typed, FTM_INPUT_MAX + 1) : 0;
	int64_t code_len = 0;

	ftm_memzero(out, sizeof(*out));
	ftm_rdv_login_close(keep);	/* a new split, a new connection */
	if (typed == NULL || len > FTM_INPUT_MAX) {
		ftm_set_err(err, err_len, "input longer than %d bytes", FTM_INPUT_MAX);
		return FTM_RDV_LOGIN_FAILED;
	}
	rc = login_call(socket_path, store, FTM_RDV_OP_SPLIT, login, typed, keep, &reply, err, err_len);
	if (rc != FTM_RDV_LOGIN_ANSWERED)
		return rc;
	if (peer_refused(reply, err, err_len)) {
		json_object_put(reply);
		ftm_rdv_login_close(keep);
		return FTM_RDV_LOGIN_REFUSED;
	}
	if (refused(reply, err, err_len)) {
		json_object_put(reply);
		ftm_rdv_login_close(keep);
		return FTM_RDV_LOGIN_FAILED;
	}
	has_token = jbool(reply, "has_token");
	pass = jbool(reply, "pass_without_token");
	push = jbool(reply, "push_available");
	alt = jbool(reply, "has_alt");
	if (has_token < 0 || pass < 0 || push < 0 || alt < 0 || !ftm_rdv_strings_ok(reply, strings) ||
	    ftm_rdv_jint(reply, "code_len", &code_len) < 0 || code_len < 0 || (size_t)code_len > len ||
	    code_len > FTM_PASSCODE_CODE_MAX || (alt && code_len == 0)) {
		json_object_put(reply);
		ftm_rdv_login_close(keep);
		ftm_set_err(err, err_len, "ftmpushd sent a malformed split answer");
		return FTM_RDV_LOGIN_FAILED;
	}
	out->has_token = has_token == 1;
	out->pass_without_token = pass == 1;
	out->push_available = push == 1;
	ftm_copy(out->push_serial, sizeof(out->push_serial), ftm_json_string(reply, "push_serial"));
	json_object_put(reply);
	/* The daemon's reading of what was typed: the code is its last code_len bytes. */
	memcpy(out->primary.password, typed, len - (size_t)code_len);
	out->primary.password[len - (size_t)code_len] = '\0';
	if (code_len > 0) {
		memcpy(out->primary.code, typed + len - (size_t)code_len, (size_t)code_len);
		out->primary.code[code_len] = '\0';
		out->primary.has_code = true;
	} else {
		ftm_rdv_login_close(keep);	/* no code: no verify will follow */
	}
	if (alt == 1) {
		out->has_alt = true;
		memcpy(out->alt_password, typed, len + 1);
	}
	return FTM_RDV_LOGIN_ANSWERED;
}

ftm_rdv_login_rc_t ftm_rdv_login_verify(const char *socket_path, const char *store, const ftm_login_t *login,
					const char *code, ftm_outcome_t *out, ftm_rdv_kept_t *keep, char *err,
					size_t err_len)
{
	static const char *const strings[] = { "result", "serial", "message", "reason", NULL };
	ftm_rdv_login_rc_t rc;
	json_object *reply;
	ftm_result_t r;
	int64_t wait = 0;

	/* fail closed until the daemon's verdict is read */
	ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_UNAVAILABLE, "no verdict from ftmpushd");
	rc = login_call(socket_path, store, FTM_RDV_OP_VERIFY, login, ftm_or(code, ""), keep, &reply, err, err_len);
	if (rc != FTM_RDV_LOGIN_ANSWERED)
		return rc;
	if (peer_refused(reply, err, err_len)) {
		json_object_put(reply);
		return FTM_RDV_LOGIN_REFUSED;
	}
	if (!ftm_rdv_strings_ok(reply, strings) || ftm_result_parse(ftm_json_string(reply, "result"), &r) != 0 ||
	    r == FTM_RES_CHALLENGE || ftm_rdv_jint(reply, "wait", &wait) < 0 || wait < 0 || wait > 86400 ||
	    ftm_json_string(reply, "verdict") != NULL) {
		json_object_put(reply);
		ftm_set_err(err, err_len, "ftmpushd sent a malformed verdict");
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_UNAVAILABLE, "malformed verdict from ftmpushd");
		return FTM_RDV_LOGIN_FAILED;
	}
	ftm_outcome_set(out, r, ftm_json_string(reply, "serial"), ftm_json_string(reply, "message"),
			ftm_json_string(reply, "reason"));
	out->wait_seconds = (unsigned)wait;
	out->audited = true;	/* the daemon's core wrote the decision's audit row */
	json_object_put(reply);
	return FTM_RDV_LOGIN_ANSWERED;
}

/* ---- server (ftmpushd: rendezvous_socket.c's connection thread) ---- */

int ftm_rdv_login_parse(json_object *msg, ftm_rdv_op_t *op, ftm_login_t *login, const char **store,
			const char **input, char *why, size_t why_len)
{
	static const char *const strings[] = { "op", "user", "client", "nas", "host", "store", "typed", "code", NULL };
	const char *o = ftm_json_string(msg, "op");

	memset(login, 0, sizeof(*login));
	*input = NULL;
	if (!ftm_rdv_strings_ok(msg, strings)) {
		snprintf(why, why_len, "a member that must be a string is not");
		return -1;
	}
	if (o != NULL && strcmp(o, "split") == 0)
		*op = FTM_RDV_OP_SPLIT;
	else if (o != NULL && strcmp(o, "verify") == 0)
		*op = FTM_RDV_OP_VERIFY;
	else {
		snprintf(why, why_len, "unknown op");
		return -1;
	}
	login->user = ftm_rdv_user(msg);
	if (login->user == NULL) {
		snprintf(why, why_len, "missing or bad user");
		return -1;
	}
	login->client = ftm_or(ftm_json_string(msg, "client"), "");
	login->nas = ftm_or(ftm_json_string(msg, "nas"), "");
	login->host = ftm_or(ftm_json_string(msg, "host"), "");
	*store = ftm_or(ftm_json_string(msg, "store"), "");
	*input = ftm_json_string(msg, *op == FTM_RDV_OP_SPLIT ? "typed" : "code");
	if (*input == NULL)
		*input = "";
	if (strlen(*input) > FTM_INPUT_MAX) {
		snprintf(why, why_len, "input too long");
		return -1;
	}
	return 0;
}

json_object *ftm_rdv_login_answer(json_object *request, ftm_rdv_op_t op, const char *input, const ftm_split_t *sp,
				  const ftm_outcome_t *out)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, "v", json_object_new_int(1));
	if (op == FTM_RDV_OP_SPLIT && out->result != FTM_RES_ERROR) {
		size_t len = strlen(input), code_len = sp->primary.has_code ? strlen(sp->primary.code) : 0;

		json_object_object_add(a, "has_token", json_object_new_boolean(sp->has_token));
		json_object_object_add(a, "pass_without_token", json_object_new_boolean(sp->pass_without_token));
		json_object_object_add(a, "push_available", json_object_new_boolean(sp->push_available));
		ftm_rdv_jadd_str(a, "push_serial", sp->push_serial);
		/* the core's reading is "password, then code" of the input: only the code's length travels */
		json_object_object_add(a, "code_len", json_object_new_int(code_len <= len ? (int)code_len : 0));
		json_object_object_add(a, "has_alt", json_object_new_boolean(sp->has_alt && code_len > 0));
	} else {
		json_object_object_add(a, "result", json_object_new_string(ftm_result_name(out->result)));
		ftm_rdv_jadd_str(a, "serial", out->serial);
		if (out->wait_seconds > 0)
			json_object_object_add(a, "wait", json_object_new_int((int)out->wait_seconds));
		ftm_rdv_jadd_str(a, "message", out->message);
		ftm_rdv_jadd_str(a, "reason", out->reason);
	}
	jzero(request, "typed");
	jzero(request, "code");
	return a;
}

/* rdv_frame: the socket protocol's framing, shared by rendezvous_socket.c and rendezvous_login.c
 * (internal to common/; the protocol itself is described in ftm_rendezvous.h). */
#ifndef FTM_RDV_FRAME_H
#define FTM_RDV_FRAME_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <json-c/json.h>

#include "ftm_rendezvous.h"

/* One message: 4-byte big-endian length, then the object (its serialisation zeroed after sending). */
int ftm_rdv_send_json(int fd, json_object *obj);
/* One message before deadline (ms, monotonic) or abort_fd fires: a strict JSON object (caller puts
 * it), or NULL with errno (ETIMEDOUT, ECANCELED, ECONNRESET, EMSGSIZE, EPROTO). */
json_object *ftm_rdv_recv_json(int fd, int64_t deadline, int abort_fd);
/* key is an integer (not "1", 1.9 or true): 1 with *out, 0 absent, -1 not. */
int ftm_rdv_jint(json_object *obj, const char *key, int64_t *out);
/* "v" is exactly the integer 1. */
bool ftm_rdv_version_ok(json_object *obj);
/* Every member in keys[] that is present is a string. */
bool ftm_rdv_strings_ok(json_object *obj, const char *const *keys);
/* The request's "user": a non-empty string shorter than FTM_USER_MAX, or NULL. */
const char *ftm_rdv_user(json_object *msg);
/* Adds key only when val is a non-empty string. */
void ftm_rdv_jadd_str(json_object *obj, const char *key, const char *val);
/* A connected SOCK_STREAM fd, or -1 with errno (ENOENT, ECONNREFUSED: nobody listens). */
int ftm_rdv_connect(const char *path);
/* The process behind fd may give verdicts: root, our own uid, or the token store's owner. */
bool ftm_rdv_server_trusted(int fd, const char *store, struct ucred *cr);

/* ---- the login ops' server side (rendezvous_login.c) ---- */
/* The login request in msg: 0 with op, login, the client's token_db ("" when not given) and input
 * (typed or code), all pointing into msg; or -1 with why. */
int ftm_rdv_login_parse(json_object *msg, ftm_rdv_op_t *op, ftm_login_t *login, const char **store,
			const char **input, char *why, size_t why_len);
/* The answer to a login op (split: sp, else out; a failed split: out->result = FTM_RES_ERROR), and
 * zeroes what the request carried. */
json_object *ftm_rdv_login_answer(json_object *request, ftm_rdv_op_t op, const char *input, const ftm_split_t *sp,
				  const ftm_outcome_t *out);

#endif

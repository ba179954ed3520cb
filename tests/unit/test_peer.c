/* test_peer: what ftmpushd's socket lets a peer ask (common/peer.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "ftm_peer.h"

enum { DAEMON_UID = 999, ALICE_UID = 1001, ALICE_GID = 1001, SOCKET_GID = 150, TRUSTED_GID = 151 };

static ftm_peer_policy_t policy(bool trust)
{
	ftm_peer_policy_t pol;

	memset(&pol, 0, sizeof(pol));
	pol.daemon_uid = DAEMON_UID;
	pol.socket_group = SOCKET_GID;
	if (trust) {
		pol.trusted[0] = TRUSTED_GID;
		pol.ntrusted = 1;
	}
	return pol;
}

static ftm_peer_t peer(uid_t uid, gid_t gid, const char *name)
{
	ftm_peer_t p;

	memset(&p, 0, sizeof(p));
	p.pid = 4242;
	p.uid = uid;
	p.gid = gid;
	snprintf(p.name, sizeof(p.name), "%s", name);
	return p;
}

static void test_root_and_the_daemon_user_may_push_for_anyone(void **state)
{
	ftm_peer_policy_t pol = policy(false);
	ftm_peer_t root = peer(0, 0, "root"), daemon = peer(DAEMON_UID, DAEMON_UID, "ftmpush");
	char why[256] = "";

	(void)state;
	assert_true(ftm_peer_admitted(&pol, &root));
	assert_true(ftm_peer_admitted(&pol, &daemon));
	assert_true(ftm_peer_may_push_for(&pol, &root, "bob", why, sizeof(why)));
	assert_true(ftm_peer_may_push_for(&pol, &daemon, "bob", why, sizeof(why)));
}

static void test_a_socket_group_member_gets_in_by_a_supplementary_group(void **state)
{
	ftm_peer_policy_t pol = policy(false);
	ftm_peer_t alice = peer(ALICE_UID, ALICE_GID, "alice");

	(void)state;
	assert_false(ftm_peer_admitted(&pol, &alice));
	alice.groups[0] = ALICE_GID;
	alice.groups[1] = SOCKET_GID;
	alice.ngroups = 2;
	assert_true(ftm_peer_admitted(&pol, &alice));
	pol.socket_group = (gid_t)-1;	/* no -g: only root and the daemon's user */
	assert_false(ftm_peer_admitted(&pol, &alice));
}

static void test_a_peer_that_is_not_root_may_push_only_for_its_own_user(void **state)
{
	ftm_peer_policy_t pol = policy(false);
	ftm_peer_t alice = peer(ALICE_UID, SOCKET_GID, "alice");
	char why[256] = "";

	(void)state;
	assert_true(ftm_peer_may_push_for(&pol, &alice, "alice", why, sizeof(why)));
	assert_false(ftm_peer_may_push_for(&pol, &alice, "bob", why, sizeof(why)));
	/* the log line says who asked for whom */
	assert_non_null(strstr(why, "uid 1001 (alice) gid 150"));
	assert_non_null(strstr(why, "'bob'"));
	assert_false(ftm_peer_may_push_for(&pol, &alice, "alic", why, sizeof(why)));
	assert_false(ftm_peer_may_push_for(&pol, &alice, "alice2", why, sizeof(why)));
	assert_false(ftm_peer_may_push_for(&pol, &alice, "", why, sizeof(why)));
}

static void test_a_uid_without_a_name_may_push_for_nobody(void **state)
{
	ftm_peer_policy_t pol = policy(false);
	ftm_peer_t anon = peer(4000, SOCKET_GID, "");
	char why[256] = "";

	(void)state;
	assert_false(ftm_peer_may_push_for(&pol, &anon, "", why, sizeof(why)));
	assert_false(ftm_peer_may_push_for(&pol, &anon, "bob", why, sizeof(why)));
}

static void test_a_trusted_group_may_push_for_anyone(void **state)
{
	ftm_peer_policy_t pol = policy(true);
	ftm_peer_t alice = peer(ALICE_UID, ALICE_GID, "alice");
	char why[256] = "";

	(void)state;
	assert_false(ftm_peer_may_push_for(&pol, &alice, "bob", why, sizeof(why)));
	alice.groups[0] = SOCKET_GID;
	alice.groups[1] = TRUSTED_GID;
	alice.ngroups = 2;
	assert_true(ftm_peer_may_push_for(&pol, &alice, "bob", why, sizeof(why)));
	alice.ngroups = 1;	/* the socket group alone trusts nothing */
	assert_false(ftm_peer_may_push_for(&pol, &alice, "bob", why, sizeof(why)));
	alice = peer(ALICE_UID, TRUSTED_GID, "alice");	/* as the primary group too */
	assert_true(ftm_peer_may_push_for(&pol, &alice, "bob", why, sizeof(why)));
}

/* A code verdict through the daemon: its split's peek counts nothing, so only root and the daemon's user. */
static void test_only_root_and_the_daemon_user_may_ask_a_code_verdict(void **state)
{
	ftm_peer_policy_t pol = policy(true);
	ftm_peer_t root = peer(0, 0, "root"), daemon = peer(DAEMON_UID, DAEMON_UID, "ftmpush");
	ftm_peer_t alice = peer(ALICE_UID, TRUSTED_GID, "alice");
	char why[256] = "";

	(void)state;
	assert_true(ftm_peer_may_decide_for(&pol, &root, "bob", why, sizeof(why)));
	assert_true(ftm_peer_may_decide_for(&pol, &daemon, "bob", why, sizeof(why)));
	/* neither for its own user nor, in a trusted group, for another: it may push for both */
	assert_true(ftm_peer_may_push_for(&pol, &alice, "alice", why, sizeof(why)));
	assert_false(ftm_peer_may_decide_for(&pol, &alice, "alice", why, sizeof(why)));
	assert_true(ftm_peer_may_push_for(&pol, &alice, "bob", why, sizeof(why)));
	assert_false(ftm_peer_may_decide_for(&pol, &alice, "bob", why, sizeof(why)));
	assert_non_null(strstr(why, "uid 1001 (alice)"));
	assert_non_null(strstr(why, "code verdict for 'bob'"));
}

static void test_the_kernel_tells_a_connected_peer(void **state)
{
	int sv[2];
	ftm_peer_t p;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(ftm_peer_read(sv[0], &p), 0);
	assert_int_equal(p.uid, geteuid());
	assert_int_equal(p.gid, getegid());
	assert_int_equal(p.pid, getpid());
	assert_true(ftm_peer_in_group(&p, getegid()));
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(ftm_peer_read(-1, &p), -1);
}

static void test_a_privileged_peer_is_admitted_without_a_name_lookup(void **state)
{
	ftm_peer_policy_t pol = { .daemon_uid = geteuid(), .socket_group = (gid_t)-1 };
	int sv[2];
	ftm_peer_t p;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(ftm_peer_read_admitted(sv[0], &pol, &p), 0);
	assert_int_equal(p.uid, geteuid());
	assert_string_equal(p.name, "");	/* root or the daemon's user: no rule looks at the name */
	{
		char why[256];

		assert_true(ftm_peer_may_push_for(&pol, &p, "anyone", why, sizeof(why)));
	}
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(ftm_peer_read_admitted(-1, &pol, &p), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_root_and_the_daemon_user_may_push_for_anyone),
		cmocka_unit_test(test_a_socket_group_member_gets_in_by_a_supplementary_group),
		cmocka_unit_test(test_a_peer_that_is_not_root_may_push_only_for_its_own_user),
		cmocka_unit_test(test_a_uid_without_a_name_may_push_for_nobody),
		cmocka_unit_test(test_a_trusted_group_may_push_for_anyone),
		cmocka_unit_test(test_only_root_and_the_daemon_user_may_ask_a_code_verdict),
		cmocka_unit_test(test_the_kernel_tells_a_connected_peer),
		cmocka_unit_test(test_a_privileged_peer_is_admitted_without_a_name_lookup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* free_port: a TCP port on 127.0.0.1 that nothing listens on now, for a unit test's listener. Include it
 * after <cmocka.h> and the socket headers. */
#ifndef FTM_TEST_FREE_PORT_H
#define FTM_TEST_FREE_PORT_H

static unsigned free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

#endif

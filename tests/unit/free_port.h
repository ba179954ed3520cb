/* free_port: a TCP port that nothing uses now on any address, for a unit test's listener. Include it
 * after <cmocka.h> and the socket headers.
 *
 * Not a port the kernel hands to bind(port 0): that one comes from the ephemeral range
 * (ip_local_port_range, 32768-60999 by default), where any process's next connect() may take it as its
 * local port before the test's listener binds it — another unit test's client running beside this one
 * (make -j2 check), a PostgreSQL or HTTP client — and the listener, which binds every address, then
 * fails ("cannot listen ... port N"; seen in CI). A port from 20000-32767 is never given to a
 * connect(); it is picked at random and taken only if it binds on every address (IPv6 and IPv4, as the
 * push listener's dual-stack socket does), without SO_REUSEADDR. */
#ifndef FTM_TEST_FREE_PORT_H
#define FTM_TEST_FREE_PORT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#define FREE_PORT_LOW	20000u
#define FREE_PORT_SPAN	12768u	/* up to 32767 */

static bool port_binds_everywhere(unsigned port)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT,
				   .sin6_port = htons((uint16_t)port) };
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY),
				  .sin_port = htons((uint16_t)port) };
	int off = 0, fd = socket(AF_INET6, SOCK_STREAM, 0);
	bool ok;

	if (fd >= 0) {	/* one dual-stack socket: free on both families' every address */
		ok = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) == 0 &&
		     bind(fd, (struct sockaddr *)&s6, sizeof(s6)) == 0;
		close(fd);
		return ok;
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);	/* no IPv6 here */
	if (fd < 0)
		return false;
	ok = bind(fd, (struct sockaddr *)&s4, sizeof(s4)) == 0;
	close(fd);
	return ok;
}

static unsigned free_port(void)
{
	static unsigned seq;
	unsigned seed = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL);

	for (unsigned i = 0; i < 1000; i++) {
		unsigned port = FREE_PORT_LOW + (seed + (seq++) * 7919u) % FREE_PORT_SPAN;

		if (port_binds_everywhere(port))
			return port;
	}
	fail_msg("free_port: no free port in %u-%u", FREE_PORT_LOW, FREE_PORT_LOW + FREE_PORT_SPAN - 1);
	return 0;
}

#endif

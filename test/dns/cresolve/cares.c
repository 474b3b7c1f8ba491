/* cares HOST PORT: resolves with c-ares (its own resolver, which keeps a
 * connected UDP socket per server), then connects to the first address;
 * prints "connected" or the error. */
#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <unistd.h>

static struct in_addr found;
static int status = -1;

static void done(void *arg, int st, int timeouts, struct hostent *h) {
	(void)arg;
	(void)timeouts;
	status = st;
	if (st == ARES_SUCCESS && h && h->h_addr_list[0])
		memcpy(&found, h->h_addr_list[0], sizeof found);
}

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: cares HOST PORT\n");
		return 2;
	}
	ares_library_init(ARES_LIB_INIT_ALL);
	ares_channel ch;
	if (ares_init(&ch) != ARES_SUCCESS) {
		printf("ares_init failed\n");
		return 1;
	}
	ares_gethostbyname(ch, argv[1], AF_INET, done, NULL);
	for (;;) {
		fd_set r, w;
		FD_ZERO(&r);
		FD_ZERO(&w);
		int n = ares_fds(ch, &r, &w);
		if (n == 0)
			break;
		struct timeval tv, *tvp = ares_timeout(ch, NULL, &tv);
		select(n, &r, &w, NULL, tvp);
		ares_process(ch, &r, &w);
	}
	if (status != ARES_SUCCESS) {
		printf("resolve: %s\n", ares_strerror(status));
		return 1;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2])), .sin_addr = found};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		printf("connect: %s\n", strerror(errno));
		return 1;
	}
	printf("connected\n");
	return 0;
}

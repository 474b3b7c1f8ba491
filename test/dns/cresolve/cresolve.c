/* cresolve HOST PORT: resolves through the C library (getaddrinfo), then
 * connects to the first address; prints "connected" or the error. Built
 * static with musl-gcc to test musl's resolver (sendto on an unconnected
 * socket). */
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <errno.h>

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: cresolve HOST PORT\n");
		return 2;
	}
	struct addrinfo hints, *res;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	int rc = getaddrinfo(argv[1], argv[2], &hints, &res);
	if (rc != 0) {
		printf("resolve: %s\n", gai_strerror(rc));
		return 1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM, 0);
	if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
		printf("connect: %s\n", strerror(errno));
		return 1;
	}
	printf("connected\n");
	close(fd);
	return 0;
}

/* fault.c: the C target of test/faults. It connects to 127.0.0.1:PORT (or
 * [::1]) N times in one chosen mode and prints, per attempt, what the
 * program saw: connect's return and errno, for a nonblocking socket the poll
 * revents and SO_ERROR, the elapsed time and getpeername's result. The tests
 * run it natively and under connvisor (or strace) and compare the lines.
 *
 * usage: fault [-m block|nonblock] [-p PORT] [-n N] [-P OTHERPORT]
 *              [-e EARLY_MS] [-w WAIT_MS] [-t SNDTIMEO_MS] [-a ALARM_MS]
 *              [-f FORKS] [-b] [-q] [-6]
 *   -P  also connect (blocking) to OTHERPORT after each attempt, as
 *       "other" lines: a second destination in between.
 *   -e  nonblocking: a first poll of EARLY_MS that should see nothing yet
 *   -w  nonblocking: then poll up to WAIT_MS for the outcome (default 2000)
 *   -t  SO_SNDTIMEO on the socket
 *   -a  SIGALRM (handler without SA_RESTART) ALARM_MS after the connect starts
 *   -f  fork FORKS children, each doing the N attempts; lines carry c=K
 *   -b  round elapsed times to 50 ms buckets (ms= becomes a bucket floor)
 *   -q  quiet: no per-attempt lines, only "total n=N us=MICROSECONDS"
 *
 * Line: "c=K i=I ret=R errno=E early=REV revents=REV so_error=E cms=MS ms=MS peer=P"
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *mode = "block";
static int port, other, n = 1, early = -1, waitms = 2000, sndtimeo, alarmms, forks, bucket, quiet, v6;

static const char *ename(int e) {
	if (e == 0)
		return "0";
	const char *s = strerrorname_np(e);
	static char buf[32];
	if (!s) {
		snprintf(buf, sizeof buf, "E%d", e);
		return buf;
	}
	return s;
}

static double now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long shown(double ms) {
	return bucket ? (long)(ms / 50) * 50 : (long)ms;
}

static void revname(char *buf, size_t len, int rc, short rev) {
	if (rc == 0) {
		snprintf(buf, len, "timeout");
		return;
	}
	if (rc < 0) {
		snprintf(buf, len, "poll-%s", ename(errno));
		return;
	}
	buf[0] = 0;
	static const struct { short bit; const char *name; } bits[] = {
		{POLLIN, "POLLIN"}, {POLLOUT, "POLLOUT"}, {POLLERR, "POLLERR"},
		{POLLHUP, "POLLHUP"}, {POLLRDHUP, "POLLRDHUP"}, {POLLNVAL, "POLLNVAL"},
		{POLLPRI, "POLLPRI"},
	};
	for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
		if (rev & bits[i].bit) {
			if (buf[0])
				strncat(buf, "|", len - strlen(buf) - 1);
			strncat(buf, bits[i].name, len - strlen(buf) - 1);
		}
	if (!buf[0])
		snprintf(buf, len, "none");
}

static void onalarm(int sig) { (void)sig; }

static socklen_t dest(struct sockaddr_storage *ss, int p) {
	memset(ss, 0, sizeof *ss);
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(p);
		a->sin6_addr = in6addr_loopback;
		return sizeof *a;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	a->sin_family = AF_INET;
	a->sin_port = htons(p);
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sizeof *a;
}

static void peer(int fd, char *buf, size_t len) {
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(buf, len, "%s", ename(errno));
		return;
	}
	char host[INET6_ADDRSTRLEN] = "?";
	int p = 0;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
		p = ntohs(a->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
		p = ntohs(a->sin6_port);
	}
	snprintf(buf, len, "%s:%d", host, p);
}

static void attempt(int child, int i) {
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | (strcmp(mode, "nonblock") == 0 ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0) {
		printf("c=%d i=%d socket=%s\n", child, i, ename(errno));
		return;
	}
	if (sndtimeo > 0) {
		struct timeval tv = {sndtimeo / 1000, (sndtimeo % 1000) * 1000};
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
	struct sockaddr_storage ss;
	socklen_t sl = dest(&ss, port);
	if (alarmms > 0) {
		struct itimerval it = {{0, 0}, {alarmms / 1000, (alarmms % 1000) * 1000}};
		setitimer(ITIMER_REAL, &it, NULL);
	}
	double t0 = now_ms();
	int ret = connect(fd, (struct sockaddr *)&ss, sl);
	int cerr = ret < 0 ? errno : 0;
	double t1 = now_ms();
	if (alarmms > 0) {
		struct itimerval off = {{0, 0}, {0, 0}};
		setitimer(ITIMER_REAL, &off, NULL);
	}
	char ev1[96] = "-", ev2[96] = "-", pe[80];
	const char *soe = "-";
	if (strcmp(mode, "nonblock") == 0 && cerr == EINPROGRESS) {
		struct pollfd pfd = {fd, POLLOUT, 0};
		if (early >= 0) {
			int rc = poll(&pfd, 1, early);
			revname(ev1, sizeof ev1, rc, pfd.revents);
		}
		pfd.revents = 0;
		int rc = poll(&pfd, 1, waitms);
		revname(ev2, sizeof ev2, rc, pfd.revents);
		int soerr = -1;
		socklen_t l = sizeof soerr;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &l) == 0)
			soe = ename(soerr);
		else
			soe = "getsockopt-failed";
	}
	double t2 = now_ms();
	peer(fd, pe, sizeof pe);
	if (!quiet)
		printf("c=%d i=%d ret=%d errno=%s early=%s revents=%s so_error=%s cms=%ld ms=%ld peer=%s\n",
		       child, i, ret, ename(cerr), ev1, ev2, soe, shown(t1 - t0), shown(t2 - t0), pe);
	close(fd);
	if (other > 0) {
		int ofd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
		sl = dest(&ss, other);
		int oret = connect(ofd, (struct sockaddr *)&ss, sl);
		if (!quiet)
			printf("c=%d other=%d ret=%d errno=%s\n", child, i, oret, ename(oret < 0 ? errno : 0));
		close(ofd);
	}
	fflush(stdout);
}

static void run(int child) {
	double t0 = now_ms();
	for (int i = 1; i <= n; i++)
		attempt(child, i);
	if (quiet)
		printf("total n=%d us=%.0f\n", n, (now_ms() - t0) * 1e3);
	fflush(stdout);
}

int main(int argc, char **argv) {
	int c;
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt(argc, argv, "m:p:n:P:e:w:t:a:f:bq6")) != -1) {
		switch (c) {
		case 'm': mode = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'n': n = atoi(optarg); break;
		case 'P': other = atoi(optarg); break;
		case 'e': early = atoi(optarg); break;
		case 'w': waitms = atoi(optarg); break;
		case 't': sndtimeo = atoi(optarg); break;
		case 'a': alarmms = atoi(optarg); break;
		case 'f': forks = atoi(optarg); break;
		case 'b': bucket = 1; break;
		case 'q': quiet = 1; break;
		case '6': v6 = 1; break;
		default:
			fprintf(stderr, "usage: see the comment at the top of fault.c\n");
			return 2;
		}
	}
	if (strcmp(mode, "block") != 0 && strcmp(mode, "nonblock") != 0) {
		fprintf(stderr, "fault: unknown mode %s\n", mode);
		return 2;
	}
	if (alarmms > 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = onalarm; /* no SA_RESTART: a held connect must return EINTR */
		sigaction(SIGALRM, &sa, NULL);
	}
	if (forks <= 0) {
		run(0);
		return 0;
	}
	for (int k = 1; k <= forks; k++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			run(k);
			_exit(0);
		}
	}
	int status, bad = 0;
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad = 1;
	return bad;
}

// bench target: does one kind of work N times and times it itself with
// clock_gettime (vDSO, never trapped), so process start-up and the
// supervisor's own start-up are not counted. One result line on stdout:
//
//   RESULT median_ns=X mean_ns=Y n=N errors=E first_errno=NAME [extra]
//
// Modes:
//   udp N PORT        connect one UDP socket to 127.0.0.1:PORT N times
//   tcp N             N whole TCP loopback cycles against a listener of its
//                     own: socket, connect, accept, close, close. The client
//                     closes with SO_LINGER 0 (RST), so no TIME_WAIT piles up
//                     across runs and exhausts loopback ports.
//   unix N PATH       N whole UNIX stream cycles against a listener at PATH
//   sendunix N        N sendmsg calls of 64 B on a connected UNIX datagram
//                     socket (a socketpair; no destination in the message)
//   sendudp N         N sendmsg calls of 64 B on a UDP socket connected to a
//                     loopback socket of its own (no destination either)
//   getppid N         N getppid calls, timed in batches (untrapped)
//   read N            N one-byte reads of /dev/zero, in batches (untrapped)
//   threads T N       T threads, each doing N whole TCP cycles against a
//                     listener of its own; prints cycles per second as
//                     extra "rate=R"
//   blocked B K       scale: time K UDP connects and K TCP cycles (the
//                     "stream"), then start B threads whose blocking
//                     connects hang on a listener that never accepts (its
//                     one-slot queue is full, so loopback drops their SYNs),
//                     wait until B-2 sit in SYN_SENT, time the stream again,
//                     print "READY", and exit when stdin has a line.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
	fprintf(stderr, "target: %s: %s\n", what, strerror(errno));
	exit(2);
}

static int cmp_ll(const void *a, const void *b) {
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

struct stats {
	long long *s;
	int n, errors, first_errno;
};

static void record(struct stats *st, int i, long long d, int rc) {
	st->s[i] = d;
	if (rc < 0) {
		if (!st->errors)
			st->first_errno = errno;
		st->errors++;
	}
}

// summary gives the median and the mean of the samples (each a time per
// operation), and sorts them.
static void summary(struct stats *st, long long *median, double *mean) {
	double sum = 0;
	for (int i = 0; i < st->n; i++)
		sum += st->s[i];
	qsort(st->s, st->n, sizeof st->s[0], cmp_ll);
	*median = st->s[st->n / 2];
	*mean = sum / st->n;
}

static void report(const char *prefix, struct stats *st, const char *extra) {
	long long med;
	double mean;
	summary(st, &med, &mean);
	printf("%s median_ns=%lld mean_ns=%.0f n=%d errors=%d first_errno=%s%s%s\n", prefix, med,
	       mean, st->n, st->errors, st->errors ? strerrorname_np(st->first_errno) : "none",
	       extra ? " " : "", extra ? extra : "");
	fflush(stdout);
}

static struct sockaddr_in loopback(int port) {
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sa;
}

// tcp_listener listens on an ephemeral loopback port and returns its
// address in *sa.
static int tcp_listener(struct sockaddr_in *sa, int backlog) {
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		die("socket");
	*sa = loopback(0);
	socklen_t len = sizeof *sa;
	if (bind(l, (struct sockaddr *)sa, sizeof *sa) < 0 || listen(l, backlog) < 0 ||
	    getsockname(l, (struct sockaddr *)sa, &len) < 0)
		die("listen");
	return l;
}

static void close_rst(int fd) {
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(fd);
}

static void udp_connects(struct stats *st, int port) {
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	struct sockaddr_in sa = loopback(port);
	for (int i = 0; i < st->n; i++) {
		long long t0 = now_ns();
		int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
		record(st, i, now_ns() - t0, rc);
	}
	close(fd);
}

// tcp_cycle does one whole cycle; the connect's result is what it returns.
static int tcp_cycle(int l, struct sockaddr_in *sa) {
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0)
		die("socket");
	int rc = connect(c, (struct sockaddr *)sa, sizeof *sa);
	int e = errno;
	if (rc == 0) {
		int a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (a < 0)
			die("accept");
		close_rst(c);
		close(a);
	} else {
		close(c);
	}
	errno = e;
	return rc;
}

static void tcp_cycles(struct stats *st, int l, struct sockaddr_in *sa) {
	for (int i = 0; i < st->n; i++) {
		long long t0 = now_ns();
		int rc = tcp_cycle(l, sa);
		record(st, i, now_ns() - t0, rc);
	}
}

static void unix_cycles(struct stats *st, const char *path) {
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	unlink(path);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 128) < 0)
		die("unix listen");
	for (int i = 0; i < st->n; i++) {
		long long t0 = now_ns();
		int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int rc = connect(c, (struct sockaddr *)&sa, sizeof sa);
		int e = errno;
		if (rc == 0) {
			int a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
			if (a < 0)
				die("accept");
			close(a);
		}
		close(c);
		errno = e;
		record(st, i, now_ns() - t0, rc);
	}
	close(l);
	unlink(path);
}

// sends times sendmsg of 64 B on the connected socket fd, whose peer is
// drained after each send (untimed), so the buffer never fills.
static void sends(struct stats *st, int fd, int peer) {
	char buf[64] = {0};
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	for (int i = 0; i < st->n; i++) {
		long long t0 = now_ns();
		int rc = sendmsg(fd, &m, 0) == sizeof buf ? 0 : -1;
		record(st, i, now_ns() - t0, rc);
		if (recv(peer, buf, sizeof buf, MSG_DONTWAIT) < 0 && rc == 0)
			die("recv");
	}
}

static void send_unix(struct stats *st) {
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp) < 0)
		die("socketpair");
	sends(st, sp[0], sp[1]);
}

static void send_udp(struct stats *st) {
	int r = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = loopback(0);
	socklen_t len = sizeof sa;
	if (r < 0 || s < 0 || bind(r, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    getsockname(r, (struct sockaddr *)&sa, &len) < 0)
		die("udp receiver");
	if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("udp connect");
	sends(st, s, r);
}

// untrapped times batches of 1000 calls: one clock read per call would
// cost as much as the call.
static void untrapped(struct stats *st, int use_read) {
	enum { batch = 1000 };
	int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	if (zero < 0)
		die("open /dev/zero");
	char c;
	for (int i = 0; i < st->n; i++) {
		long long t0 = now_ns();
		for (int j = 0; j < batch; j++) {
			if (use_read)
				read(zero, &c, 1);
			else
				syscall(SYS_getppid);
		}
		st->s[i] = (now_ns() - t0) / batch;
	}
	close(zero);
}

struct storm {
	int n, errors;
};

// storm_worker does whole TCP cycles against a listener of its own: a
// shared one would need an accepting thread, which loses the CPU to the
// connecting ones, lets the queue overflow and turns dropped SYNs into
// one-second retransmits.
static void *storm_worker(void *p) {
	struct storm *s = p;
	struct sockaddr_in sa;
	int l = tcp_listener(&sa, 16);
	for (int i = 0; i < s->n; i++)
		if (tcp_cycle(l, &sa) < 0)
			__atomic_add_fetch(&s->errors, 1, __ATOMIC_RELAXED);
	close(l);
	return NULL;
}

static void threads(int t, int n) {
	struct storm s = {.n = n};
	pthread_t w[t];
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 << 10);
	long long t0 = now_ns();
	for (int i = 0; i < t; i++)
		if (pthread_create(&w[i], &attr, storm_worker, &s))
			die("pthread_create");
	for (int i = 0; i < t; i++)
		pthread_join(w[i], NULL);
	long long d = now_ns() - t0;
	printf("RESULT median_ns=%lld mean_ns=%lld n=%d errors=%d first_errno=none rate=%.0f\n",
	       d / ((long long)t * n), d / ((long long)t * n), t * n, s.errors,
	       (double)t * n / (d / 1e9));
	fflush(stdout);
	_exit(0);
}

static struct sockaddr_in blackhole;

static void *blocked_worker(void *p) {
	(void)p;
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	// Bound the wait, natively and for a supervisor that connects the same
	// socket: SO_SNDTIMEO is connect's timeout.
	struct timeval tv = {.tv_sec = 30};
	setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	connect(c, (struct sockaddr *)&blackhole, sizeof blackhole);
	pause(); // keep the socket (connected or not) until exit
	return NULL;
}

// syn_sent counts sockets in SYN_SENT to port in /proc/net/tcp.
static int syn_sent(int port) {
	FILE *f = fopen("/proc/net/tcp", "r");
	if (!f)
		return -1;
	char line[512];
	int n = 0;
	unsigned rport, state;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, " %*d: %*x:%*x %*x:%x %x", &rport, &state) == 2 && rport == (unsigned)port &&
		    state == 2)
			n++;
	fclose(f);
	return n;
}

static void blocked(int b, int k) {
	struct sockaddr_in sa;
	int l = tcp_listener(&sa, 128);
	long long samples[k];
	struct stats st = {.s = samples, .n = k};

	udp_connects(&st, 9);
	report("BEFORE_UDP", &st, NULL);
	memset(&st, 0, sizeof st), st.s = samples, st.n = k;
	tcp_cycles(&st, l, &sa);
	report("BEFORE_TCP", &st, NULL);

	// backlog 0 still queues one connection; the rest hang in SYN_SENT.
	tcp_listener(&blackhole, 0);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 32 << 10);
	for (int i = 0; i < b; i++) {
		pthread_t t;
		if (pthread_create(&t, &attr, blocked_worker, NULL))
			die("pthread_create");
	}
	int port = ntohs(blackhole.sin_port), got = 0;
	long long deadline = now_ns() + 20000000000LL;
	while (now_ns() < deadline && (got = syn_sent(port)) < b - 2)
		usleep(20000);
	printf("BLOCKED n=%d\n", got);
	fflush(stdout);

	memset(&st, 0, sizeof st), st.s = samples, st.n = k;
	udp_connects(&st, 9);
	report("DURING_UDP", &st, NULL);
	memset(&st, 0, sizeof st), st.s = samples, st.n = k;
	tcp_cycles(&st, l, &sa);
	report("DURING_TCP", &st, NULL);
	printf("READY\n");
	fflush(stdout);
	char line[16];
	if (!fgets(line, sizeof line, stdin)) {
	}
	_exit(0); // the blocked threads go with the process
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: target MODE N [ARG]\n");
		return 2;
	}
	const char *mode = argv[1];
	int n = atoi(argv[2]);
	if (!strcmp(mode, "threads"))
		threads(n, argc > 3 ? atoi(argv[3]) : 100);
	if (!strcmp(mode, "blocked"))
		blocked(n, argc > 3 ? atoi(argv[3]) : 200);

	struct stats st = {.n = n};
	st.s = calloc(n, sizeof st.s[0]);
	if (!st.s)
		die("calloc");
	if (!strcmp(mode, "udp")) {
		udp_connects(&st, argc > 3 ? atoi(argv[3]) : 9);
	} else if (!strcmp(mode, "tcp")) {
		struct sockaddr_in sa;
		int l = tcp_listener(&sa, 128);
		tcp_cycles(&st, l, &sa);
	} else if (!strcmp(mode, "unix")) {
		unix_cycles(&st, argc > 3 ? argv[3] : "/tmp/cvbench.sock");
	} else if (!strcmp(mode, "sendunix")) {
		send_unix(&st);
	} else if (!strcmp(mode, "sendudp")) {
		send_udp(&st);
	} else if (!strcmp(mode, "getppid") || !strcmp(mode, "read")) {
		st.n = n / 1000 > 0 ? n / 1000 : 1;
		untrapped(&st, !strcmp(mode, "read"));
	} else {
		fprintf(stderr, "target: unknown mode %s\n", mode);
		return 2;
	}
	report("RESULT", &st, NULL);
	return 0;
}

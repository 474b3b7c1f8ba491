//go:build ignore

// (The constraint keeps the go tool from treating this package as cgo: the
// suite compiles cases.c itself, with gcc, natively and -static.)

// cases.c: the connect(2) conformance cases for connvisor's differential suite.
//
// Every case performs one connect(2) behaviour and prints what the program
// observed, as a deterministic line (return values, errno names, poll events,
// address families and whether an address is the expected one; never raw
// ephemeral ports or pids):
//
//   CASE <name>: <observations> | ok
//   CASE <name>: <observations> | MISMATCH expected <X> got <Y>
//   CASE <name>: SKIP <reason>
//   CASE <name>: <partial observations> TIMEOUT
//
// Each case carries the observations that connect(2) and the kernel source
// say it must produce, so a native run checks this program and a run under
// `connvisor run` checks connvisor; the Go test compares the two runs line by
// line.
//
//   ./cases            run every case
//   ./cases NAME...    run the named cases
//   ./cases -l         list the case names
//
// Build: gcc -O2 -Wall -pthread -o cases cases.c   (also with -static)
//
// Each case runs in its own forked process (own process group, fds, signal
// handlers, cwd, namespaces), so a case may unshare, chdir, chroot or setuid
// freely; the runner kills it after 10 s and prints TIMEOUT, kills whatever
// it left behind and removes its temporary directory.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CASE_TIMEOUT_MS 10000
#define OBS_MAX 4000
#define NOBODY 65534

// ---------------------------------------------------------------------------
// Shared state between the runner and a case (a MAP_SHARED page survives the
// case being killed, so a TIMEOUT line still shows what the case saw).

struct shared {
	char obs[OBS_MAX];
	char tmpdir[256];
};
static struct shared *S;

static void ob(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ob(const char *fmt, ...)
{
	size_t n = strlen(S->obs);
	if (n >= OBS_MAX - 2)
		return;
	if (n)
		S->obs[n++] = ' ', S->obs[n] = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(S->obs + n, OBS_MAX - n, fmt, ap);
	va_end(ap);
}

// skip ends the case with "SKIP reason"; the reason must not depend on the
// run, so native and wrapped runs agree.
static void skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	strcpy(S->obs, "SKIP ");
	vsnprintf(S->obs + 5, OBS_MAX - 5, fmt, ap);
	va_end(ap);
	_exit(0);
}

// die ends the case on a failed setup step; the observation names it, so the
// case mismatches its expectation.
static void die(const char *what) __attribute__((noreturn));
static void die(const char *what)
{
	ob("SETUP_FAILED(%s:%s)", what, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
	_exit(1);
}

static char *buf(void)
{
	static __thread char b[16][192];
	static __thread int i;
	return b[i++ % 16];
}

static const char *en(int e)
{
	if (e == 0)
		return "0";
	const char *s = strerrorname_np(e);
	if (s)
		return s;
	char *b = buf();
	snprintf(b, 192, "E%d", e);
	return b;
}

// R renders a syscall result: "0", the errno name, or the positive value.
static const char *R(long r)
{
	if (r < 0)
		return en(errno);
	if (r == 0)
		return "0";
	char *b = buf();
	snprintf(b, 192, "%ld", r);
	return b;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void msleep(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

// elapsed classifies a duration against a window; raw times are not
// deterministic, "ok" is.
static const char *elapsed(long ms, long lo, long hi)
{
	return ms < lo ? "short" : ms > hi ? "long" : "ok";
}

static const char *evnames(int ev)
{
	char *b = buf();
	b[0] = 0;
	static const struct { int bit; const char *name; } names[] = {
		{POLLIN, "IN"}, {POLLPRI, "PRI"}, {POLLOUT, "OUT"}, {POLLERR, "ERR"},
		{POLLHUP, "HUP"}, {POLLNVAL, "NVAL"}, {POLLRDHUP, "RDHUP"},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (ev & names[i].bit) {
			if (b[0])
				strcat(b, "|");
			strcat(b, names[i].name);
		}
	return b[0] ? b : "none";
}

// ---------------------------------------------------------------------------
// Addresses.

typedef struct {
	struct sockaddr_storage ss;
	socklen_t len;
} addr_t;

static addr_t A4(const char *ip, int port)
{
	addr_t a;
	memset(&a, 0, sizeof a);
	struct sockaddr_in *s = (void *)&a.ss;
	s->sin_family = AF_INET;
	s->sin_port = htons(port);
	inet_pton(AF_INET, ip, &s->sin_addr);
	a.len = sizeof *s;
	return a;
}

static addr_t A6(const char *ip, int port)
{
	addr_t a;
	memset(&a, 0, sizeof a);
	struct sockaddr_in6 *s = (void *)&a.ss;
	s->sin6_family = AF_INET6;
	s->sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &s->sin6_addr);
	a.len = sizeof *s;
	return a;
}

static addr_t AU(const char *path)
{
	addr_t a;
	memset(&a, 0, sizeof a);
	struct sockaddr_un *s = (void *)&a.ss;
	s->sun_family = AF_UNIX;
	memcpy(s->sun_path, path, strnlen(path, sizeof s->sun_path));
	a.len = offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
	if (a.len > sizeof *s)
		a.len = sizeof *s;
	return a;
}

// AABS is an abstract name: a NUL and then the name, its length given only by
// the address length.
static addr_t AABS(const char *tag)
{
	addr_t a;
	memset(&a, 0, sizeof a);
	struct sockaddr_un *s = (void *)&a.ss;
	s->sun_family = AF_UNIX;
	int n = snprintf(s->sun_path + 1, sizeof s->sun_path - 1, "cvconf.%d.%s", getpid(), tag);
	a.len = offsetof(struct sockaddr_un, sun_path) + 1 + n;
	return a;
}

static addr_t AUNNAMED(void)
{
	addr_t a;
	memset(&a, 0, sizeof a);
	a.ss.ss_family = AF_UNIX;
	a.len = sizeof(sa_family_t);
	return a;
}

static int port_of(const addr_t *a)
{
	if (a->ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&a->ss)->sin_port);
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&a->ss)->sin6_port);
	return -1;
}

// sadesc describes an address deterministically: family, IP, and for the
// port or the UNIX name only whether it is the expected one.
static const char *sadesc(const struct sockaddr_storage *ss, socklen_t len, const addr_t *exp)
{
	char *b = buf();
	char ip[INET6_ADDRSTRLEN];
	int port;
	switch (ss->ss_family) {
	case AF_INET: {
		const struct sockaddr_in *s = (const void *)ss;
		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
		port = ntohs(s->sin_port);
		snprintf(b, 192, "AF_INET:%s:%s", ip,
			 port == 0 ? "0" : exp && port == port_of(exp) ? "same" : "eph");
		return b;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *s = (const void *)ss;
		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
		port = ntohs(s->sin6_port);
		snprintf(b, 192, "AF_INET6:%s:%s", ip,
			 port == 0 ? "0" : exp && port == port_of(exp) ? "same" : "eph");
		return b;
	}
	case AF_UNIX: {
		const struct sockaddr_un *s = (const void *)ss;
		const struct sockaddr_un *e = exp ? (const void *)&exp->ss : NULL;
		size_t off = offsetof(struct sockaddr_un, sun_path);
		if (len <= off)
			return "AF_UNIX:unnamed";
		if (s->sun_path[0] == 0) {
			if (exp && exp->len == len && memcmp(s, e, len) == 0)
				return "AF_UNIX:abstract:same";
			snprintf(b, 192, "AF_UNIX:abstract:len=%d", (int)len);
			return b;
		}
		size_t n = strnlen(s->sun_path, len - off);
		if (exp && exp->len > off && strnlen(e->sun_path, exp->len - off) == n &&
		    memcmp(s->sun_path, e->sun_path, n) == 0)
			return "AF_UNIX:path:same";
		return "AF_UNIX:path:other";
	}
	case AF_NETLINK:
		return "AF_NETLINK";
	default:
		snprintf(b, 192, "family=%d", ss->ss_family);
		return b;
	}
}

// ob_name records getpeername (peer=1) or getsockname (peer=0).
static void ob_name(const char *label, int fd, int peer, const addr_t *exp)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	memset(&ss, 0, sizeof ss);
	int r = peer ? getpeername(fd, (void *)&ss, &len) : getsockname(fd, (void *)&ss, &len);
	if (r < 0)
		ob("%s=%s", label, en(errno));
	else
		ob("%s=%s", label, sadesc(&ss, len, exp));
}

static const char *C(int fd, const addr_t *a)
{
	return R(connect(fd, (const void *)&a->ss, a->len));
}

static const char *so_error(int fd)
{
	int e = -1;
	socklen_t l = sizeof e;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
		return en(errno);
	return en(e);
}

static int sock(int fam, int type)
{
	int fd = socket(fam, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	return fd;
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void set_int(int fd, int level, int opt, int v)
{
	if (setsockopt(fd, level, opt, &v, sizeof v) < 0)
		die("setsockopt");
}

static void set_sndtimeo(int fd, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
		die("SO_SNDTIMEO");
}

// lsock binds a socket to *a (port 0 picks one) and listens when the type is
// connection-oriented; *a becomes the bound address.
static int lsock(int fam, int type, addr_t *a, int backlog)
{
	int fd = sock(fam, type);
	if (fam != AF_UNIX)
		set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	if (bind(fd, (void *)&a->ss, a->len) < 0)
		die("bind");
	if ((type == SOCK_STREAM || type == SOCK_SEQPACKET) && listen(fd, backlog) < 0)
		die("listen");
	if (fam != AF_UNIX || a->len == sizeof(sa_family_t)) {
		a->len = sizeof a->ss;
		getsockname(fd, (void *)&a->ss, &a->len);
	}
	return fd;
}

static int tcp_listener(int fam, addr_t *a)
{
	*a = fam == AF_INET ? A4("127.0.0.1", 0) : A6("::1", 0);
	return lsock(fam, SOCK_STREAM, a, 64);
}

// closed_port gives an address where nothing listens: a bound socket that
// never listens keeps the port from being reused, and a SYN to it is answered
// with RST (ECONNREFUSED).
static addr_t closed_port(int fam, int type)
{
	addr_t a = fam == AF_INET ? A4("127.0.0.1", 0) : A6("::1", 0);
	int fd = sock(fam, type);
	if (bind(fd, (void *)&a.ss, a.len) < 0)
		die("bind");
	a.len = sizeof a.ss;
	getsockname(fd, (void *)&a.ss, &a.len);
	if (type == SOCK_DGRAM)
		close(fd); // UDP: an unbound port answers with ICMP port unreachable
	return a;
}

static int wait_fd(int fd, short ev, int ms)
{
	struct pollfd p = {fd, ev, 0};
	int r = poll(&p, 1, ms);
	return r > 0 ? p.revents : r;
}

static int acc(int lfd, int ms)
{
	if (wait_fd(lfd, POLLIN, ms) <= 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

static const char *echo_pair(int c, int s)
{
	char b[16];
	if (write(c, "ping", 4) != 4)
		return "client_write_failed";
	if (wait_fd(s, POLLIN, 2000) <= 0 || read(s, b, sizeof b) != 4 || memcmp(b, "ping", 4))
		return "server_read_failed";
	if (write(s, "pong", 4) != 4)
		return "server_write_failed";
	if (wait_fd(c, POLLIN, 2000) <= 0 || read(c, b, sizeof b) != 4 || memcmp(b, "pong", 4))
		return "client_read_failed";
	return "ok";
}

// echo_stream accepts the client's connection and sends data both ways.
static const char *echo_stream(int c, int l)
{
	int s = acc(l, 2000);
	if (s < 0)
		return "accept_failed";
	const char *r = echo_pair(c, s);
	close(s);
	return r;
}

// echo_dgram sends from the connected client to the server and back.
static const char *echo_dgram(int c, int srv)
{
	char b[16];
	struct sockaddr_storage from;
	socklen_t fl = sizeof from;
	if (send(c, "ping", 4, 0) != 4)
		return "client_send_failed";
	if (wait_fd(srv, POLLIN, 2000) <= 0 ||
	    recvfrom(srv, b, sizeof b, 0, (void *)&from, &fl) != 4 || memcmp(b, "ping", 4))
		return "server_recv_failed";
	if (sendto(srv, "pong", 4, 0, (void *)&from, fl) != 4)
		return "server_send_failed";
	if (wait_fd(c, POLLIN, 2000) <= 0 || recv(c, b, sizeof b, 0) != 4 || memcmp(b, "pong", 4))
		return "client_recv_failed";
	return "ok";
}

// tcp_full_listener returns a listener whose accept queue is full: listen(fd,
// 0) admits one connection (sk_acceptq_is_full is ack_backlog > max), and
// tcp_conn_request drops every later SYN while it is full, so a connect to it
// stays in SYN_SENT (retransmitting) until someone accepts.
static int tcp_full_listener(int fam, addr_t *a)
{
	*a = fam == AF_INET ? A4("127.0.0.1", 0) : A6("::1", 0);
	int l = lsock(fam, SOCK_STREAM, a, 0);
	int f = sock(fam, SOCK_STREAM);
	if (connect(f, (void *)&a->ss, a->len) < 0)
		die("filler connect");
	if (wait_fd(l, POLLIN, 2000) <= 0) // the filler is in the accept queue
		die("filler queued");
	return l;
}

// unix_full_listener: listen(fd, 0) on a UNIX socket admits one pending
// connection (unix_recvq_full is qlen > max); the next one waits (blocking)
// or fails with EAGAIN (nonblocking).
static int unix_full_listener(int type, addr_t *a)
{
	int l = lsock(AF_UNIX, type, a, 0);
	int f = sock(AF_UNIX, type | SOCK_NONBLOCK);
	if (connect(f, (void *)&a->ss, a->len) < 0)
		die("filler connect");
	return l;
}

// ---------------------------------------------------------------------------
// Temporary directories, users, namespaces, signals, threads.

static const char *tdir(void)
{
	if (!S->tmpdir[0]) {
		strcpy(S->tmpdir, "/tmp/cvconf.XXXXXX");
		if (!mkdtemp(S->tmpdir))
			die("mkdtemp");
	}
	return S->tmpdir;
}

static const char *tpath(const char *name)
{
	char *b = buf();
	snprintf(b, 192, "%s/%s", tdir(), name);
	return b;
}

static void need_root(void)
{
	if (geteuid() != 0)
		skip("needs root");
}

static void need_ipv6(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	addr_t a = A6("::1", 0);
	if (fd < 0 || bind(fd, (void *)&a.ss, a.len) < 0)
		skip("no IPv6 loopback");
	close(fd);
}

// become_nobody drops to uid/gid 65534 without exec (the process becomes
// non-dumpable, as every setuid daemon does).
static void become_nobody(void)
{
	if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
	    setresuid(NOBODY, NOBODY, NOBODY) < 0)
		die("setuid nobody");
}

// run_child runs fn in a forked child and returns its wait status.
static int run_child(void (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return st;
}

static void lo_up(void)
{
	int s = sock(AF_INET, SOCK_DGRAM);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		die("SIOCGIFFLAGS");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		die("SIOCSIFFLAGS");
	close(s);
}

// new_netns moves the case into a fresh network namespace: nothing in it
// reaches the host's network, so unroutable addresses stay unroutable.
static void new_netns(int up)
{
	need_root();
	if (unshare(CLONE_NEWNET) < 0)
		skip("unshare(CLONE_NEWNET) not permitted");
	if (up)
		lo_up();
}

// route_add adds an IPv4 route through lo (SIOCADDRT, so no `ip` binary is
// needed). flags RTF_REJECT makes it an unreachable route.
static void route_add(const char *net, const char *mask, int flags)
{
	struct rtentry rt;
	memset(&rt, 0, sizeof rt);
	struct sockaddr_in *d = (void *)&rt.rt_dst, *m = (void *)&rt.rt_genmask;
	d->sin_family = m->sin_family = AF_INET;
	inet_pton(AF_INET, net, &d->sin_addr);
	inet_pton(AF_INET, mask, &m->sin_addr);
	((struct sockaddr_in *)&rt.rt_gateway)->sin_family = AF_INET;
	rt.rt_flags = RTF_UP | flags;
	rt.rt_dev = "lo";
	int s = sock(AF_INET, SOCK_DGRAM);
	if (ioctl(s, SIOCADDRT, &rt) < 0)
		die("SIOCADDRT");
	close(s);
}

static volatile sig_atomic_t g_sigs;
static void on_sig(int s)
{
	(void)s;
	g_sigs++;
}

static void handle(int sig, int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sig;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

// itimer delivers SIGALRM after first_ms, then every every_ms (0: once).
static void itimer(int first_ms, int every_ms)
{
	struct itimerval it = {
		{every_ms / 1000, (every_ms % 1000) * 1000},
		{first_ms / 1000, (first_ms % 1000) * 1000},
	};
	setitimer(ITIMER_REAL, &it, NULL);
}

static const char *sigcount(void)
{
	int n = g_sigs;
	return n == 0 ? "0" : n == 1 ? "1" : n < 10 ? "few" : "many";
}

struct later {
	int ms;
	void (*fn)(long);
	long arg;
};

static void *later_main(void *p)
{
	struct later *l = p;
	msleep(l->ms);
	l->fn(l->arg);
	free(l);
	return NULL;
}

// later runs fn(arg) on a helper thread after ms; the thread blocks every
// signal so that process-directed signals reach the main thread.
static void later(int ms, void (*fn)(long), long arg)
{
	struct later *l = malloc(sizeof *l);
	l->ms = ms, l->fn = fn, l->arg = arg;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t t;
	if (pthread_create(&t, NULL, later_main, l) != 0)
		die("pthread_create");
	pthread_detach(t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void accept_one(long lfd)
{
	if (accept(lfd, NULL, NULL) < 0) // keep it open: the queue slot is what matters
		perror("accept");
}

// ---------------------------------------------------------------------------
// The case table.

struct tcase {
	const char *name;
	void (*fn)(void);
	const char *expect;
};
static struct tcase cases[512];
static int ncases;

#define CASE(nm, exp)                                                        \
	static void c_##nm(void);                                            \
	__attribute__((constructor)) static void r_##nm(void)                \
	{                                                                    \
		cases[ncases++] = (struct tcase){#nm, c_##nm, exp};          \
	}                                                                    \
	static void c_##nm(void)

// ===========================================================================
// TCP over IPv4

CASE(tcp4_blocking_connect_succeeds,
     "connect=0 peer=AF_INET:127.0.0.1:same local=AF_INET:127.0.0.1:eph so_error=0 echo=ok")
{
	addr_t a;
	int l = tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
	ob_name("local", c, 0, NULL);
	ob("so_error=%s", so_error(c));
	ob("echo=%s", echo_stream(c, l));
}

CASE(tcp4_blocking_refused_econnrefused,
     "connect=ECONNREFUSED so_error=0 peer=ENOTCONN")
{
	addr_t a = closed_port(AF_INET, SOCK_STREAM);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	ob("so_error=%s", so_error(c));
	ob_name("peer", c, 1, NULL);
}

CASE(tcp4_nonblock_einprogress_poll_succeeds,
     "connect=EINPROGRESS poll=OUT so_error=0 peer=AF_INET:127.0.0.1:same echo=ok")
{
	addr_t a;
	int l = tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
	ob("connect=%s", C(c, &a));
	ob("poll=%s", evnames(wait_fd(c, POLLOUT, 2000)));
	ob("so_error=%s", so_error(c));
	ob_name("peer", c, 1, &a);
	ob("echo=%s", echo_stream(c, l));
}

CASE(tcp4_nonblock_einprogress_epoll_succeeds,
     "connect=EINPROGRESS epoll_wait=1 events=OUT so_error=0")
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLOUT, .data.fd = c};
	epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
	ob("connect=%s", C(c, &a));
	struct epoll_event out;
	int n = epoll_wait(ep, &out, 1, 2000);
	ob("epoll_wait=%s events=%s", R(n), n == 1 ? evnames(out.events) : "none");
	ob("so_error=%s", so_error(c));
}

CASE(tcp4_nonblock_einprogress_select_succeeds,
     "connect=EINPROGRESS select=1 writable=1 so_error=0")
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
	ob("connect=%s", C(c, &a));
	fd_set w;
	FD_ZERO(&w);
	FD_SET(c, &w);
	struct timeval tv = {2, 0};
	int n = select(c + 1, NULL, &w, NULL, &tv);
	ob("select=%s writable=%d", R(n), FD_ISSET(c, &w) ? 1 : 0);
	ob("so_error=%s", so_error(c));
}

CASE(tcp4_nonblock_refused_poll_so_error,
     "connect=EINPROGRESS poll=OUT|ERR|HUP so_error=ECONNREFUSED so_error_again=0 peer=ENOTCONN")
{
	addr_t a = closed_port(AF_INET, SOCK_STREAM);
	int c = sock(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
	ob("connect=%s", C(c, &a));
	ob("poll=%s", evnames(wait_fd(c, POLLOUT, 2000)));
	ob("so_error=%s", so_error(c));
	ob("so_error_again=%s", so_error(c));
	ob_name("peer", c, 1, NULL);
}

CASE(tcp4_nonblock_refused_epoll_so_error,
     "connect=EINPROGRESS epoll_wait=1 events=OUT|ERR|HUP so_error=ECONNREFUSED")
{
	addr_t a = closed_port(AF_INET, SOCK_STREAM);
	int c = sock(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLOUT, .data.fd = c};
	epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
	ob("connect=%s", C(c, &a));
	struct epoll_event out;
	int n = epoll_wait(ep, &out, 1, 2000);
	ob("epoll_wait=%s events=%s", R(n), n == 1 ? evnames(out.events) : "none");
	ob("so_error=%s", so_error(c));
}

// A second connect after the failure reports it (and clears it); a third one
// starts a new attempt (__inet_stream_connect, SS_CONNECTING + TCP_CLOSE).
CASE(tcp4_nonblock_refused_reported_by_second_connect,
     "connect=EINPROGRESS poll=OUT|ERR|HUP connect2=ECONNREFUSED so_error=0 connect3=EINPROGRESS")
{
	addr_t a = closed_port(AF_INET, SOCK_STREAM);
	int c = sock(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
	ob("connect=%s", C(c, &a));
	ob("poll=%s", evnames(wait_fd(c, POLLOUT, 2000)));
	ob("connect2=%s", C(c, &a));
	ob("so_error=%s", so_error(c));
	ob("connect3=%s", C(c, &a));
}

// The "connect again to learn the result" idiom: 0 once, then EISCONN.
CASE(tcp4_nonblock_connect_again_after_completion,
     "connect=EINPROGRESS poll=OUT connect2=0 connect3=EISCONN")
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
	ob("connect=%s", C(c, &a));
	ob("poll=%s", evnames(wait_fd(c, POLLOUT, 2000)));
	ob("connect2=%s", C(c, &a));
	ob("connect3=%s", C(c, &a));
}

CASE(tcp4_nonblock_second_connect_ealready,
     "connect=EINPROGRESS connect2=EALREADY poll=0 so_error=0")
{
	addr_t a;
	tcp_full_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
	ob("connect=%s", C(c, &a));
	ob("connect2=%s", C(c, &a));
	ob("poll=%s", R(wait_fd(c, POLLOUT, 300)));
	ob("so_error=%s", so_error(c));
}

CASE(tcp4_connected_connect_again_eisconn, "connect=0 connect2=EISCONN")
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	ob("connect2=%s", C(c, &a));
}

CASE(tcp4_connected_connect_other_peer_eisconn,
     "connect=0 connect_other=EISCONN peer=AF_INET:127.0.0.1:same")
{
	addr_t a, b;
	tcp_listener(AF_INET, &a);
	tcp_listener(AF_INET, &b);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	ob("connect_other=%s", C(c, &b));
	ob_name("peer", c, 1, &a);
}

CASE(tcp4_listening_socket_connect_eisconn, "connect=EISCONN")
{
	addr_t a, b = A4("127.0.0.1", 0);
	tcp_listener(AF_INET, &a);
	int l2 = lsock(AF_INET, SOCK_STREAM, &b, 4);
	ob("connect=%s", C(l2, &a));
}

// TCP simultaneous open: a socket connecting to its own address connects to
// itself.
CASE(tcp4_connect_to_self_simultaneous_open,
     "connect=0 peer=AF_INET:127.0.0.1:same self_echo=ok")
{
	addr_t a = A4("127.0.0.1", 0);
	int c = sock(AF_INET, SOCK_STREAM);
	if (bind(c, (void *)&a.ss, a.len) < 0)
		die("bind");
	a.len = sizeof a.ss;
	getsockname(c, (void *)&a.ss, &a.len);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
	char b[8] = {0};
	int ok = write(c, "self", 4) == 4 && wait_fd(c, POLLIN, 2000) > 0 && read(c, b, 8) == 4 &&
		 !memcmp(b, "self", 4);
	ob("self_echo=%s", ok ? "ok" : "failed");
}

// 0.0.0.0 as a destination means this host (ip_route_output: no daddr ->
// loopback).
CASE(tcp4_any_address_means_loopback, "connect=0 peer=AF_INET:127.0.0.1:same")
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	addr_t any = A4("0.0.0.0", port_of(&a));
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &any));
	ob_name("peer", c, 1, &a);
}

CASE(tcp4_loopback_127_0_0_2_reaches_wildcard_listener,
     "connect=0 peer=AF_INET:127.0.0.2:same local=AF_INET:127.0.0.1:eph")
{
	addr_t a = A4("0.0.0.0", 0);
	lsock(AF_INET, SOCK_STREAM, &a, 8);
	addr_t d = A4("127.0.0.2", port_of(&a));
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &d));
	ob_name("peer", c, 1, &d);
	ob_name("local", c, 0, NULL);
}

// Port 0 is not rejected by tcp_v4_connect; the SYN to port 0 is answered
// with RST.
CASE(tcp4_port_zero_econnrefused, "connect=ECONNREFUSED")
{
	addr_t a = A4("127.0.0.1", 0);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(tcp4_any_address_port_zero_econnrefused, "connect=ECONNREFUSED")
{
	addr_t a = A4("0.0.0.0", 0);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(tcp4_bound_socket_keeps_its_port,
     "connect=0 local=AF_INET:127.0.0.1:same peer=AF_INET:127.0.0.1:same")
{
	addr_t a, me = A4("127.0.0.1", 0);
	tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	if (bind(c, (void *)&me.ss, me.len) < 0)
		die("bind");
	me.len = sizeof me.ss;
	getsockname(c, (void *)&me.ss, &me.len);
	ob("connect=%s", C(c, &a));
	ob_name("local", c, 0, &me);
	ob_name("peer", c, 1, &a);
}

// AF_UNSPEC disconnects a TCP socket (tcp_disconnect), which may then
// connect again.
CASE(tcp4_af_unspec_disconnects, "connect=0 unspec=0 peer=ENOTCONN reconnect=0 peer=AF_INET:127.0.0.1:same")
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	addr_t u = A4("0.0.0.0", 0);
	u.ss.ss_family = AF_UNSPEC;
	ob("unspec=%s", C(c, &u));
	ob_name("peer", c, 1, NULL);
	ob("reconnect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
}

CASE(tcp4_af_unspec_unconnected_succeeds, "unspec=0 peer=ENOTCONN")
{
	int c = sock(AF_INET, SOCK_STREAM);
	addr_t u = A4("0.0.0.0", 0);
	u.ss.ss_family = AF_UNSPEC;
	ob("unspec=%s", C(c, &u));
	ob_name("peer", c, 1, NULL);
}

CASE(tcp4_af_unspec_addrlen_1_einval, "unspec=EINVAL")
{
	int c = sock(AF_INET, SOCK_STREAM);
	addr_t u = A4("0.0.0.0", 0);
	u.ss.ss_family = AF_UNSPEC;
	u.len = 1;
	ob("unspec=%s", C(c, &u));
}

CASE(tcp4_inet6_address_eafnosupport, "connect=EAFNOSUPPORT")
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	addr_t a6 = A6("::1", port_of(&a));
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &a6));
}

CASE(tcp4_unix_address_eafnosupport, "connect=EAFNOSUPPORT")
{
	addr_t u = AU("/nonexistent/cvconf");
	u.len = sizeof(struct sockaddr_un);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &u));
}

// TCP refuses broadcast and multicast routes before sending anything
// (tcp_v4_connect: RTCF_BROADCAST|RTCF_MULTICAST -> ENETUNREACH).
CASE(tcp4_loopback_broadcast_enetunreach, "connect=ENETUNREACH")
{
	addr_t a = A4("127.255.255.255", 9);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(tcp4_multicast_enetunreach, "connect=ENETUNREACH")
{
	new_netns(1); // no route may ever lead off the machine
	addr_t a = A4("224.0.0.1", 9);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

// Address length: the generic layer rejects < 2 and > sizeof(struct
// sockaddr_storage) (move_addr_to_kernel), tcp_v4_connect < 16.
static void tcp4_addrlen(long len)
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", R(syscall(SYS_connect, c, &a.ss, len)));
}
CASE(tcp4_addrlen_0_einval, "connect=EINVAL") { tcp4_addrlen(0); }
CASE(tcp4_addrlen_1_einval, "connect=EINVAL") { tcp4_addrlen(1); }
CASE(tcp4_addrlen_15_einval, "connect=EINVAL") { tcp4_addrlen(15); }
CASE(tcp4_addrlen_17_succeeds, "connect=0") { tcp4_addrlen(17); }
CASE(tcp4_addrlen_128_succeeds, "connect=0") { tcp4_addrlen(128); }
CASE(tcp4_addrlen_129_einval, "connect=EINVAL") { tcp4_addrlen(129); }
CASE(tcp4_addrlen_negative_einval, "connect=EINVAL") { tcp4_addrlen(-1); }
CASE(tcp4_addrlen_huge_einval, "connect=EINVAL") { tcp4_addrlen(INT_MAX); }
// The kernel takes addrlen as an int: bits above 32 are ignored.
CASE(tcp4_addrlen_high_bits_ignored, "connect=0") { tcp4_addrlen(0x100000010L); }

// fd is an int too.
CASE(tcp4_fd_high_bits_ignored, "connect=0 peer=AF_INET:127.0.0.1:same")
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", R(syscall(SYS_connect, (long)c | 0x700000000L, &a.ss, (long)a.len)));
	ob_name("peer", c, 1, &a);
}

CASE(tcp4_high_fd_number_succeeds, "connect=0 peer=AF_INET:127.0.0.1:same")
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	if (dup2(c, 1000) < 0)
		die("dup2");
	close(c);
	ob("connect=%s", C(1000, &a));
	ob_name("peer", 1000, 1, &a);
}

// Unreadable addresses: move_addr_to_kernel copies addrlen bytes, and any
// fault is EFAULT, even when the bytes a sockaddr_in needs were readable.
static char *guard_page_boundary(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || mprotect(p + pg, pg, PROT_NONE) < 0)
		die("mmap");
	return p + pg;
}

CASE(tcp4_null_address_efault, "connect=EFAULT")
{
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", R(connect(c, NULL, sizeof(struct sockaddr_in))));
}

CASE(tcp4_null_address_addrlen_0_einval, "connect=EINVAL")
{
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", R(connect(c, NULL, 0)));
}

CASE(tcp4_unmapped_address_efault, "connect=EFAULT")
{
	long pg = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(p, pg);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", R(connect(c, (void *)p, sizeof(struct sockaddr_in))));
}

CASE(tcp4_address_across_unmapped_page_efault, "connect=EFAULT")
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	char *end = guard_page_boundary();
	memcpy(end - 8, &a.ss, 8); // the second half would be in the PROT_NONE page
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", R(connect(c, (void *)(end - 8), sizeof(struct sockaddr_in))));
}

CASE(tcp4_address_ending_at_page_end_succeeds, "connect=0")
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	char *end = guard_page_boundary();
	memcpy(end - 16, &a.ss, 16);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", R(connect(c, (void *)(end - 16), 16)));
}

CASE(tcp4_addrlen_reaching_unmapped_page_efault, "connect=EFAULT")
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	char *end = guard_page_boundary();
	memcpy(end - 16, &a.ss, 16);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", R(connect(c, (void *)(end - 16), 32)));
}

CASE(tcp4_address_in_readonly_page_succeeds, "connect=0")
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	long pg = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memcpy(p, &a.ss, 16);
	mprotect(p, pg, PROT_READ);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", R(connect(c, (void *)p, 16)));
}

// SO_SNDTIMEO bounds a blocking connect: it returns EINPROGRESS when the
// timeout expires (the SYN keeps going), and a second connect waits again and
// says EALREADY.
CASE(tcp4_sndtimeo_expires_einprogress,
     "connect=EINPROGRESS elapsed=ok connect2=EALREADY elapsed=ok so_error=0")
{
	addr_t a;
	tcp_full_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	set_sndtimeo(c, 300);
	long t = now_ms();
	ob("connect=%s", C(c, &a));
	ob("elapsed=%s", elapsed(now_ms() - t, 250, 2000));
	t = now_ms();
	ob("connect2=%s", C(c, &a));
	ob("elapsed=%s", elapsed(now_ms() - t, 250, 2000));
	ob("so_error=%s", so_error(c));
}

// TCP_USER_TIMEOUT applies to SYN retransmissions too (tcp_write_timeout):
// the unanswered connect fails with ETIMEDOUT at the first retransmission
// after the timeout.
CASE(tcp4_syn_unanswered_etimedout, "connect=ETIMEDOUT elapsed=ok")
{
	addr_t a;
	tcp_full_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	set_int(c, IPPROTO_TCP, TCP_USER_TIMEOUT, 500);
	long t = now_ms();
	ob("connect=%s", C(c, &a));
	ob("elapsed=%s", elapsed(now_ms() - t, 400, 5000));
}

CASE(tcp4_nonblock_syn_unanswered_so_error_etimedout,
     "connect=EINPROGRESS poll=OUT|ERR|HUP so_error=ETIMEDOUT")
{
	addr_t a;
	tcp_full_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
	set_int(c, IPPROTO_TCP, TCP_USER_TIMEOUT, 500);
	ob("connect=%s", C(c, &a));
	ob("poll=%s", evnames(wait_fd(c, POLLOUT, 6000)));
	ob("so_error=%s", so_error(c));
}

// A handled signal without SA_RESTART interrupts a blocking connect with
// EINTR; the handshake continues, so the next connect sees EALREADY.
CASE(tcp4_blocking_signal_eintr, "connect=EINTR signals=1 nonblock_connect2=EALREADY")
{
	addr_t a;
	tcp_full_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	handle(SIGALRM, 0);
	itimer(200, 0);
	ob("connect=%s", C(c, &a));
	ob("signals=%s", sigcount());
	set_nonblock(c);
	ob("nonblock_connect2=%s", C(c, &a));
}

// After EINTR the handshake goes on; a second blocking connect waits for it
// and reports its success.
CASE(tcp4_blocking_eintr_then_blocking_connect_completes,
     "connect=EINTR connect2=0 peer=AF_INET:127.0.0.1:same")
{
	addr_t a;
	int l = tcp_full_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	handle(SIGALRM, 0);
	itimer(200, 0);
	ob("connect=%s", C(c, &a));
	later(200, accept_one, l);
	ob("connect2=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
}

// With SA_RESTART the connect restarts (ERESTARTSYS; the restarted
// inet_stream_connect waits on the same handshake) and completes once the
// listener has room.
CASE(tcp4_blocking_signal_sa_restart_completes, "connect=0 signals=1 peer=AF_INET:127.0.0.1:same")
{
	addr_t a;
	int l = tcp_full_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	handle(SIGALRM, SA_RESTART);
	itimer(200, 0);
	later(400, accept_one, l);
	ob("connect=%s", C(c, &a));
	ob("signals=%s", sigcount());
	ob_name("peer", c, 1, &a);
}

// A storm of SA_RESTART signals (as Go's SIGURG preemption produces) restarts
// the connect over and over; the program still just sees it succeed.
CASE(tcp4_blocking_signal_storm_completes, "connect=0 signals=many peer=AF_INET:127.0.0.1:same")
{
	addr_t a;
	int l = tcp_full_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	handle(SIGALRM, SA_RESTART);
	itimer(5, 5);
	later(300, accept_one, l);
	ob("connect=%s", C(c, &a));
	itimer(0, 0);
	ob("signals=%s", sigcount());
	ob_name("peer", c, 1, &a);
}

// With SO_SNDTIMEO set, sock_intr_errno gives EINTR, not ERESTARTSYS: even an
// SA_RESTART handler interrupts the connect.
CASE(tcp4_sndtimeo_signal_sa_restart_eintr, "connect=EINTR signals=1")
{
	addr_t a;
	tcp_full_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	set_sndtimeo(c, 5000);
	handle(SIGALRM, SA_RESTART);
	itimer(200, 0);
	ob("connect=%s", C(c, &a));
	ob("signals=%s", sigcount());
}

static addr_t g_addr;
static void connect_and_record(void *arg)
{
	(void)arg;
	int c = sock(g_addr.ss.ss_family, SOCK_STREAM);
	ob("child_connect=%s", C(c, &g_addr));
}

// SIGSTOP/SIGCONT restart a blocking connect transparently.
CASE(tcp4_blocking_sigstop_sigcont_transparent, "child_connect=0 child_exit=0")
{
	int l = tcp_full_listener(AF_INET, &g_addr);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		connect_and_record(NULL);
		_exit(0);
	}
	msleep(200);
	kill(pid, SIGSTOP);
	msleep(100);
	kill(pid, SIGCONT);
	msleep(100);
	accept_one(l);
	int st;
	waitpid(pid, &st, 0);
	ob("child_exit=%d", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static void *thread_connect(void *arg)
{
	addr_t *a = arg;
	int c = socket(a->ss.ss_family, SOCK_STREAM, 0);
	long r = connect(c, (void *)&a->ss, a->len);
	return (void *)(r < 0 ? (long)errno : 0L);
}

CASE(tcp4_connect_from_non_leader_thread, "thread_connect=0 echo_accept=ok")
{
	addr_t a;
	int l = tcp_listener(AF_INET, &a);
	pthread_t t;
	void *r;
	pthread_create(&t, NULL, thread_connect, &a);
	pthread_join(t, &r);
	ob("thread_connect=%s", en((int)(long)r));
	ob("echo_accept=%s", acc(l, 2000) >= 0 ? "ok" : "failed");
}

struct reused_tid {
	addr_t *a;
	int type;   // SOCK_STREAM: connect; SOCK_DGRAM: sendto
	pid_t want; // 0: any tid
	pid_t tid;
	long r; // the call's errno (0: it worked), -1 when the thread did not get want
};

static void *reused_tid_call(void *arg)
{
	struct reused_tid *rt = arg;
	rt->tid = gettid();
	if (rt->want && rt->tid != rt->want) {
		rt->r = -1;
		return NULL;
	}
	if (rt->type == SOCK_STREAM) {
		rt->r = (long)thread_connect(rt->a);
		return NULL;
	}
	int c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	rt->r = sendto(c, "x", 1, 0, (void *)&rt->a->ss, rt->a->len) == 1 ? 0 : errno;
	close(c);
	return NULL;
}

// reused_tid makes a call from a thread, then the same call from a new
// thread that has the dead one's tid: pid numbers wrap (pid_max is often
// 32768), so a busy program's new threads reuse the tids of its old ones.
// The tid is reused at once by writing ns_last_pid (CAP_SYS_ADMIN); when
// another process takes the number first, it tries again.
static void reused_tid(int type, const char *call)
{
	need_root();
	addr_t a = A4("127.0.0.1", 0);
	int l = type == SOCK_STREAM ? tcp_listener(AF_INET, &a) : lsock(AF_INET, SOCK_DGRAM, &a, 0);
	struct reused_tid first = {.a = &a, .type = type};
	pthread_t t;
	pthread_create(&t, NULL, reused_tid_call, &first);
	pthread_join(t, NULL);
	ob("first_%s=%s", call, en((int)first.r));
	if (type == SOCK_STREAM)
		acc(l, 2000);
	struct reused_tid again = {.a = &a, .type = type, .want = first.tid, .r = -1};
	for (int i = 0; i < 100 && again.r == -1; i++) {
		int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			skip("cannot write ns_last_pid");
		dprintf(fd, "%d", first.tid - 1);
		close(fd);
		pthread_create(&t, NULL, reused_tid_call, &again);
		pthread_join(t, NULL);
	}
	ob("reused_tid=%s", again.r == -1 ? "no" : "yes");
	if (again.r != -1)
		ob("second_%s=%s", call, en((int)again.r));
}

CASE(tcp4_connect_from_thread_with_reused_tid, "first_connect=0 reused_tid=yes second_connect=0")
{
	reused_tid(SOCK_STREAM, "connect");
}

CASE(udp4_sendto_from_thread_with_reused_tid, "first_sendto=0 reused_tid=yes second_sendto=0")
{
	reused_tid(SOCK_DGRAM, "sendto");
}

CASE(tcp4_connect_in_forked_child, "child_connect=0 accepted=ok")
{
	int l = tcp_listener(AF_INET, &g_addr);
	int st = run_child(connect_and_record, NULL);
	(void)st;
	ob("accepted=%s", acc(l, 2000) >= 0 ? "ok" : "failed");
}

// The case program re-executed (cases -x tcp4 PORT) connects: the filter and
// the supervision follow exec.
CASE(tcp4_connect_in_exec_child, "exec_child_exit=0 accepted=ok")
{
	addr_t a;
	int l = tcp_listener(AF_INET, &a);
	char port[16];
	snprintf(port, sizeof port, "%d", port_of(&a));
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		execl("/proc/self/exe", "cases", "-x", "tcp4", port, (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	ob("exec_child_exit=%s", WIFEXITED(st) ? en(WEXITSTATUS(st)) : "signal");
	ob("accepted=%s", acc(l, 2000) >= 0 ? "ok" : "failed");
}

static void *thread_connect_many(void *arg)
{
	addr_t *a = arg;
	long ok = 0;
	for (int i = 0; i < 25; i++) {
		int c = socket(a->ss.ss_family, SOCK_STREAM, 0);
		if (connect(c, (void *)&a->ss, a->len) == 0)
			ok++;
		close(c);
	}
	return (void *)ok;
}

CASE(tcp4_parallel_connects_from_threads, "succeeded=200")
{
	addr_t a = A4("127.0.0.1", 0);
	lsock(AF_INET, SOCK_STREAM, &a, 1024);
	pthread_t t[8];
	long total = 0;
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, thread_connect_many, &a);
	for (int i = 0; i < 8; i++) {
		void *r;
		pthread_join(t[i], &r);
		total += (long)r;
	}
	ob("succeeded=%ld", total);
}

// A connect that hangs in one thread must not hold up another thread's.
CASE(tcp4_pending_connect_does_not_block_other_thread,
     "other_connect=0 other_fast=yes pending_connect=0")
{
	addr_t pend, good;
	int l = tcp_full_listener(AF_INET, &pend);
	tcp_listener(AF_INET, &good);
	pthread_t t;
	void *r;
	pthread_create(&t, NULL, thread_connect, &pend);
	msleep(100);
	int c = sock(AF_INET, SOCK_STREAM);
	long t0 = now_ms();
	ob("other_connect=%s", C(c, &good));
	ob("other_fast=%s", now_ms() - t0 < 500 ? "yes" : "no");
	accept_one(l);
	pthread_join(t, &r);
	ob("pending_connect=%s", en((int)(long)r));
}

// A target that dies in a blocking connect is gone; the next connects work.
CASE(tcp4_killed_during_pending_connect, "child=SIGKILL next_connect=0")
{
	addr_t good;
	tcp_full_listener(AF_INET, &g_addr);
	tcp_listener(AF_INET, &good);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		int c = sock(AF_INET, SOCK_STREAM);
		connect(c, (void *)&g_addr.ss, g_addr.len);
		_exit(0);
	}
	msleep(200);
	kill(pid, SIGKILL);
	int st;
	waitpid(pid, &st, 0);
	ob("child=%s", WIFSIGNALED(st) ? sigabbrev_np(WTERMSIG(st)) ? "SIGKILL" : "?" : "exited");
	int c = sock(AF_INET, SOCK_STREAM);
	ob("next_connect=%s", C(c, &good));
}

CASE(tcp4_shutdown_after_connect, "connect=0 shutdown=0 server_read=0 connect2=EISCONN")
{
	addr_t a;
	int l = tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	int s = acc(l, 2000);
	ob("shutdown=%s", R(shutdown(c, SHUT_WR)));
	char b[4];
	ob("server_read=%s", wait_fd(s, POLLIN, 2000) > 0 ? R(read(s, b, 4)) : "timeout");
	ob("connect2=%s", C(c, &a));
}

CASE(tcp4_shutdown_before_connect_enotconn, "shutdown=ENOTCONN connect=0")
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("shutdown=%s", R(shutdown(c, SHUT_RDWR)));
	ob("connect=%s", C(c, &a));
}

// Two sockets bound to the same local port (SO_REUSEADDR) cannot both
// connect to the same peer: the 4-tuple is taken (__inet_check_established).
CASE(tcp4_four_tuple_in_use_eaddrnotavail, "connect1=0 connect2=EADDRNOTAVAIL")
{
	addr_t a, me = A4("127.0.0.1", 0);
	tcp_listener(AF_INET, &a);
	int c1 = sock(AF_INET, SOCK_STREAM), c2 = sock(AF_INET, SOCK_STREAM);
	set_int(c1, SOL_SOCKET, SO_REUSEADDR, 1);
	set_int(c2, SOL_SOCKET, SO_REUSEADDR, 1);
	if (bind(c1, (void *)&me.ss, me.len) < 0)
		die("bind");
	me.len = sizeof me.ss;
	getsockname(c1, (void *)&me.ss, &me.len);
	if (bind(c2, (void *)&me.ss, me.len) < 0)
		die("bind2");
	ob("connect1=%s", C(c1, &a));
	ob("connect2=%s", C(c2, &a));
}

// With a one-port ephemeral range, a second connect to the same peer finds
// no free port, while another peer can still be reached from that port.
CASE(tcp4_ephemeral_ports_exhausted_eaddrnotavail,
     "connect1=0 connect2_same_peer=EADDRNOTAVAIL connect3_other_peer=0")
{
	new_netns(1);
	addr_t a, b;
	tcp_listener(AF_INET, &a); // before the range shrinks: bind(port 0) uses it too
	tcp_listener(AF_INET, &b);
	int f = open("/proc/sys/net/ipv4/ip_local_port_range", O_WRONLY);
	if (f < 0 || write(f, "40000 40000", 11) != 11)
		die("ip_local_port_range");
	close(f);
	int c1 = sock(AF_INET, SOCK_STREAM), c2 = sock(AF_INET, SOCK_STREAM), c3 = sock(AF_INET, SOCK_STREAM);
	ob("connect1=%s", C(c1, &a));
	ob("connect2_same_peer=%s", C(c2, &a));
	ob("connect3_other_peer=%s", C(c3, &b));
}

CASE(tcp4_as_nobody_succeeds, "child_connect=0 accepted=ok")
{
	need_root();
	int l = tcp_listener(AF_INET, &g_addr);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		become_nobody();
		connect_and_record(NULL);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	ob("accepted=%s", acc(l, 2000) >= 0 ? "ok" : "failed");
}

// ===========================================================================
// TCP over IPv6

CASE(tcp6_blocking_connect_succeeds,
     "connect=0 peer=AF_INET6:::1:same local=AF_INET6:::1:eph echo=ok")
{
	need_ipv6();
	addr_t a;
	int l = tcp_listener(AF_INET6, &a);
	int c = sock(AF_INET6, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
	ob_name("local", c, 0, NULL);
	ob("echo=%s", echo_stream(c, l));
}

CASE(tcp6_blocking_refused_econnrefused, "connect=ECONNREFUSED")
{
	need_ipv6();
	addr_t a = closed_port(AF_INET6, SOCK_STREAM);
	int c = sock(AF_INET6, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(tcp6_nonblock_einprogress_poll_succeeds, "connect=EINPROGRESS poll=OUT so_error=0 echo=ok")
{
	need_ipv6();
	addr_t a;
	int l = tcp_listener(AF_INET6, &a);
	int c = sock(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK);
	ob("connect=%s", C(c, &a));
	ob("poll=%s", evnames(wait_fd(c, POLLOUT, 2000)));
	ob("so_error=%s", so_error(c));
	ob("echo=%s", echo_stream(c, l));
}

CASE(tcp6_nonblock_refused_so_error, "connect=EINPROGRESS poll=OUT|ERR|HUP so_error=ECONNREFUSED")
{
	need_ipv6();
	addr_t a = closed_port(AF_INET6, SOCK_STREAM);
	int c = sock(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK);
	ob("connect=%s", C(c, &a));
	ob("poll=%s", evnames(wait_fd(c, POLLOUT, 2000)));
	ob("so_error=%s", so_error(c));
}

CASE(tcp6_nonblock_second_connect_ealready, "connect=EINPROGRESS connect2=EALREADY")
{
	need_ipv6();
	addr_t a;
	tcp_full_listener(AF_INET6, &a);
	int c = sock(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK);
	ob("connect=%s", C(c, &a));
	ob("connect2=%s", C(c, &a));
}

CASE(tcp6_connected_connect_again_eisconn, "connect=0 connect2=EISCONN")
{
	need_ipv6();
	addr_t a;
	tcp_listener(AF_INET6, &a);
	int c = sock(AF_INET6, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	ob("connect2=%s", C(c, &a));
}

// An IPv4-mapped address on a dual-stack socket reaches the IPv4 listener;
// the socket keeps reporting IPv6 (mapped) addresses.
CASE(tcp6_v4mapped_reaches_ipv4_listener,
     "connect=0 peer=AF_INET6:::ffff:127.0.0.1:same local=AF_INET6:::ffff:127.0.0.1:eph echo=ok")
{
	need_ipv6();
	addr_t a;
	int l = tcp_listener(AF_INET, &a);
	addr_t m = A6("::ffff:127.0.0.1", port_of(&a));
	int c = sock(AF_INET6, SOCK_STREAM);
	ob("connect=%s", C(c, &m));
	ob_name("peer", c, 1, &m);
	ob_name("local", c, 0, NULL);
	ob("echo=%s", echo_stream(c, l));
}

CASE(tcp6_v6only_v4mapped_enetunreach, "connect=ENETUNREACH")
{
	need_ipv6();
	addr_t a;
	tcp_listener(AF_INET, &a);
	addr_t m = A6("::ffff:127.0.0.1", port_of(&a));
	int c = sock(AF_INET6, SOCK_STREAM);
	set_int(c, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	ob("connect=%s", C(c, &m));
}

CASE(tcp6_sockaddr_in_too_short_einval, "connect=EINVAL")
{
	need_ipv6();
	addr_t a;
	tcp_listener(AF_INET, &a);
	int c = sock(AF_INET6, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(tcp6_inet_family_full_length_eafnosupport, "connect=EAFNOSUPPORT")
{
	need_ipv6();
	addr_t a;
	tcp_listener(AF_INET, &a);
	a.len = sizeof(struct sockaddr_in6);
	int c = sock(AF_INET6, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

// SIN6_LEN_RFC2133 (24 bytes, no sin6_scope_id) is accepted.
CASE(tcp6_addrlen_24_rfc2133_succeeds, "connect=0")
{
	need_ipv6();
	addr_t a;
	tcp_listener(AF_INET6, &a);
	a.len = 24;
	int c = sock(AF_INET6, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(tcp6_addrlen_23_einval, "connect=EINVAL")
{
	need_ipv6();
	addr_t a;
	tcp_listener(AF_INET6, &a);
	a.len = 23;
	int c = sock(AF_INET6, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(tcp6_link_local_without_scope_einval, "connect=EINVAL")
{
	need_ipv6();
	addr_t a = A6("fe80::1", 9);
	int c = sock(AF_INET6, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(tcp6_any_address_means_loopback, "connect=0 peer=AF_INET6:::1:same")
{
	need_ipv6();
	addr_t a;
	tcp_listener(AF_INET6, &a);
	addr_t any = A6("::", port_of(&a));
	int c = sock(AF_INET6, SOCK_STREAM);
	ob("connect=%s", C(c, &any));
	ob_name("peer", c, 1, &a);
}

CASE(tcp6_sndtimeo_expires_einprogress, "connect=EINPROGRESS elapsed=ok")
{
	need_ipv6();
	addr_t a;
	tcp_full_listener(AF_INET6, &a);
	int c = sock(AF_INET6, SOCK_STREAM);
	set_sndtimeo(c, 300);
	long t = now_ms();
	ob("connect=%s", C(c, &a));
	ob("elapsed=%s", elapsed(now_ms() - t, 250, 2000));
}

CASE(tcp6_blocking_signal_eintr, "connect=EINTR signals=1")
{
	need_ipv6();
	addr_t a;
	tcp_full_listener(AF_INET6, &a);
	int c = sock(AF_INET6, SOCK_STREAM);
	handle(SIGALRM, 0);
	itimer(200, 0);
	ob("connect=%s", C(c, &a));
	ob("signals=%s", sigcount());
}

// ===========================================================================
// UDP

CASE(udp4_connect_send_receive,
     "connect=0 peer=AF_INET:127.0.0.1:same local=AF_INET:127.0.0.1:eph echo=ok")
{
	addr_t a = A4("127.0.0.1", 0);
	int s = lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
	ob_name("local", c, 0, NULL);
	ob("echo=%s", echo_dgram(c, s));
}

CASE(udp4_nonblocking_connect_immediate, "connect=0 peer=AF_INET:127.0.0.1:same")
{
	addr_t a = A4("127.0.0.1", 0);
	lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
}

CASE(udp4_reconnect_to_other_peer,
     "connect=0 connect_other=0 peer=AF_INET:127.0.0.1:same echo_other=ok")
{
	addr_t a = A4("127.0.0.1", 0), b = A4("127.0.0.1", 0);
	lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int sb = lsock(AF_INET, SOCK_DGRAM, &b, 0);
	int c = sock(AF_INET, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
	ob("connect_other=%s", C(c, &b));
	ob_name("peer", c, 1, &b);
	ob("echo_other=%s", echo_dgram(c, sb));
}

// AF_UNSPEC dissolves the association: no default destination any more.
CASE(udp4_af_unspec_dissolves_association,
     "connect=0 unspec=0 send=EDESTADDRREQ peer=ENOTCONN local=AF_INET:0.0.0.0:eph reconnect=0")
{
	addr_t a = A4("127.0.0.1", 0);
	lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
	addr_t u = A4("0.0.0.0", 0);
	u.ss.ss_family = AF_UNSPEC;
	ob("unspec=%s", C(c, &u));
	ob("send=%s", R(send(c, "x", 1, 0)));
	ob_name("peer", c, 1, NULL);
	ob_name("local", c, 0, NULL);
	ob("reconnect=%s", C(c, &a));
}

CASE(udp4_af_unspec_family_only_addrlen_2, "connect=0 unspec=0 peer=ENOTCONN")
{
	addr_t a = A4("127.0.0.1", 0);
	lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
	addr_t u = AUNNAMED();
	u.ss.ss_family = AF_UNSPEC;
	ob("unspec=%s", C(c, &u));
	ob_name("peer", c, 1, NULL);
}

CASE(udp4_af_unspec_unconnected_succeeds, "unspec=0")
{
	int c = sock(AF_INET, SOCK_DGRAM);
	addr_t u = A4("0.0.0.0", 0);
	u.ss.ss_family = AF_UNSPEC;
	ob("unspec=%s", C(c, &u));
}

// Connecting UDP sends nothing; the ICMP port unreachable for the first
// datagram comes back as ECONNREFUSED on the connected socket.
CASE(udp4_closed_port_econnrefused_after_send,
     "connect=0 send=4 poll=ERR recv=ECONNREFUSED so_error=0")
{
	addr_t a = closed_port(AF_INET, SOCK_DGRAM);
	int c = sock(AF_INET, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
	ob("send=%s", R(send(c, "ping", 4, 0)));
	ob("poll=%s", evnames(wait_fd(c, 0, 2000)));
	char b[8];
	ob("recv=%s", R(recv(c, b, sizeof b, MSG_DONTWAIT)));
	ob("so_error=%s", so_error(c));
}

// A connected UDP socket only receives from its peer.
CASE(udp4_connected_filters_other_sources, "connect=0 recv=from_peer recv2=EAGAIN")
{
	addr_t a = A4("127.0.0.1", 0), b = A4("127.0.0.1", 0), me = A4("127.0.0.1", 0);
	int sa = lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int sb = lsock(AF_INET, SOCK_DGRAM, &b, 0);
	int c = lsock(AF_INET, SOCK_DGRAM, &me, 0);
	ob("connect=%s", C(c, &a));
	sendto(sb, "B", 1, 0, (void *)&me.ss, me.len);
	sendto(sa, "A", 1, 0, (void *)&me.ss, me.len);
	char x = 0;
	wait_fd(c, POLLIN, 2000);
	ob("recv=%s", recv(c, &x, 1, 0) == 1 && x == 'A' ? "from_peer" : "other");
	msleep(50);
	ob("recv2=%s", R(recv(c, &x, 1, MSG_DONTWAIT)));
}

// Broadcast needs SO_BROADCAST (ip4_datagram_connect: RTCF_BROADCAST ->
// EACCES). 127.255.255.255 is lo's broadcast address: nothing leaves lo.
CASE(udp4_broadcast_without_so_broadcast_eacces, "connect=EACCES")
{
	addr_t a = A4("127.255.255.255", 9);
	int c = sock(AF_INET, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
}

CASE(udp4_broadcast_with_so_broadcast_succeeds, "connect=0 peer=AF_INET:127.255.255.255:same")
{
	addr_t a = A4("127.255.255.255", 9);
	int c = sock(AF_INET, SOCK_DGRAM);
	set_int(c, SOL_SOCKET, SO_BROADCAST, 1);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
}

CASE(udp4_any_address_means_loopback, "connect=0 peer=AF_INET:127.0.0.1:same")
{
	addr_t a = A4("127.0.0.1", 0);
	lsock(AF_INET, SOCK_DGRAM, &a, 0);
	addr_t any = A4("0.0.0.0", port_of(&a));
	int c = sock(AF_INET, SOCK_DGRAM);
	ob("connect=%s", C(c, &any));
	ob_name("peer", c, 1, &a);
}

// UDP accepts port 0 and send goes there (the socket is TCP_ESTABLISHED),
// but getpeername calls a socket without a peer port unconnected
// (inet_getname: !inet_dport -> ENOTCONN).
CASE(udp4_port_zero_connects_getpeername_enotconn, "connect=0 peer=ENOTCONN send=1")
{
	addr_t a = A4("127.0.0.1", 0);
	int c = sock(AF_INET, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, NULL);
	ob("send=%s", R(send(c, "x", 1, 0)));
}

CASE(udp4_inet6_address_eafnosupport, "connect=EAFNOSUPPORT")
{
	addr_t a = A6("::1", 9);
	int c = sock(AF_INET, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
}

CASE(udp4_addrlen_15_einval, "connect=EINVAL")
{
	addr_t a = A4("127.0.0.1", 9);
	a.len = 15;
	int c = sock(AF_INET, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
}

struct fd_addr {
	int fd;
	addr_t a;
};

static void *thread_connect_fd(void *p)
{
	struct fd_addr *x = p;
	return (void *)(long)(connect(x->fd, (void *)&x->a.ss, x->a.len) < 0 ? errno : 0);
}

CASE(udp4_connect_from_non_leader_thread, "thread_connect=0 peer=AF_INET:127.0.0.1:same")
{
	struct fd_addr ta = {sock(AF_INET, SOCK_DGRAM), A4("127.0.0.1", 0)};
	lsock(AF_INET, SOCK_DGRAM, &ta.a, 0);
	pthread_t t;
	void *r;
	pthread_create(&t, NULL, thread_connect_fd, &ta);
	pthread_join(t, &r);
	ob("thread_connect=%s", en((int)(long)r));
	ob_name("peer", ta.fd, 1, &ta.a);
}

CASE(udp6_connect_send_receive, "connect=0 peer=AF_INET6:::1:same local=AF_INET6:::1:eph echo=ok")
{
	need_ipv6();
	addr_t a = A6("::1", 0);
	int s = lsock(AF_INET6, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET6, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
	ob_name("local", c, 0, NULL);
	ob("echo=%s", echo_dgram(c, s));
}

CASE(udp6_v4mapped_reaches_ipv4_socket, "connect=0 peer=AF_INET6:::ffff:127.0.0.1:same echo=ok")
{
	need_ipv6();
	addr_t a = A4("127.0.0.1", 0);
	int s = lsock(AF_INET, SOCK_DGRAM, &a, 0);
	addr_t m = A6("::ffff:127.0.0.1", port_of(&a));
	int c = sock(AF_INET6, SOCK_DGRAM);
	ob("connect=%s", C(c, &m));
	ob_name("peer", c, 1, &m);
	ob("echo=%s", echo_dgram(c, s));
}

CASE(udp6_v6only_v4mapped_enetunreach, "connect=ENETUNREACH")
{
	need_ipv6();
	addr_t m = A6("::ffff:127.0.0.1", 9);
	int c = sock(AF_INET6, SOCK_DGRAM);
	set_int(c, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	ob("connect=%s", C(c, &m));
}

// An AF_INET sockaddr on a dual-stack UDP socket connects over IPv4
// (__ip6_datagram_connect hands it to __ip4_datagram_connect).
CASE(udp6_sockaddr_in_connects_as_ipv4, "connect=0 peer=AF_INET6:::ffff:127.0.0.1:same")
{
	need_ipv6();
	addr_t a = A4("127.0.0.1", 0);
	lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET6, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
}

CASE(udp6_v6only_sockaddr_in_eafnosupport, "connect=EAFNOSUPPORT")
{
	need_ipv6();
	addr_t a = A4("127.0.0.1", 9);
	int c = sock(AF_INET6, SOCK_DGRAM);
	set_int(c, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	ob("connect=%s", C(c, &a));
}

CASE(udp6_af_unspec_dissolves_association, "connect=0 unspec=0 send=EDESTADDRREQ peer=ENOTCONN")
{
	need_ipv6();
	addr_t a = A6("::1", 0);
	lsock(AF_INET6, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET6, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
	addr_t u = A6("::", 0);
	u.ss.ss_family = AF_UNSPEC;
	ob("unspec=%s", C(c, &u));
	ob("send=%s", R(send(c, "x", 1, 0)));
	ob_name("peer", c, 1, NULL);
}

CASE(udp6_link_local_without_scope_einval, "connect=EINVAL")
{
	need_ipv6();
	addr_t a = A6("fe80::1", 9);
	int c = sock(AF_INET6, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
}

// ===========================================================================
// UNIX stream

CASE(unix_stream_path_succeeds,
     "connect=0 peer=AF_UNIX:path:same local=AF_UNIX:unnamed echo=ok")
{
	addr_t a = AU(tpath("s"));
	int l = lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
	ob_name("local", c, 0, NULL);
	ob("echo=%s", echo_stream(c, l));
}

CASE(unix_stream_path_without_nul_in_addrlen_succeeds, "connect=0 peer=AF_UNIX:path:same")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	a.len--; // no terminating NUL counted
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
}

// Bytes after the path's NUL are ignored (unix_mkname_bsd uses strlen).
CASE(unix_stream_path_trailing_garbage_ignored, "connect=0")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	struct sockaddr_un *s = (void *)&a.ss;
	size_t n = strlen(s->sun_path);
	memset(s->sun_path + n + 1, 'Z', sizeof s->sun_path - n - 1);
	a.len = sizeof *s;
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

// A 108-byte path fills sun_path with no NUL at all.
CASE(unix_stream_path_108_bytes_no_nul_succeeds, "bind=0 connect=0")
{
	if (chdir(tdir()) < 0)
		die("chdir");
	addr_t a;
	memset(&a, 0, sizeof a);
	struct sockaddr_un *s = (void *)&a.ss;
	s->sun_family = AF_UNIX;
	memset(s->sun_path, 'p', sizeof s->sun_path);
	a.len = sizeof *s;
	int l = sock(AF_UNIX, SOCK_STREAM);
	ob("bind=%s", R(bind(l, (void *)&a.ss, a.len)));
	listen(l, 4);
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_stream_abstract_succeeds, "connect=0 peer=AF_UNIX:abstract:same echo=ok")
{
	addr_t a = AABS("abs");
	int l = lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
	ob("echo=%s", echo_stream(c, l));
}

// Abstract names are exactly addrlen bytes long: one byte more is another
// name.
CASE(unix_stream_abstract_length_mismatch_econnrefused, "connect=ECONNREFUSED")
{
	addr_t a = AABS("abs");
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	a.len++;
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_stream_autobind_listener_succeeds,
     "listener=AF_UNIX:abstract:len=8 connect=0 peer=AF_UNIX:abstract:same")
{
	addr_t a = AUNNAMED();
	int l = lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	ob_name("listener", l, 0, NULL);
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
}

// SO_PASSCRED makes connect autobind the client (unix_stream_connect).
CASE(unix_stream_passcred_client_autobinds, "connect=0 local=AF_UNIX:abstract:len=8")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	int c = sock(AF_UNIX, SOCK_STREAM);
	set_int(c, SOL_SOCKET, SO_PASSCRED, 1);
	ob("connect=%s", C(c, &a));
	ob_name("local", c, 0, NULL);
}

// A relative path resolves against the caller's working directory.
CASE(unix_stream_relative_path_after_chdir, "connect=0 peer=AF_UNIX:path:same")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	if (chdir(tdir()) < 0)
		die("chdir");
	addr_t rel = AU("s");
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &rel));
	ob_name("peer", c, 1, &a);
}

CASE(unix_stream_relative_path_wrong_cwd_enoent, "connect=ENOENT")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	if (chdir("/") < 0)
		die("chdir");
	addr_t rel = AU("s");
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &rel));
}

CASE(unix_stream_path_through_symlink, "connect=0 peer=AF_UNIX:path:same")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	if (symlink(tpath("s"), tpath("link")) < 0)
		die("symlink");
	addr_t l = AU(tpath("link"));
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &l));
	ob_name("peer", c, 1, &a);
}

CASE(unix_stream_path_through_dir_symlink_and_dotdot, "connect=0")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	if (mkdir(tpath("d"), 0755) < 0 || symlink(tdir(), tpath("dirlink")) < 0)
		die("mkdir/symlink");
	addr_t p = AU(tpath("dirlink/d/../s"));
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &p));
}

CASE(unix_stream_nonexistent_path_enoent, "connect=ENOENT")
{
	addr_t a = AU(tpath("nope"));
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_stream_path_through_file_enotdir, "connect=ENOTDIR")
{
	int f = open(tpath("file"), O_CREAT | O_WRONLY, 0644);
	close(f);
	addr_t a = AU(tpath("file/s"));
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_stream_symlink_loop_eloop, "connect=ELOOP")
{
	if (symlink(tpath("loop"), tpath("loop")) < 0)
		die("symlink");
	addr_t a = AU(tpath("loop"));
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_stream_regular_file_econnrefused, "connect=ECONNREFUSED")
{
	int f = open(tpath("file"), O_CREAT | O_WRONLY, 0666);
	close(f);
	addr_t a = AU(tpath("file"));
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_stream_directory_econnrefused, "connect=ECONNREFUSED")
{
	addr_t a = AU(tdir());
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_stream_fifo_econnrefused, "connect=ECONNREFUSED")
{
	if (mkfifo(tpath("fifo"), 0666) < 0)
		die("mkfifo");
	addr_t a = AU(tpath("fifo"));
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

// The socket file outlives its socket.
CASE(unix_stream_stale_socket_file_econnrefused, "connect=ECONNREFUSED")
{
	addr_t a = AU(tpath("s"));
	int l = lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	close(l);
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_stream_bound_not_listening_econnrefused, "connect=ECONNREFUSED")
{
	addr_t a = AU(tpath("s"));
	int l = sock(AF_UNIX, SOCK_STREAM);
	if (bind(l, (void *)&a.ss, a.len) < 0)
		die("bind");
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

static void nobody_connect(void *arg)
{
	become_nobody();
	const char *rel = arg;
	if (rel && chdir(rel) < 0)
		die("chdir");
	connect_and_record(NULL);
}

// Permission is checked with the caller's credentials: search permission on
// the directories, write permission on the socket file.
CASE(unix_stream_private_dir_as_nobody_eacces, "child_connect=EACCES root_connect=0")
{
	need_root();
	chmod(tdir(), 0755);
	mkdir(tpath("priv"), 0700);
	g_addr = AU(tpath("priv/s"));
	lsock(AF_UNIX, SOCK_STREAM, &g_addr, 8);
	chmod(tpath("priv/s"), 0777);
	run_child(nobody_connect, NULL);
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("root_connect=%s", C(c, &g_addr));
}

CASE(unix_stream_socket_not_writable_as_nobody_eacces, "child_connect=EACCES")
{
	need_root();
	chmod(tdir(), 0755);
	g_addr = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &g_addr, 8);
	chmod(tpath("s"), 0755);
	run_child(nobody_connect, NULL);
}

// The working directory is inside a directory nobody may not search: the
// relative lookup fails there even though the process is already in it.
CASE(unix_stream_relative_path_in_private_cwd_as_nobody_eacces, "child_connect=EACCES")
{
	need_root();
	chmod(tdir(), 0755);
	mkdir(tpath("priv"), 0700);
	addr_t a = AU(tpath("priv/s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	chmod(tpath("priv/s"), 0777);
	if (chdir(tpath("priv")) < 0)
		die("chdir");
	g_addr = AU("s");
	run_child(nobody_connect, NULL);
}

CASE(unix_stream_as_nobody_succeeds_peer_sees_nobody,
     "child_connect=0 server_peercred_uid=65534 server_peercred_pid=child")
{
	need_root();
	chmod(tdir(), 0755);
	g_addr = AU(tpath("s"));
	int l = lsock(AF_UNIX, SOCK_STREAM, &g_addr, 8);
	chmod(tpath("s"), 0777);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		nobody_connect(NULL);
		msleep(300); // stay alive until the server looked
		_exit(0);
	}
	int s = acc(l, 2000);
	struct ucred cr = {0};
	socklen_t cl = sizeof cr;
	getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &cl);
	waitpid(pid, NULL, 0);
	ob("server_peercred_uid=%u server_peercred_pid=%s", cr.uid, cr.pid == pid ? "child" : "other");
}

CASE(unix_stream_root_ignores_socket_mode, "connect=0")
{
	need_root();
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	chmod(tpath("s"), 0);
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

// SO_PEERCRED records the process that called connect (init_peercred in
// unix_stream_connect), and the client sees the listener's creator.
CASE(unix_stream_peercred_names_the_connecting_process,
     "connect=0 server_sees_pid=self server_sees_uid=self client_sees_pid=self")
{
	addr_t a = AU(tpath("s"));
	int l = lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	int s = acc(l, 2000);
	struct ucred cr = {0}, cc = {0};
	socklen_t n = sizeof cr;
	getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &n);
	n = sizeof cc;
	getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cc, &n);
	ob("server_sees_pid=%s server_sees_uid=%s client_sees_pid=%s",
	   cr.pid == getpid() ? "self" : "other", cr.uid == getuid() ? "self" : "other",
	   cc.pid == getpid() ? "self" : "other");
}

CASE(unix_stream_connect_twice_eisconn, "connect=0 connect2=EISCONN")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	ob("connect2=%s", C(c, &a));
}

// unix_stream_connect looks the peer up before it checks its own state.
CASE(unix_stream_connected_then_missing_path_enoent, "connect=0 connect2=ENOENT")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	addr_t b = AU(tpath("nope"));
	ob("connect2=%s", C(c, &b));
}

CASE(unix_stream_failed_then_succeeds, "connect=ENOENT connect2=0")
{
	addr_t a = AU(tpath("s"));
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	ob("connect2=%s", C(c, &a));
}

CASE(unix_stream_socketpair_connect_eisconn, "connect=EISCONN")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	ob("connect=%s", C(sv[0], &a));
}

CASE(unix_stream_listening_socket_connect_einval, "connect=EINVAL")
{
	addr_t a = AU(tpath("s")), b = AU(tpath("t"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	int l2 = lsock(AF_UNIX, SOCK_STREAM, &b, 8);
	ob("connect=%s", C(l2, &a));
}

// UNIX stream never says EINPROGRESS: the connection is queued at once.
CASE(unix_stream_nonblocking_connect_immediate, "connect=0 poll=OUT")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	int c = sock(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK);
	ob("connect=%s", C(c, &a));
	ob("poll=%s", evnames(wait_fd(c, POLLOUT, 1000)));
}

CASE(unix_stream_nonblocking_full_backlog_eagain, "connect=EAGAIN peer=ENOTCONN")
{
	addr_t a = AU(tpath("s"));
	unix_full_listener(SOCK_STREAM, &a);
	int c = sock(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, NULL);
}

CASE(unix_stream_sndtimeo_full_backlog_eagain, "connect=EAGAIN elapsed=ok")
{
	addr_t a = AU(tpath("s"));
	unix_full_listener(SOCK_STREAM, &a);
	int c = sock(AF_UNIX, SOCK_STREAM);
	set_sndtimeo(c, 300);
	long t = now_ms();
	ob("connect=%s", C(c, &a));
	ob("elapsed=%s", elapsed(now_ms() - t, 250, 2000));
}

CASE(unix_stream_blocking_full_backlog_completes_after_accept, "connect=0 elapsed=ok")
{
	addr_t a = AU(tpath("s"));
	int l = unix_full_listener(SOCK_STREAM, &a);
	int c = sock(AF_UNIX, SOCK_STREAM);
	later(300, accept_one, l);
	long t = now_ms();
	ob("connect=%s", C(c, &a));
	ob("elapsed=%s", elapsed(now_ms() - t, 250, 3000));
}

CASE(unix_stream_blocking_signal_eintr, "connect=EINTR signals=1 peer=ENOTCONN")
{
	addr_t a = AU(tpath("s"));
	unix_full_listener(SOCK_STREAM, &a);
	int c = sock(AF_UNIX, SOCK_STREAM);
	handle(SIGALRM, 0);
	itimer(200, 0);
	ob("connect=%s", C(c, &a));
	ob("signals=%s", sigcount());
	ob_name("peer", c, 1, NULL);
}

// Natively a UNIX connect interrupted by a signal is gone: no connection is
// queued, so when the listener later has room the socket stays unconnected
// and may connect afresh.
CASE(unix_stream_eintr_leaves_socket_unconnected,
     "connect=EINTR peer_after_room=ENOTCONN connect2=0 peer=AF_UNIX:path:same")
{
	addr_t a = AU(tpath("s"));
	int l = unix_full_listener(SOCK_STREAM, &a);
	int c = sock(AF_UNIX, SOCK_STREAM);
	handle(SIGALRM, 0);
	itimer(200, 0);
	ob("connect=%s", C(c, &a));
	accept_one(l); // room for one more
	msleep(300);
	ob_name("peer_after_room", c, 1, NULL);
	ob("connect2=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
}

// After EINTR the program switches to nonblocking and tries again: the queue
// is still full, so EAGAIN at once.
CASE(unix_stream_eintr_then_nonblocking_connect_eagain, "connect=EINTR nonblock_connect2=EAGAIN")
{
	addr_t a = AU(tpath("s"));
	unix_full_listener(SOCK_STREAM, &a);
	int c = sock(AF_UNIX, SOCK_STREAM);
	handle(SIGALRM, 0);
	itimer(200, 0);
	ob("connect=%s", C(c, &a));
	set_nonblock(c);
	ob("nonblock_connect2=%s", C(c, &a));
}

// SO_SNDTIMEO expired: nothing is queued, even once the listener has room.
CASE(unix_stream_sndtimeo_expired_leaves_socket_unconnected,
     "connect=EAGAIN peer_after_room=ENOTCONN")
{
	addr_t a = AU(tpath("s"));
	int l = unix_full_listener(SOCK_STREAM, &a);
	int c = sock(AF_UNIX, SOCK_STREAM);
	set_sndtimeo(c, 300);
	ob("connect=%s", C(c, &a));
	accept_one(l);
	msleep(300);
	ob_name("peer_after_room", c, 1, NULL);
}

CASE(unix_stream_blocking_signal_sa_restart_completes, "connect=0 signals=1 peer=AF_UNIX:path:same")
{
	addr_t a = AU(tpath("s"));
	int l = unix_full_listener(SOCK_STREAM, &a);
	int c = sock(AF_UNIX, SOCK_STREAM);
	handle(SIGALRM, SA_RESTART);
	itimer(200, 0);
	later(400, accept_one, l);
	ob("connect=%s", C(c, &a));
	ob("signals=%s", sigcount());
	ob_name("peer", c, 1, &a);
}

CASE(unix_stream_blocking_signal_storm_completes, "connect=0 signals=many peer=AF_UNIX:path:same")
{
	addr_t a = AU(tpath("s"));
	int l = unix_full_listener(SOCK_STREAM, &a);
	int c = sock(AF_UNIX, SOCK_STREAM);
	handle(SIGALRM, SA_RESTART);
	itimer(5, 5);
	later(300, accept_one, l);
	ob("connect=%s", C(c, &a));
	itimer(0, 0);
	ob("signals=%s", sigcount());
	ob_name("peer", c, 1, &a);
}

CASE(unix_stream_sndtimeo_signal_sa_restart_eintr, "connect=EINTR signals=1")
{
	addr_t a = AU(tpath("s"));
	unix_full_listener(SOCK_STREAM, &a);
	int c = sock(AF_UNIX, SOCK_STREAM);
	set_sndtimeo(c, 5000);
	handle(SIGALRM, SA_RESTART);
	itimer(200, 0);
	ob("connect=%s", C(c, &a));
	ob("signals=%s", sigcount());
}

CASE(unix_stream_to_dgram_socket_eprototype, "connect=EPROTOTYPE")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_DGRAM, &a, 0);
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_stream_to_seqpacket_listener_eprototype, "connect=EPROTOTYPE")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_SEQPACKET, &a, 8);
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_stream_addrlen_family_only_einval, "connect=EINVAL")
{
	addr_t a = AUNNAMED();
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_stream_addrlen_0_einval, "connect=EINVAL")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	a.len = 0;
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_stream_addrlen_111_einval, "connect=EINVAL")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	a.len = sizeof(struct sockaddr_un) + 1;
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_stream_inet_address_einval, "connect=EINVAL")
{
	addr_t a = A4("127.0.0.1", 9);
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

// connect on an O_PATH descriptor of the socket file: O_PATH files are not
// usable fds for connect (fdget) -> EBADF.
CASE(unix_stream_o_path_descriptor_ebadf, "connect=EBADF")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	int p = open(tpath("s"), O_PATH | O_CLOEXEC);
	if (p < 0)
		die("open O_PATH");
	ob("connect=%s", C(p, &a));
}

// Pathname lookup happens in the caller's mount namespace.
CASE(unix_stream_path_hidden_by_mount_namespace_enoent, "connect=ENOENT")
{
	need_root();
	mkdir(tpath("m"), 0755);
	addr_t a = AU(tpath("m/s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	if (unshare(CLONE_NEWNS) < 0)
		skip("unshare(CLONE_NEWNS) not permitted");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", tpath("m"), "tmpfs", 0, NULL) < 0)
		die("mount");
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_stream_path_only_in_private_mount_succeeds, "connect=0")
{
	need_root();
	mkdir(tpath("m"), 0755);
	if (unshare(CLONE_NEWNS) < 0)
		skip("unshare(CLONE_NEWNS) not permitted");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", tpath("m"), "tmpfs", 0, NULL) < 0)
		die("mount");
	addr_t a = AU(tpath("m/s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

// Pathname lookup starts at the caller's root.
CASE(unix_stream_path_inside_chroot_succeeds, "connect=0 outside_path=ENOENT")
{
	need_root();
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	if (chroot(tdir()) < 0 || chdir("/") < 0)
		die("chroot");
	addr_t in = AU("/s");
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("connect=%s", C(c, &in));
	int c2 = sock(AF_UNIX, SOCK_STREAM);
	ob("outside_path=%s", C(c2, &a));
}

// Abstract names belong to the network namespace; pathnames do not.
CASE(unix_abstract_from_other_netns_econnrefused, "abstract=ECONNREFUSED path=0")
{
	addr_t ab = AABS("ns"), p = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &ab, 8);
	lsock(AF_UNIX, SOCK_STREAM, &p, 8);
	new_netns(0);
	int c = sock(AF_UNIX, SOCK_STREAM);
	ob("abstract=%s", C(c, &ab));
	int c2 = sock(AF_UNIX, SOCK_STREAM);
	ob("path=%s", C(c2, &p));
}

CASE(unix_stream_as_non_leader_thread, "thread_connect=0")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	pthread_t t;
	void *r;
	pthread_create(&t, NULL, thread_connect, &a);
	pthread_join(t, &r);
	ob("thread_connect=%s", en((int)(long)r));
}

// ===========================================================================
// UNIX seqpacket

CASE(unix_seqpacket_path_keeps_boundaries, "connect=0 peer=AF_UNIX:path:same recv1=2 recv2=3")
{
	addr_t a = AU(tpath("s"));
	int l = lsock(AF_UNIX, SOCK_SEQPACKET, &a, 8);
	int c = sock(AF_UNIX, SOCK_SEQPACKET);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
	int s = acc(l, 2000);
	write(c, "ab", 2);
	write(c, "cde", 3);
	char b[16];
	ob("recv1=%s", R(read(s, b, sizeof b)));
	ob("recv2=%s", R(read(s, b, sizeof b)));
}

CASE(unix_seqpacket_abstract_succeeds, "connect=0 peer=AF_UNIX:abstract:same")
{
	addr_t a = AABS("seq");
	lsock(AF_UNIX, SOCK_SEQPACKET, &a, 8);
	int c = sock(AF_UNIX, SOCK_SEQPACKET);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
}

CASE(unix_seqpacket_to_stream_listener_eprototype, "connect=EPROTOTYPE")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	int c = sock(AF_UNIX, SOCK_SEQPACKET);
	ob("connect=%s", C(c, &a));
}

CASE(unix_seqpacket_nonblocking_full_backlog_eagain, "connect=EAGAIN")
{
	addr_t a = AU(tpath("s"));
	unix_full_listener(SOCK_SEQPACKET, &a);
	int c = sock(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK);
	ob("connect=%s", C(c, &a));
}

CASE(unix_seqpacket_connect_twice_eisconn, "connect=0 connect2=EISCONN")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_SEQPACKET, &a, 8);
	int c = sock(AF_UNIX, SOCK_SEQPACKET);
	ob("connect=%s", C(c, &a));
	ob("connect2=%s", C(c, &a));
}

// ===========================================================================
// UNIX datagram

CASE(unix_dgram_path_send_receive, "connect=0 peer=AF_UNIX:path:same send=4 recv=4 fromlen=0")
{
	addr_t a = AU(tpath("s"));
	int s = lsock(AF_UNIX, SOCK_DGRAM, &a, 0);
	int c = sock(AF_UNIX, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
	ob("send=%s", R(send(c, "ping", 4, 0)));
	char b[8];
	struct sockaddr_storage from;
	socklen_t fl = sizeof from;
	ob("recv=%s", R(recvfrom(s, b, sizeof b, MSG_DONTWAIT, (void *)&from, &fl)));
	ob("fromlen=%d", (int)fl); // an unnamed sender has no address at all
}

CASE(unix_dgram_abstract_send_receive, "connect=0 peer=AF_UNIX:abstract:same send=4 recv=4")
{
	addr_t a = AABS("dg");
	int s = lsock(AF_UNIX, SOCK_DGRAM, &a, 0);
	int c = sock(AF_UNIX, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
	ob("send=%s", R(send(c, "ping", 4, 0)));
	char b[8];
	ob("recv=%s", R(recv(s, b, sizeof b, MSG_DONTWAIT)));
}

CASE(unix_dgram_autobind_peer_echo, "connect=0 peer=AF_UNIX:abstract:same echo=ok")
{
	addr_t a = AUNNAMED(), me = AUNNAMED();
	int s = lsock(AF_UNIX, SOCK_DGRAM, &a, 0);
	int c = lsock(AF_UNIX, SOCK_DGRAM, &me, 0); // autobound too, so the reply can come back
	ob("connect=%s", C(c, &a));
	ob_name("peer", c, 1, &a);
	ob("echo=%s", echo_dgram(c, s));
}

CASE(unix_dgram_passcred_connect_autobinds, "connect=0 local=AF_UNIX:abstract:len=8")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_DGRAM, &a, 0);
	int c = sock(AF_UNIX, SOCK_DGRAM);
	set_int(c, SOL_SOCKET, SO_PASSCRED, 1);
	ob("connect=%s", C(c, &a));
	ob_name("local", c, 0, NULL);
}

CASE(unix_dgram_af_unspec_dissolves_association, "connect=0 unspec=0 send=ENOTCONN peer=ENOTCONN")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_DGRAM, &a, 0);
	int c = sock(AF_UNIX, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
	addr_t u = AUNNAMED();
	u.ss.ss_family = AF_UNSPEC;
	ob("unspec=%s", C(c, &u));
	ob("send=%s", R(send(c, "x", 1, MSG_DONTWAIT)));
	ob_name("peer", c, 1, NULL);
}

CASE(unix_dgram_reconnect_to_other_peer, "connect=0 connect_other=0 peer=AF_UNIX:path:same recv_other=1")
{
	addr_t a = AU(tpath("a")), b = AU(tpath("b"));
	lsock(AF_UNIX, SOCK_DGRAM, &a, 0);
	int sb = lsock(AF_UNIX, SOCK_DGRAM, &b, 0);
	int c = sock(AF_UNIX, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
	ob("connect_other=%s", C(c, &b));
	ob_name("peer", c, 1, &b);
	send(c, "x", 1, 0);
	char x;
	ob("recv_other=%s", R(recv(sb, &x, 1, MSG_DONTWAIT)));
}

CASE(unix_dgram_to_stream_socket_eprototype, "connect=EPROTOTYPE")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_STREAM, &a, 8);
	int c = sock(AF_UNIX, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_dgram_nonexistent_path_enoent, "connect=ENOENT")
{
	addr_t a = AU(tpath("nope"));
	int c = sock(AF_UNIX, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_dgram_regular_file_econnrefused, "connect=ECONNREFUSED")
{
	int f = open(tpath("file"), O_CREAT | O_WRONLY, 0666);
	close(f);
	addr_t a = AU(tpath("file"));
	int c = sock(AF_UNIX, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
}

CASE(unix_dgram_private_dir_as_nobody_eacces, "child_connect=EACCES")
{
	need_root();
	chmod(tdir(), 0755);
	mkdir(tpath("priv"), 0700);
	addr_t a = AU(tpath("priv/s"));
	lsock(AF_UNIX, SOCK_DGRAM, &a, 0);
	g_addr = a;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		become_nobody();
		int c = sock(AF_UNIX, SOCK_DGRAM);
		ob("child_connect=%s", C(c, &g_addr));
		_exit(0);
	}
	waitpid(pid, NULL, 0);
}

CASE(unix_dgram_connect_to_itself, "connect=0 send=1 recv=1")
{
	addr_t a = AU(tpath("s"));
	int c = lsock(AF_UNIX, SOCK_DGRAM, &a, 0);
	ob("connect=%s", C(c, &a));
	ob("send=%s", R(send(c, "x", 1, 0)));
	char x;
	ob("recv=%s", R(recv(c, &x, 1, MSG_DONTWAIT)));
}

// After the peer closes, the connected datagram socket learns it on send.
CASE(unix_dgram_peer_closed_send_econnrefused, "connect=0 send=ECONNREFUSED")
{
	addr_t a = AU(tpath("s"));
	int s = lsock(AF_UNIX, SOCK_DGRAM, &a, 0);
	int c = sock(AF_UNIX, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
	close(s);
	ob("send=%s", R(send(c, "x", 1, MSG_DONTWAIT)));
}

CASE(unix_dgram_nonblocking_connect_immediate, "connect=0")
{
	addr_t a = AU(tpath("s"));
	lsock(AF_UNIX, SOCK_DGRAM, &a, 0);
	int c = sock(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK);
	ob("connect=%s", C(c, &a));
}

// ===========================================================================
// Network namespaces: unroutable destinations, and connects that happen in
// the caller's namespace.

CASE(netns_tcp4_no_route_enetunreach, "connect=ENETUNREACH")
{
	new_netns(1);
	addr_t a = A4("192.0.2.1", 80);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(netns_tcp4_nonblocking_no_route_enetunreach, "connect=ENETUNREACH")
{
	new_netns(1);
	addr_t a = A4("192.0.2.1", 80);
	int c = sock(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
	ob("connect=%s", C(c, &a));
}

CASE(netns_tcp6_no_route_enetunreach, "connect=ENETUNREACH")
{
	new_netns(1);
	need_ipv6();
	addr_t a = A6("2001:db8::1", 80);
	int c = sock(AF_INET6, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

CASE(netns_udp4_no_route_enetunreach, "connect=ENETUNREACH")
{
	new_netns(1);
	addr_t a = A4("192.0.2.1", 53);
	int c = sock(AF_INET, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
}

CASE(netns_udp6_no_route_enetunreach, "connect=ENETUNREACH")
{
	new_netns(1);
	need_ipv6();
	addr_t a = A6("2001:db8::1", 53);
	int c = sock(AF_INET6, SOCK_DGRAM);
	ob("connect=%s", C(c, &a));
}

// With lo down even 127.0.0.1 has no route.
CASE(netns_loopback_down_enetunreach, "connect=ENETUNREACH")
{
	new_netns(0);
	addr_t a = A4("127.0.0.1", 80);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

// An unreachable (RTF_REJECT) route answers EHOSTUNREACH.
CASE(netns_tcp4_reject_route_ehostunreach, "connect=EHOSTUNREACH")
{
	new_netns(1);
	route_add("192.0.2.0", "255.255.255.0", RTF_REJECT);
	addr_t a = A4("192.0.2.1", 80);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("connect=%s", C(c, &a));
}

// A route through lo to TEST-NET: the SYN loops back to a host that does not
// own the address and is dropped, so the connect stays pending.
CASE(netns_tcp4_blackholed_syn_sndtimeo_einprogress, "connect=EINPROGRESS elapsed=ok")
{
	new_netns(1);
	route_add("192.0.2.0", "255.255.255.0", 0);
	addr_t a = A4("192.0.2.1", 80);
	int c = sock(AF_INET, SOCK_STREAM);
	set_sndtimeo(c, 300);
	long t = now_ms();
	ob("connect=%s", C(c, &a));
	ob("elapsed=%s", elapsed(now_ms() - t, 250, 2000));
}

CASE(netns_tcp4_blackholed_syn_signal_eintr, "connect=EINTR signals=1")
{
	new_netns(1);
	route_add("192.0.2.0", "255.255.255.0", 0);
	addr_t a = A4("192.0.2.1", 80);
	int c = sock(AF_INET, SOCK_STREAM);
	handle(SIGALRM, 0);
	itimer(200, 0);
	ob("connect=%s", C(c, &a));
	ob("signals=%s", sigcount());
}

CASE(netns_tcp4_blackholed_syn_etimedout, "connect=ETIMEDOUT elapsed=ok")
{
	new_netns(1);
	route_add("192.0.2.0", "255.255.255.0", 0);
	addr_t a = A4("192.0.2.1", 80);
	int c = sock(AF_INET, SOCK_STREAM);
	set_int(c, IPPROTO_TCP, TCP_USER_TIMEOUT, 500);
	long t = now_ms();
	ob("connect=%s", C(c, &a));
	ob("elapsed=%s", elapsed(now_ms() - t, 400, 5000));
}

// The connect happens in the caller's namespace: a listener in the new
// namespace is reachable, the host's is not.
CASE(netns_tcp4_loopback_listener_in_namespace, "host_listener=ECONNREFUSED ns_listener=0 echo=ok")
{
	addr_t host;
	tcp_listener(AF_INET, &host);
	new_netns(1);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("host_listener=%s", C(c, &host));
	addr_t a;
	int l = tcp_listener(AF_INET, &a);
	int c2 = sock(AF_INET, SOCK_STREAM);
	ob("ns_listener=%s", C(c2, &a));
	ob("echo=%s", echo_stream(c2, l));
}

// A socket created before unshare stays in the old namespace.
CASE(netns_socket_created_before_unshare_uses_its_namespace, "old_socket=0 new_socket=ECONNREFUSED")
{
	addr_t a;
	tcp_listener(AF_INET, &a);
	int old = sock(AF_INET, SOCK_STREAM);
	new_netns(1);
	ob("old_socket=%s", C(old, &a));
	int c = sock(AF_INET, SOCK_STREAM);
	ob("new_socket=%s", C(c, &a));
}

// ===========================================================================
// Bad descriptors, and the order in which errors are found (__sys_connect:
// the fd, then the address copy, then the socket).

CASE(ebadf_negative_fd, "connect=EBADF")
{
	addr_t a = A4("127.0.0.1", 9);
	ob("connect=%s", C(-1, &a));
}

CASE(ebadf_closed_fd, "connect=EBADF")
{
	addr_t a = A4("127.0.0.1", 9);
	int c = sock(AF_INET, SOCK_STREAM);
	close(c);
	ob("connect=%s", C(c, &a));
}

CASE(ebadf_wins_over_efault, "connect=EBADF")
{
	ob("connect=%s", R(connect(-1, NULL, 16)));
}

CASE(ebadf_wins_over_einval, "connect=EBADF")
{
	addr_t a = A4("127.0.0.1", 9);
	ob("connect=%s", R(connect(-1, (void *)&a.ss, 1000)));
}

CASE(enotsock_pipe, "connect=ENOTSOCK")
{
	int p[2];
	pipe(p);
	addr_t a = A4("127.0.0.1", 9);
	ob("connect=%s", C(p[0], &a));
}

CASE(enotsock_regular_file, "connect=ENOTSOCK")
{
	int f = open("/dev/null", O_RDWR);
	addr_t a = A4("127.0.0.1", 9);
	ob("connect=%s", C(f, &a));
}

CASE(enotsock_epoll_fd, "connect=ENOTSOCK")
{
	int e = epoll_create1(0);
	addr_t a = AU("/nonexistent");
	ob("connect=%s", C(e, &a));
}

CASE(efault_wins_over_enotsock, "connect=EFAULT")
{
	int p[2];
	pipe(p);
	ob("connect=%s", R(connect(p[0], NULL, 16)));
}

CASE(einval_addrlen_wins_over_enotsock, "connect=EINVAL")
{
	int p[2];
	pipe(p);
	addr_t a = A4("127.0.0.1", 9);
	ob("connect=%s", R(connect(p[0], (void *)&a.ss, 200)));
}

// ===========================================================================
// Other families

CASE(netlink_route_connect_to_kernel, "connect=0 peer=AF_NETLINK")
{
	int n = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (n < 0)
		skip("socket(AF_NETLINK): %s", en(errno));
	addr_t a;
	memset(&a, 0, sizeof a);
	struct sockaddr_nl *nl = (void *)&a.ss;
	nl->nl_family = AF_NETLINK;
	a.len = sizeof *nl;
	ob("connect=%s", C(n, &a));
	ob_name("peer", n, 1, NULL);
}

CASE(netlink_short_address_einval, "connect=EINVAL")
{
	int n = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (n < 0)
		skip("socket(AF_NETLINK): %s", en(errno));
	addr_t a;
	memset(&a, 0, sizeof a);
	a.ss.ss_family = AF_NETLINK;
	a.len = 8;
	ob("connect=%s", C(n, &a));
}

CASE(packet_socket_connect_eopnotsupp, "connect=EOPNOTSUPP")
{
	need_root();
	new_netns(0);
	int p = socket(AF_PACKET, SOCK_DGRAM, 0);
	if (p < 0)
		skip("socket(AF_PACKET): %s", en(errno));
	addr_t a;
	memset(&a, 0, sizeof a);
	a.ss.ss_family = AF_PACKET;
	a.len = sizeof(struct sockaddr_ll);
	ob("connect=%s", C(p, &a));
}

// A raw socket has no peer port, so getpeername says ENOTCONN even after a
// successful connect (inet_getname).
CASE(raw_icmp_connect_loopback, "connect=0 peer=ENOTCONN")
{
	need_root();
	int r = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	if (r < 0)
		skip("socket(SOCK_RAW): %s", en(errno));
	addr_t a = A4("127.0.0.1", 0);
	ob("connect=%s", C(r, &a));
	ob_name("peer", r, 1, NULL);
}

// ===========================================================================
// Sends with a destination (sendto, sendmsg, sendmmsg): trapped because the
// destination is in memory, emulated from a private copy. Each case is a
// class of difference a differential fuzzer found between a native and an
// emulated run.

// smsg sends one iovec and an optional control buffer with sendmsg.
static long smsg(int fd, const addr_t *to, const void *data, size_t n, void *ctl, size_t ctllen, int flags)
{
	struct iovec iov = {(void *)data, n};
	struct msghdr mh = {0};
	if (to)
		mh.msg_name = (void *)&to->ss, mh.msg_namelen = to->len;
	mh.msg_iov = &iov, mh.msg_iovlen = 1;
	mh.msg_control = ctl, mh.msg_controllen = ctllen;
	return sendmsg(fd, &mh, flags);
}

// drain reads what is queued on fd without waiting: "none" or the byte count.
static const char *drain(int fd)
{
	static char b[1 << 16];
	long r = recv(fd, b, sizeof b, MSG_DONTWAIT);
	return r < 0 ? (errno == EAGAIN ? "none" : en(errno)) : R(r);
}

// pcred receives one message on fd and reports the SCM_CREDENTIALS with it.
static const char *pcred(int fd)
{
	char b[64], c[CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = {b, sizeof b};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c, .msg_controllen = sizeof c};
	if (recvmsg(fd, &mh, MSG_DONTWAIT) < 0)
		return en(errno);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	if (!cm || cm->cmsg_type != SCM_CREDENTIALS)
		return "nocreds";
	struct ucred u;
	memcpy(&u, CMSG_DATA(cm), sizeof u);
	char *r = buf();
	snprintf(r, 192, "pid:%s,uid:%u,gid:%u", u.pid == getpid() ? "own" : "other", u.uid, u.gid);
	return r;
}

CASE(send_unix_dgram_inet_name_einval, "sendto=EINVAL recv=none")
{
	addr_t a = A4("127.0.0.1", 9);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0)
		die("socketpair");
	ob("sendto=%s", R(sendto(sv[0], "x", 1, 0, (void *)&a.ss, a.len)));
	ob("recv=%s", drain(sv[1]));
}

// A valid path under another family: unix_validate_addr refuses the family.
CASE(send_unix_dgram_wrong_family_valid_path_einval, "sendto=EINVAL recv=none")
{
	addr_t a = AU(tpath("s"));
	int s = lsock(AF_UNIX, SOCK_DGRAM, &a, 0);
	int c = sock(AF_UNIX, SOCK_DGRAM);
	a.ss.ss_family = AF_NETLINK;
	ob("sendto=%s", R(sendto(c, "x", 1, 0, (void *)&a.ss, a.len)));
	ob("recv=%s", drain(s));
}

// SEQPACKET drops the name and sends to its peer (unix_seqpacket_sendmsg).
CASE(send_unix_seqpacket_name_ignored, "sendto=1 recv=1")
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
		die("socketpair");
	addr_t other = AU(tpath("nobody-here"));
	ob("sendto=%s", R(sendto(sv[0], "x", 1, 0, (void *)&other.ss, other.len)));
	ob("recv=%s", drain(sv[1]));
}

CASE(send_unix_stream_name_eisconn, "sendto=EISCONN recv=none")
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		die("socketpair");
	addr_t other = AU(tpath("x"));
	ob("sendto=%s", R(sendto(sv[0], "x", 1, 0, (void *)&other.ss, other.len)));
	ob("recv=%s", drain(sv[1]));
}

static void creds_case(pid_t pid, uid_t uid, gid_t gid)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0)
		die("socketpair");
	set_int(sv[1], SOL_SOCKET, SO_PASSCRED, 1);
	char c[CMSG_SPACE(sizeof(struct ucred))] = {0};
	struct cmsghdr *cm = (void *)c;
	cm->cmsg_len = CMSG_LEN(sizeof(struct ucred));
	cm->cmsg_level = SOL_SOCKET, cm->cmsg_type = SCM_CREDENTIALS;
	struct ucred u = {pid, uid, gid};
	memcpy(CMSG_DATA(cm), &u, sizeof u);
	ob("sendmsg=%s", R(smsg(sv[0], NULL, "x", 1, c, sizeof c, 0)));
	ob("recv=%s", pcred(sv[1]));
}

// A process may send its own pid, uid and gid (scm_check_creds).
CASE(send_scm_credentials_own_ids, "sendmsg=1 recv=pid:own,uid:65534,gid:65534")
{
	need_root();
	become_nobody();
	creds_case(getpid(), getuid(), getgid());
}

CASE(send_scm_credentials_other_pid_eperm, "sendmsg=EPERM recv=EAGAIN")
{
	need_root();
	become_nobody();
	creds_case(1, getuid(), getgid());
}

CASE(send_scm_credentials_other_uid_eperm, "sendmsg=EPERM recv=EAGAIN")
{
	need_root();
	become_nobody();
	creds_case(getpid(), 0, getgid());
}

CASE(send_scm_credentials_invalid_uid_einval, "sendmsg=EINVAL recv=EAGAIN")
{
	creds_case(getpid(), (uid_t)-1, getgid());
}

// Without SCM_CREDENTIALS a receiver with SO_PASSCRED gets the sender's.
CASE(send_passcred_receiver_sees_sender, "send=1 recv=pid:own,uid:0,gid:0")
{
	need_root();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0)
		die("socketpair");
	set_int(sv[1], SOL_SOCKET, SO_PASSCRED, 1);
	addr_t none = AUNNAMED();
	(void)none;
	ob("send=%s", R(smsg(sv[0], NULL, "x", 1, NULL, 0, 0)));
	ob("recv=%s", pcred(sv[1]));
}

// UDP ignores SCM_RIGHTS and SCM_CREDENTIALS, even with bad descriptors.
CASE(send_udp_ignores_scm_rights_and_credentials, "rights=1 creds=1 recv=1")
{
	addr_t a = A4("127.0.0.1", 0);
	int s = lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET, SOCK_DGRAM);
	char ctl[CMSG_SPACE(sizeof(int))] = {0};
	struct cmsghdr *cm = (void *)ctl;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	cm->cmsg_level = SOL_SOCKET, cm->cmsg_type = SCM_RIGHTS;
	int bad = 9999;
	memcpy(CMSG_DATA(cm), &bad, sizeof bad);
	ob("rights=%s", R(smsg(c, &a, "x", 1, ctl, sizeof ctl, 0)));
	char cc[CMSG_SPACE(sizeof(struct ucred))] = {0};
	cm = (void *)cc;
	cm->cmsg_len = CMSG_LEN(sizeof(struct ucred));
	cm->cmsg_level = SOL_SOCKET, cm->cmsg_type = SCM_CREDENTIALS;
	struct ucred u = {1, 0, 0};
	memcpy(CMSG_DATA(cm), &u, sizeof u);
	ob("creds=%s", R(smsg(c, &a, "x", 1, cc, sizeof cc, 0)));
	ob("recv=%s", drain(s));
}

// An SCM_RIGHTS payload that is not a whole number of ints: the partial int
// is ignored (scm_fp_copy). It once crashed the supervisor.
CASE(send_scm_rights_partial_int, "sendmsg=1 recv=1 fds=1")
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0)
		die("socketpair");
	char ctl[CMSG_SPACE(8)] = {0};
	struct cmsghdr *cm = (void *)ctl;
	cm->cmsg_len = CMSG_LEN(5);
	cm->cmsg_level = SOL_SOCKET, cm->cmsg_type = SCM_RIGHTS;
	int fd = 0;
	memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	ob("sendmsg=%s", R(smsg(sv[0], NULL, "x", 1, ctl, sizeof ctl, 0)));
	char b[4], rc[CMSG_SPACE(4 * sizeof(int))];
	struct iovec iov = {b, sizeof b};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = rc, .msg_controllen = sizeof rc};
	long r = recvmsg(sv[1], &mh, MSG_DONTWAIT);
	ob("recv=%s", R(r));
	cm = CMSG_FIRSTHDR(&mh);
	ob("fds=%d", cm && cm->cmsg_type == SCM_RIGHTS ? (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int)) : 0);
}

CASE(send_scm_rights_bad_fd_ebadf, "sendmsg=EBADF recv=none")
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0)
		die("socketpair");
	char ctl[CMSG_SPACE(2 * sizeof(int))] = {0};
	struct cmsghdr *cm = (void *)ctl;
	cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
	cm->cmsg_level = SOL_SOCKET, cm->cmsg_type = SCM_RIGHTS;
	int fds[2] = {0, 9999};
	memcpy(CMSG_DATA(cm), fds, sizeof fds);
	ob("sendmsg=%s", R(smsg(sv[0], NULL, "x", 1, ctl, sizeof ctl, 0)));
	ob("recv=%s", drain(sv[1]));
}

// A blocking fast-open sendto connects, waits for the handshake and sends.
CASE(send_tcp_fastopen_blocking_sends_all, "sendto=4 recv=4")
{
	addr_t a;
	int l = tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("sendto=%s", R(sendto(c, "data", 4, MSG_FASTOPEN, (void *)&a.ss, a.len)));
	int s = acc(l, 2000);
	if (s < 0)
		die("accept");
	wait_fd(s, POLLIN, 2000);
	ob("recv=%s", drain(s));
}

CASE(send_tcp_fastopen_blocking_refused, "sendto=ECONNREFUSED")
{
	addr_t a = closed_port(AF_INET, SOCK_STREAM);
	int c = sock(AF_INET, SOCK_STREAM);
	ob("sendto=%s", R(sendto(c, "data", 4, MSG_FASTOPEN, (void *)&a.ss, a.len)));
}

static void *slow_reader(void *p)
{
	int fd = (int)(long)p;
	static char b[1 << 16];
	long total = 0, r;
	msleep(50);
	while ((r = read(fd, b, sizeof b)) > 0)
		total += r;
	return (void *)total;
}

// A blocking stream send waits for room until everything is sent.
CASE(send_unix_stream_blocking_sends_all, "send=1048576 received=1048576")
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		die("socketpair");
	pthread_t t;
	pthread_create(&t, NULL, slow_reader, (void *)(long)sv[1]);
	char *b = calloc(1, 1 << 20);
	ob("send=%s", R(smsg(sv[0], NULL, b, 1 << 20, NULL, 0, 0)));
	close(sv[0]);
	void *total;
	pthread_join(t, &total);
	ob("received=%ld", (long)total);
}

CASE(send_tcp_blocking_sends_all, "send=4194304 received=4194304")
{
	addr_t a;
	int l = tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	if (connect(c, (void *)&a.ss, a.len) < 0)
		die("connect");
	int s = acc(l, 2000);
	pthread_t t;
	pthread_create(&t, NULL, slow_reader, (void *)(long)s);
	char *b = calloc(1, 4 << 20);
	ob("send=%s", R(smsg(c, NULL, b, 4 << 20, NULL, 0, 0)));
	close(c);
	void *total;
	pthread_join(t, &total);
	ob("received=%ld", (long)total);
}

// SEQPACKET's EPIPE raises no SIGPIPE (only streams do).
CASE(send_seqpacket_epipe_no_sigpipe, "send=EPIPE alive")
{
	signal(SIGPIPE, SIG_DFL);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
		die("socketpair");
	close(sv[1]);
	ob("send=%s", R(sendmsg(sv[0], &(struct msghdr){.msg_iov = &(struct iovec){"x", 1}, .msg_iovlen = 1}, 0)));
	ob("alive");
}

// A stream's EPIPE raises SIGPIPE before the call returns: the handler has
// run when the program sees EPIPE, with or without SA_RESTART (no restart
// after a completed call).
static void epipe_handler(int sa_flags)
{
	handle(SIGPIPE, sa_flags);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		die("socketpair");
	close(sv[1]);
	ob("send=%s", R(sendmsg(sv[0], &(struct msghdr){.msg_iov = &(struct iovec){"x", 1}, .msg_iovlen = 1}, 0)));
	ob("sigs=%s", sigcount());
}

CASE(send_stream_epipe_handler_sa_restart, "send=EPIPE sigs=1")
{
	epipe_handler(SA_RESTART);
}

CASE(send_stream_epipe_handler, "send=EPIPE sigs=1")
{
	epipe_handler(0);
}

CASE(send_stream_epipe_default_kills, "status=SIGPIPE")
{
	pid_t p = fork();
	if (p == 0) {
		signal(SIGPIPE, SIG_DFL);
		int sv[2];
		socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
		close(sv[1]);
		smsg(sv[0], NULL, "x", 1, NULL, 0, 0);
		_exit(3);
	}
	int st;
	waitpid(p, &st, 0);
	ob("status=%s", WIFSIGNALED(st) && WTERMSIG(st) == SIGPIPE ? "SIGPIPE" : "other");
}

// sendto with an address and addrlen 0: UDP refuses it (the name pointer is
// not NULL); UNIX datagram sockets take it as no name.
CASE(send_sendto_addrlen_zero, "udp=EINVAL unix=1")
{
	addr_t a = A4("127.0.0.1", 0);
	lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET, SOCK_DGRAM);
	if (connect(c, (void *)&a.ss, a.len) < 0)
		die("connect");
	ob("udp=%s", R(sendto(c, "x", 1, 0, (void *)&a.ss, 0)));
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0)
		die("socketpair");
	ob("unix=%s", R(sendto(sv[0], "x", 1, 0, (void *)&a.ss, 0)));
}

// Bit 31 of the flags is MSG_CMSG_COMPAT: sendmsg refuses it, sendto does not
// look.
CASE(send_flag_bit31, "sendto=1 sendmsg=EINVAL sendmsg_badfd=EINVAL")
{
	addr_t a = A4("127.0.0.1", 0);
	lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET, SOCK_DGRAM);
	ob("sendto=%s", R(sendto(c, "x", 1, (int)0x80000000u, (void *)&a.ss, a.len)));
	ob("sendmsg=%s", R(smsg(c, &a, "x", 1, NULL, 0, (int)0x80000000u)));
	ob("sendmsg_badfd=%s", R(smsg(9999, &a, "x", 1, NULL, 0, (int)0x80000000u)));
}

// A sendmmsg vector the kernel cannot write msg_len back to: the first
// datagram goes out, then EFAULT, and nothing more.
CASE(send_sendmmsg_readonly_vector, "sendmmsg=EFAULT received=1")
{
	addr_t a = A4("127.0.0.1", 0);
	int s = lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET, SOCK_DGRAM);
	struct mmsghdr *v = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	static struct iovec iov = {"x", 1};
	for (int i = 0; i < 3; i++)
		v[i].msg_hdr = (struct msghdr){.msg_name = &a.ss, .msg_namelen = a.len, .msg_iov = &iov, .msg_iovlen = 1};
	mprotect(v, 4096, PROT_READ);
	ob("sendmmsg=%s", R(sendmmsg(c, v, 3, 0)));
	int n = 0;
	while (recv(s, (char[4]){0}, 4, MSG_DONTWAIT) > 0)
		n++;
	ob("received=%d", n);
}

// A control buffer larger than the kernel's own small one but within
// optmem_max is taken whole: one cmsg of an unknown level, ignored by UDP.
CASE(send_large_control_buffer, "sendmsg=1 recv=1")
{
	addr_t a = A4("127.0.0.1", 0);
	int s = lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET, SOCK_DGRAM);
	size_t n = 96 << 10;
	char *ctl = calloc(1, n);
	struct cmsghdr *cm = (void *)ctl;
	cm->cmsg_len = n;
	cm->cmsg_level = 999, cm->cmsg_type = 1;
	ob("sendmsg=%s", R(smsg(c, &a, "x", 1, ctl, n, 0)));
	ob("recv=%s", drain(s));
}

// A TCP send whose second iovec is unmapped sends what it copied before the
// fault and returns that count (tcp_sendmsg drops the chunk that faulted).
CASE(send_tcp_iovec_fault_partial, "sendmsg=partial received=same")
{
	addr_t a;
	int l = tcp_listener(AF_INET, &a);
	int c = sock(AF_INET, SOCK_STREAM);
	if (connect(c, (void *)&a.ss, a.len) < 0)
		die("connect");
	int s = acc(l, 2000);
	pthread_t t;
	pthread_create(&t, NULL, slow_reader, (void *)(long)s);
	char *b = calloc(1, 300000);
	char *bad = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(bad, 4096);
	struct iovec iov[2] = {{b, 300000}, {bad, 4096}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	long r = sendmsg(c, &mh, 0);
	ob("sendmsg=%s", r > 0 && r <= 300000 ? "partial" : R(r));
	close(c);
	void *total;
	pthread_join(t, &total);
	ob("received=%s", (long)total == r ? "same" : "differs");
}

// import_iovec refuses a range outside user space (EFAULT) and a negative
// length (EINVAL, checked first), before the socket sees anything.
CASE(send_iovec_range_checks, "huge=EFAULT kernel_len0=EFAULT negative=EINVAL recv=none")
{
	addr_t a = A4("127.0.0.1", 0);
	int s = lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET, SOCK_DGRAM);
	char x[16] = {0};
	struct iovec huge[2] = {{x, 10}, {x, (size_t)1 << 62}};
	struct msghdr mh = {.msg_name = &a.ss, .msg_namelen = a.len, .msg_iov = huge, .msg_iovlen = 2};
	ob("huge=%s", R(sendmsg(c, &mh, 0)));
	struct iovec kern = {(void *)0xffff888000000000ul, 0};
	mh.msg_iov = &kern, mh.msg_iovlen = 1;
	ob("kernel_len0=%s", R(sendmsg(c, &mh, 0)));
	struct iovec neg[2] = {{(void *)0xffff888000000000ul, 1}, {x, (size_t)-1}};
	mh.msg_iov = neg, mh.msg_iovlen = 2;
	ob("negative=%s", R(sendmsg(c, &mh, 0)));
	ob("recv=%s", drain(s));
}

// The protocol's checks come before the data is read: an oversized datagram
// from an unmapped buffer is EMSGSIZE, not EFAULT.
CASE(send_udp_oversized_unmapped_emsgsize, "sendto=EMSGSIZE")
{
	addr_t a = A4("127.0.0.1", 0);
	lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET, SOCK_DGRAM);
	char *bad = mmap(0, 1 << 17, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(bad, 1 << 17);
	ob("sendto=%s", R(sendto(c, bad, 70000, 0, (void *)&a.ss, a.len)));
}

// Families a socket cannot send to are the kernel's to refuse.
CASE(send_udp4_inet6_name_eafnosupport, "sendto=EAFNOSUPPORT")
{
	addr_t a6 = A6("::1", 9);
	int c = sock(AF_INET, SOCK_DGRAM);
	ob("sendto=%s", R(sendto(c, "x", 1, 0, (void *)&a6.ss, a6.len)));
}

// copy_iovec_from_user reads the iovec array entry by entry: a negative
// length is EINVAL where it is met, before an entry it cannot read (EFAULT).
CASE(send_iovec_negative_before_unreadable_entry, "negative_first=EINVAL unreadable_second=EFAULT recv=none")
{
	addr_t a = A4("127.0.0.1", 0);
	int s = lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET, SOCK_DGRAM);
	long pg = sysconf(_SC_PAGESIZE);
	char *p = mmap(0, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || mprotect(p + pg, pg, PROT_NONE) < 0)
		die("mmap");
	struct iovec *v = (void *)(p + pg - sizeof *v); // the second entry is on the PROT_NONE page
	v->iov_base = "x", v->iov_len = (size_t)-1;
	struct msghdr mh = {.msg_name = &a.ss, .msg_namelen = a.len, .msg_iov = v, .msg_iovlen = 2};
	ob("negative_first=%s", R(sendmsg(c, &mh, 0)));
	v->iov_len = 1;
	ob("unreadable_second=%s", R(sendmsg(c, &mh, 0)));
	ob("recv=%s", drain(s));
}

// ____sys_sendmsg copies the control buffer before the protocol sees the
// message: an unreadable one is EFAULT before unix_dgram_sendmsg refuses
// MSG_OOB or looks its name up, and one larger than optmem_max is ENOBUFS.
CASE(send_control_copied_before_protocol, "oob=EFAULT missing_path=EFAULT over_optmem=ENOBUFS")
{
	int c = sock(AF_UNIX, SOCK_DGRAM);
	addr_t nx = AU(tpath("nx"));
	ob("oob=%s", R(smsg(c, &nx, "x", 1, NULL, 24, MSG_OOB)));
	ob("missing_path=%s", R(smsg(c, &nx, "x", 1, NULL, 24, 0)));
	size_t big = 16 << 20;
	char *ctl = calloc(1, big);
	ob("over_optmem=%s", R(smsg(c, &nx, "x", 1, ctl, big, 0)));
}

// A send to a destination the emulated run denies (192.0.2.123:9) that the
// kernel refuses whatever the destination gets the kernel's errno there too: udp_sendmsg's MSG_OOB and 64 KiB, the control messages
// (ip_cmsg_send: IP_TOS takes an int or a byte), the control buffer's copy,
// the socket's pending error (sock_alloc_send_pskb, after the route), the
// data's fault, more GSO segments than UDP_MAX_SEGMENTS (udp_send_skb, after
// the copy), and udpv6_sendmsg's refusal of the IPv4 way on an
// IPV6_V6ONLY socket. A route through lo to TEST-NET makes the route lookup
// succeed natively; nothing is sent.
CASE(send_denied_udp_refused_before_destination,
     "oob=EOPNOTSUPP oversize=EMSGSIZE cmsg=EINVAL control=EFAULT pending=ECONNREFUSED fault=EFAULT gso=EINVAL v6only=ENETUNREACH")
{
	new_netns(1);
	route_add("192.0.2.0", "255.255.255.0", 0);
	addr_t d = A4("192.0.2.123", 9);
	int c = sock(AF_INET, SOCK_DGRAM);
	ob("oob=%s", R(sendto(c, "x", 1, MSG_OOB, (void *)&d.ss, d.len)));
	static char big[65508];
	ob("oversize=%s", R(sendto(c, big, sizeof big, 0, (void *)&d.ss, d.len)));
	char ctl[CMSG_SPACE(8)] = {0};
	struct cmsghdr *cm = (void *)ctl;
	cm->cmsg_len = CMSG_LEN(8), cm->cmsg_level = IPPROTO_IP, cm->cmsg_type = IP_TOS;
	ob("cmsg=%s", R(smsg(c, &d, "x", 1, ctl, sizeof ctl, 0)));
	ob("control=%s", R(smsg(c, &d, "x", 1, NULL, 24, 0)));
	addr_t closed = closed_port(AF_INET, SOCK_DGRAM);
	int p = sock(AF_INET, SOCK_DGRAM);
	if (connect(p, (void *)&closed.ss, closed.len) < 0 || send(p, "x", 1, 0) != 1)
		die("udp to a closed port");
	wait_fd(p, POLLIN, 1000); // POLLERR once the ICMP error is queued
	ob("pending=%s", R(sendto(p, "x", 1, 0, (void *)&d.ss, d.len)));
	char *bad = mmap(0, 1 << 16, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(bad, 1 << 16);
	ob("fault=%s", R(sendto(c, bad, 100, 0, (void *)&d.ss, d.len)));
	char gctl[CMSG_SPACE(sizeof(uint16_t))] = {0};
	cm = (void *)gctl;
	cm->cmsg_len = CMSG_LEN(sizeof(uint16_t)), cm->cmsg_level = IPPROTO_UDP, cm->cmsg_type = 103; // SOL_UDP, UDP_SEGMENT
	*(uint16_t *)CMSG_DATA(cm) = 100;
	ob("gso=%s", R(smsg(c, &d, big, 12801, gctl, sizeof gctl, 0))); // over UDP_MAX_SEGMENTS (128)
	int c6 = socket(AF_INET6, SOCK_DGRAM, 0);
	if (c6 < 0)
		skip("no IPv6");
	set_int(c6, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	ob("v6only=%s", R(sendto(c6, "x", 1, 0, (void *)&d.ss, d.len)));
}

// tcp_v6_connect takes only AF_INET6: an IPv4 name is EINVAL (shorter than
// a sockaddr_in6) or EAFNOSUPPORT, for connect and fast open alike, before
// any destination counts (the emulated run denies this one).
CASE(tcp6_ipv4_name_refused, "connect=EINVAL connect_long=EAFNOSUPPORT fastopen=EINVAL")
{
	need_ipv6();
	addr_t d = A4("192.0.2.123", 9);
	int c = sock(AF_INET6, SOCK_STREAM);
	ob("connect=%s", C(c, &d));
	addr_t l = d;
	l.len = sizeof(struct sockaddr_in6);
	ob("connect_long=%s", C(c, &l));
	ob("fastopen=%s", R(sendto(c, "x", 1, MSG_FASTOPEN | MSG_DONTWAIT, (void *)&d.ss, d.len)));
}

// An IPV6_V6ONLY UDP socket cannot go the IPv4 way: an AF_INET name is
// EAFNOSUPPORT, an IPv4-mapped address ENETUNREACH (__ip6_datagram_connect),
// whatever the address (the emulated run denies this one).
CASE(udp6_v6only_ipv4_connect_refused, "connect=EAFNOSUPPORT mapped=ENETUNREACH")
{
	need_ipv6();
	int c = sock(AF_INET6, SOCK_DGRAM);
	set_int(c, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	addr_t d = A4("192.0.2.123", 9);
	ob("connect=%s", C(c, &d));
	addr_t m = A6("::ffff:192.0.2.123", 9);
	ob("mapped=%s", C(c, &m));
}

// sendto keeps a name pointer with addrlen 0, which udp_sendmsg refuses
// (EINVAL) instead of sending to the connected peer, also from a buffer
// that is partly unreadable (which connvisor copies in two parts).
CASE(send_sendto_addrlen_zero_partly_unreadable, "sendto=EINVAL recv=none")
{
	addr_t a = A4("127.0.0.1", 0);
	int s = lsock(AF_INET, SOCK_DGRAM, &a, 0);
	int c = sock(AF_INET, SOCK_DGRAM);
	if (connect(c, (void *)&a.ss, a.len) < 0)
		die("connect");
	long pg = sysconf(_SC_PAGESIZE);
	char *p = mmap(0, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || mprotect(p + pg, pg, PROT_NONE) < 0)
		die("mmap");
	ob("sendto=%s", R(sendto(c, p + pg - 10, 20, 0, (void *)&a.ss, 0)));
	ob("recv=%s", drain(s));
}

CASE(send_tcp_unconnected_epipe, "send=EPIPE")
{
	int c = sock(AF_INET, SOCK_STREAM);
	ob("send=%s", R(sendmsg(c, &(struct msghdr){.msg_iov = &(struct iovec){"x", 1}, .msg_iovlen = 1}, MSG_NOSIGNAL)));
}

CASE(send_o_path_fd_ebadf, "sendmsg=EBADF sendto=EBADF")
{
	int fd = open("/", O_PATH);
	ob("sendmsg=%s", R(smsg(fd, NULL, "x", 1, NULL, 0, 0)));
	ob("sendto=%s", R(sendto(fd, "x", 1, 0, NULL, 0)));
}

// A blocking sendmsg waiting for room is cut short by a signal: it returns
// what it sent (no restart, even with SA_RESTART), and the peer got exactly
// that.
static void interrupted_send(int sa_flags)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		die("socketpair");
	handle(SIGALRM, sa_flags);
	itimer(200, 0);
	char *b = calloc(1, 8 << 20);
	long r = smsg(sv[0], NULL, b, 8 << 20, NULL, 0, 0);
	ob("send=%s", r > 0 && r < (8 << 20) ? "partial" : R(r));
	ob("sigs=%s", sigcount());
	close(sv[0]);
	long total = 0, n;
	static char rb[1 << 16];
	while ((n = read(sv[1], rb, sizeof rb)) > 0)
		total += n;
	ob("received=%s", total == r ? "same" : "differs");
}

CASE(send_blocking_interrupted_sa_restart, "send=partial sigs=1 received=same")
{
	interrupted_send(SA_RESTART);
}

CASE(send_blocking_interrupted_no_restart, "send=partial sigs=1 received=same")
{
	interrupted_send(0);
}

// Blocking stream sends cut short again and again by signals (as Go's
// SIGURG preemption does) while a slow reader drains the peer: every send
// returns what it sent, and the peer gets exactly the sum, no byte twice.
struct drain {
	int fd;
	long total;
};

static void *trickle_reader(void *arg)
{
	struct drain *d = arg;
	static char rb[4096];
	long n;
	while ((n = read(d->fd, rb, sizeof rb)) > 0) {
		d->total += n;
		usleep(50);
	}
	return NULL;
}

CASE(send_blocking_signal_storm_counts_exact, "sent=all sigs=many received=same")
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		die("socketpair");
	struct drain d = {sv[1], 0};
	pthread_t t;
	if (pthread_create(&t, NULL, trickle_reader, &d) != 0)
		die("pthread_create");
	handle(SIGALRM, SA_RESTART);
	itimer(1, 1);
	static char b[1 << 16];
	long want = 8L << 20, sent = 0;
	while (sent < want) {
		long r = send(sv[0], b, sizeof b < (size_t)(want - sent) ? sizeof b : (size_t)(want - sent), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		sent += r;
	}
	itimer(0, 0);
	ob("sent=%s", sent == want ? "all" : "short");
	ob("sigs=%s", sigcount());
	close(sv[0]);
	pthread_join(t, NULL);
	ob("received=%s", d.total == sent ? "same" : "differs");
}

// ===========================================================================
// The runner.

// exec_child is the re-executed program of tcp4_connect_in_exec_child.
static int exec_child(int argc, char **argv)
{
	if (argc != 4 || strcmp(argv[2], "tcp4"))
		return 2;
	addr_t a = A4("127.0.0.1", atoi(argv[3]));
	int c = socket(AF_INET, SOCK_STREAM, 0);
	return connect(c, (void *)&a.ss, a.len) < 0 ? errno : 0;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	remove(p);
	return 0;
}

static int run_case(const struct tcase *t)
{
	memset(S, 0, sizeof *S);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		setpgid(0, 0);
		signal(SIGPIPE, SIG_IGN);
		t->fn();
		_exit(0);
	}
	setpgid(pid, pid);
	int timedout = 0, st = 0;
	long deadline = now_ms() + CASE_TIMEOUT_MS;
	int pfd = syscall(SYS_pidfd_open, pid, 0);
	for (;;) {
		int r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		long left = deadline - now_ms();
		if (left <= 0) {
			timedout = 1;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		if (pfd >= 0) {
			struct pollfd p = {pfd, POLLIN, 0};
			poll(&p, 1, left);
		} else
			msleep(left < 5 ? left : 5);
	}
	if (pfd >= 0)
		close(pfd);
	kill(-pid, SIGKILL); // helpers the case left behind
	if (S->tmpdir[0])
		nftw(S->tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

	const char *obs = S->obs;
	int ok = 1;
	if (timedout) {
		printf("CASE %s: %s%sTIMEOUT\n", t->name, obs, obs[0] ? " " : "");
		ok = 0;
	} else if (!strncmp(obs, "SKIP ", 5)) {
		printf("CASE %s: %s\n", t->name, obs);
	} else if (WIFSIGNALED(st)) {
		printf("CASE %s: %s%sCRASH %s\n", t->name, obs, obs[0] ? " " : "",
		       sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?");
		ok = 0;
	} else if (!strcmp(obs, t->expect)) {
		printf("CASE %s: %s | ok\n", t->name, obs);
	} else {
		printf("CASE %s: %s | MISMATCH expected %s got %s\n", t->name, obs, t->expect, obs);
		ok = 0;
	}
	fflush(stdout);
	return ok;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "-x"))
		return exec_child(argc, argv);
	if (argc == 2 && !strcmp(argv[1], "-l")) {
		for (int i = 0; i < ncases; i++)
			printf("%s\n", cases[i].name);
		return 0;
	}
	S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (S == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		int found = 0;
		for (int j = 0; j < ncases; j++)
			found |= !strcmp(argv[i], cases[j].name);
		if (!found) {
			fprintf(stderr, "cases: no case named %s (cases -l lists them)\n", argv[i]);
			return 2;
		}
	}
	int bad = 0;
	for (int j = 0; j < ncases; j++) {
		int want = argc == 1;
		for (int i = 1; i < argc; i++)
			want |= !strcmp(argv[i], cases[j].name);
		if (want)
			bad += !run_case(&cases[j]);
	}
	return bad ? 1 : 0;
}

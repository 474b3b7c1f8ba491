// connector is a target for connvisor's integration tests: it connects to
// the destinations it is given and prints, one line each, what it called
// and what it saw, so a test can run it natively and wrapped and compare.
//
// Usage: connector [OPTIONS] SPEC...
//   SPEC is a pair of arguments: tcp4 ADDR:PORT, tcp6 [ADDR]:PORT,
//   udp4 ADDR:PORT, udp6 [ADDR]:PORT, unix /path, unix @abstract.
// Options (before the specs):
//   --threads N      connect from N threads that are not the leader
//   --fork           the connects are made by a grandchild whose parent has
//                    already exited; the leader waits for it through a pipe
//   --exec           exec this program again with the remaining arguments
//   --exec-into P    exec program P with the remaining arguments
//   --nonblock       nonblocking connect: EINPROGRESS, poll, SO_ERROR
//   --bench N        time N connects of each spec (a datagram socket reconnects)
//   --wait-signal    print "ready", wait for SIGTERM or SIGINT, exit 100+sig
//   --exit N         exit with status N
//   --signal N       kill itself with signal N at the end
//
// Output lines:
//   connect SPEC pid=P tid=T leader=yes|no: ok|ERRNO
//   exchange SPEC: pong|ERRNO|EOF     (stream and datagram: one line each way)
//   bench SPEC n=N ns_per_connect=X result=ok|ERRNO
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int opt_threads, opt_nonblock, opt_fork, opt_bench, opt_wait_signal;
static int opt_exit = 0, opt_signal = 0;

// say writes one whole line with a single write, so lines of threads and
// processes sharing the pipe never interleave.
static void say(const char *fmt, ...) {
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0) return;
	if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
	buf[n++] = '\n';
	if (write(1, buf, n) < 0) _exit(99);
}

static const char *errname(int e) {
	if (e == 0) return "ok";
	const char *s = strerrorname_np(e);
	return s ? s : "EUNKNOWN";
}

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

struct spec {
	const char *kind, *where;
	int family, type;
	struct sockaddr_storage sa;
	socklen_t len;
};

static int parse_spec(const char *kind, const char *where, struct spec *s) {
	memset(s, 0, sizeof *s);
	s->kind = kind;
	s->where = where;
	if (!strcmp(kind, "unix")) {
		struct sockaddr_un *un = (struct sockaddr_un *)&s->sa;
		size_t n = strlen(where);
		if (n == 0 || n >= sizeof un->sun_path) return -1;
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, where, n);
		if (where[0] == '@') un->sun_path[0] = 0; // abstract: no trailing NUL
		s->len = offsetof(struct sockaddr_un, sun_path) + n + (where[0] == '@' ? 0 : 1);
		s->family = AF_UNIX;
		s->type = SOCK_STREAM;
		return 0;
	}
	if (!strcmp(kind, "tcp4") || !strcmp(kind, "tcp6")) s->type = SOCK_STREAM;
	else if (!strcmp(kind, "udp4") || !strcmp(kind, "udp6")) s->type = SOCK_DGRAM;
	else return -1;
	char host[128];
	const char *colon = strrchr(where, ':');
	if (!colon || colon - where >= (long)sizeof host) return -1;
	memcpy(host, where, colon - where);
	host[colon - where] = 0;
	int port = atoi(colon + 1);
	if (kind[3] == '4') {
		struct sockaddr_in *in = (struct sockaddr_in *)&s->sa;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		if (inet_pton(AF_INET, host, &in->sin_addr) != 1) return -1;
		s->len = sizeof *in;
		s->family = AF_INET;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&s->sa;
		char *h = host;
		size_t n = strlen(h);
		if (n >= 2 && h[0] == '[' && h[n - 1] == ']') { h[n - 1] = 0; h++; }
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, h, &in6->sin6_addr) != 1) return -1;
		s->len = sizeof *in6;
		s->family = AF_INET6;
	}
	return 0;
}

// do_connect returns 0 or the errno the program saw.
static int do_connect(int fd, const struct spec *s) {
	if (!opt_nonblock) {
		int r;
		do r = connect(fd, (const struct sockaddr *)&s->sa, s->len);
		while (r < 0 && errno == EINTR);
		return r < 0 ? errno : 0;
	}
	int flags = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	int err = 0;
	if (connect(fd, (const struct sockaddr *)&s->sa, s->len) < 0) {
		err = errno;
		if (err == EINPROGRESS) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			socklen_t l = sizeof err;
			if (poll(&p, 1, 5000) != 1) err = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0) err = errno;
		}
	}
	// The exchange that follows is blocking.
	fcntl(fd, F_SETFL, flags);
	return err;
}

// exchange sends one line and reads the server's answer, proving that the
// connection reaches the server.
static void exchange(int fd, const struct spec *s) {
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	char line[64];
	int n = snprintf(line, sizeof line, "ping pid=%d tid=%d\n", getpid(), gettid_());
	if (send(fd, line, n, MSG_NOSIGNAL) != n) {
		say("exchange %s %s: %s", s->kind, s->where, errname(errno));
		return;
	}
	char buf[64];
	ssize_t got = 0;
	while (got < (ssize_t)sizeof buf - 1) {
		ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
		if (r < 0) {
			if (errno == EINTR) continue;
			say("exchange %s %s: %s", s->kind, s->where, errname(errno));
			return;
		}
		if (r == 0) break;
		got += r;
		if (s->type == SOCK_DGRAM || memchr(buf, '\n', got)) break;
	}
	buf[got] = 0;
	char *nl = strchr(buf, '\n');
	if (nl) *nl = 0;
	say("exchange %s %s: %s", s->kind, s->where, got ? buf : "EOF");
}

static void connect_one(const struct spec *s) {
	int fd = socket(s->family, s->type | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		say("socket %s %s: %s", s->kind, s->where, errname(errno));
		return;
	}
	int e = do_connect(fd, s);
	say("connect %s %s pid=%d tid=%d leader=%s: %s", s->kind, s->where, getpid(), gettid_(),
	    getpid() == gettid_() ? "yes" : "no", errname(e));
	if (e == 0) exchange(fd, s);
	close(fd);
}

// bench times opt_bench connects. A datagram socket may connect again, so
// one socket serves them all; a stream socket connects once, so each round
// is socket, connect, close (timed whole).
static void bench(const struct spec *s) {
	int fd = socket(s->family, s->type | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		say("socket %s %s: %s", s->kind, s->where, errname(errno));
		return;
	}
	int e = 0;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < opt_bench; i++) {
		if (s->type == SOCK_STREAM && i > 0) {
			close(fd);
			fd = socket(s->family, s->type | SOCK_CLOEXEC, 0);
		}
		if (connect(fd, (const struct sockaddr *)&s->sa, s->len) < 0) e = errno;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	long long ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
	say("bench %s %s n=%d ns_per_connect=%lld result=%s", s->kind, s->where, opt_bench,
	    ns / opt_bench, errname(e));
	close(fd);
}

struct thread_arg {
	struct spec *specs;
	int n;
};

static void *thread_main(void *p) {
	struct thread_arg *a = p;
	for (int i = 0; i < a->n; i++) connect_one(&a->specs[i]);
	return NULL;
}

static void run_specs(struct spec *specs, int n) {
	if (opt_bench) {
		for (int i = 0; i < n; i++) bench(&specs[i]);
		return;
	}
	if (opt_threads <= 0) {
		for (int i = 0; i < n; i++) connect_one(&specs[i]);
		return;
	}
	pthread_t th[64];
	struct thread_arg a = {specs, n};
	int k = opt_threads > 64 ? 64 : opt_threads;
	for (int i = 0; i < k; i++)
		if (pthread_create(&th[i], NULL, thread_main, &a) != 0) {
			say("pthread_create: failed");
			exit(98);
		}
	for (int i = 0; i < k; i++) pthread_join(th[i], NULL);
}

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { got_signal = sig; }

int main(int argc, char **argv) {
	int i = 1;
	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		const char *o = argv[i];
		if (!strcmp(o, "--threads") && i + 1 < argc) opt_threads = atoi(argv[++i]);
		else if (!strcmp(o, "--nonblock")) opt_nonblock = 1;
		else if (!strcmp(o, "--fork")) opt_fork = 1;
		else if (!strcmp(o, "--bench") && i + 1 < argc) opt_bench = atoi(argv[++i]);
		else if (!strcmp(o, "--wait-signal")) opt_wait_signal = 1;
		else if (!strcmp(o, "--exit") && i + 1 < argc) opt_exit = atoi(argv[++i]);
		else if (!strcmp(o, "--signal") && i + 1 < argc) opt_signal = atoi(argv[++i]);
		else if (!strcmp(o, "--exec") || (!strcmp(o, "--exec-into") && i + 1 < argc)) {
			const char *prog = !strcmp(o, "--exec") ? "/proc/self/exe" : argv[++i];
			// argv[i] becomes the new program's argv[0].
			argv[i] = (char *)prog;
			say("exec %s pid=%d", prog, getpid());
			execv(prog, &argv[i]);
			say("exec %s: %s", prog, errname(errno));
			return 97;
		} else {
			fprintf(stderr, "connector: unknown option %s\n", o);
			return 96;
		}
	}
	if ((argc - i) % 2 != 0) {
		fprintf(stderr, "connector: specs are pairs: KIND ADDRESS\n");
		return 96;
	}
	int n = (argc - i) / 2;
	struct spec *specs = calloc(n ? n : 1, sizeof *specs);
	for (int k = 0; k < n; k++)
		if (parse_spec(argv[i + 2 * k], argv[i + 2 * k + 1], &specs[k]) < 0) {
			fprintf(stderr, "connector: bad spec %s %s\n", argv[i + 2 * k], argv[i + 2 * k + 1]);
			return 96;
		}

	if (opt_wait_signal) {
		struct sigaction sa = {.sa_handler = on_signal};
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
		say("ready pid=%d", getpid());
		while (!got_signal) pause();
		say("signal %d", (int)got_signal);
		return 100 + got_signal;
	}

	if (opt_fork) {
		int p[2];
		if (pipe(p) < 0) return 95;
		pid_t child = fork();
		if (child < 0) return 95;
		if (child == 0) {
			pid_t grand = fork();
			if (grand < 0) _exit(95);
			if (grand == 0) {
				// The grandchild outlives its parent: connvisor must keep
				// supervising an orphan that was reparented.
				close(p[0]);
				usleep(50000);
				say("grandchild pid=%d ppid=%d", getpid(), getppid());
				run_specs(specs, n);
				_exit(0);
			}
			_exit(0);
		}
		close(p[1]);
		waitpid(child, NULL, 0);
		char c;
		while (read(p[0], &c, 1) < 0 && errno == EINTR) {
		}
	} else {
		run_specs(specs, n);
	}
	if (opt_signal) {
		signal(opt_signal, SIG_DFL);
		kill(getpid(), opt_signal);
		pause();
	}
	return opt_exit;
}

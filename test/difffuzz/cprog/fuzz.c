/*
 * fuzz.c: the target of connvisor's differential fuzzer (test/difffuzz).
 *
 *   fuzz [-u] [-d inet|netlink] [-p N] [-s START] SEED COUNT
 *
 * Makes COUNT random but deterministic connect, sendto, sendmsg and
 * sendmmsg calls (a splitmix64 stream seeded with SEED) and prints one line
 * per call: what the call was, what it returned, and what the program's own
 * receivers got. Run natively and under connvisor, the two outputs must be
 * the same line for line; nothing printed depends on fd numbers, ports,
 * pids or addresses that change from run to run.
 *
 * Every destination is the program's own: loopback sockets it bound, UNIX
 * sockets in a private directory it created, closed loopback ports. Every
 * call is nonblocking or bounded by SO_SNDTIMEO, and an alarm ends a call
 * that hangs anyway (the run then stops with "HANG").
 *
 *   -u          drop to nobody (65534) once the receivers are set up
 *   -d KIND     what the deny probe connects to: inet, 127.0.0.99:9 over
 *               TCP (the test's policy denies it; natively ECONNREFUSED),
 *               or netlink, a netlink socket to a user port id (denied by
 *               the embedded default policy; natively it connects)
 *   -p N        liveness probes every N calls (default 50)
 *   -s START    make calls START..START+COUNT-1: every call draws from its
 *               own stream, so `-s 1234 SEED 1` replays call 1234 alone
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/netlink.h>
#include <linux/udp.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

#define PAGE 4096
#define DATA_SIZE (4u << 20)
#define ARENA_SIZE (24u << 20)
#define NGUARD 8
#define NRO 4
#define HANG_SECONDS 20

/* ---- deterministic randomness: splitmix64 ---- */
static uint64_t rng;
static uint64_t next64(void) {
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}
static uint32_t rnd(uint32_t n) { return n ? (uint32_t)(next64() % n) : 0; }
static int chance(int percent) { return rnd(100) < (uint32_t)percent; }

/* ---- the line being built ---- */
static char line[16384];
static size_t linelen;
static void out(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line + linelen, sizeof line - linelen, fmt, ap);
	va_end(ap);
	if (n > 0)
		linelen = linelen + (size_t)n < sizeof line ? linelen + (size_t)n : sizeof line - 1;
}

static const char *ename(int e) {
	static char buf[32];
	switch (e) {
#define E(x) case x: return #x;
	E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(EBADF) E(EAGAIN)
	E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(ENODEV) E(ENOTDIR) E(EISDIR)
	E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(EFBIG) E(ENOSPC) E(ESPIPE) E(EROFS)
	E(EPIPE) E(ERANGE) E(ENOSYS) E(ENAMETOOLONG) E(ELOOP) E(ENOTSOCK) E(EDESTADDRREQ)
	E(EMSGSIZE) E(EPROTOTYPE) E(ENOPROTOOPT) E(EPROTONOSUPPORT) E(EOPNOTSUPP)
	E(EPFNOSUPPORT) E(EAFNOSUPPORT) E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETDOWN)
	E(ENETUNREACH) E(ECONNABORTED) E(ECONNRESET) E(ENOBUFS) E(EISCONN) E(ENOTCONN)
	E(ETIMEDOUT) E(ECONNREFUSED) E(EHOSTUNREACH) E(EALREADY) E(EINPROGRESS)
	E(ETOOMANYREFS) E(EBADFD) E(EOVERFLOW)
#undef E
	case 0: return "0";
	}
	snprintf(buf, sizeof buf, "E%d", e);
	return buf;
}

static void die(const char *what) {
	fprintf(stderr, "fuzz: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* ---- memory: data, an arena, guard pages, read-only pages ---- */
static unsigned char *data;  /* DATA_SIZE random bytes */
static unsigned char *arena; /* per-call bump allocation */
static size_t arena_used;
static unsigned char *guard[NGUARD]; /* page RW, then a PROT_NONE page */
static int guard_used;
static unsigned char *ro[NRO]; /* 2 pages each, read-only while a call runs */
static int ro_used;

#define UNMAPPED ((uint64_t)0x1000)             /* below mmap_min_addr */
#define KERNEL_ADDR ((uint64_t)0xffff888000000000ull)
#define NONCANON ((uint64_t)0x0000800000000000ull)

static void *alloc(size_t n) {
	size_t at = (arena_used + 15) & ~(size_t)15;
	if (at + n > ARENA_SIZE) {
		fprintf(stderr, "fuzz: arena exhausted\n");
		exit(2);
	}
	arena_used = at + n;
	return arena + at;
}

enum { P_NORMAL, P_STRADDLE, P_RO, P_NULL, P_UNMAPPED, P_KERNEL, P_NONCANON };
static const char *pname[] = {"", "straddle", "ro", "null", "unmapped", "kernel", "noncanon"};

/* place copies len bytes of src where the placement says and returns the
 * address the call gets. A straddling copy keeps the first part readable
 * and puts the rest on a PROT_NONE page; a read-only copy is writable
 * until protect_ro() runs just before the call. */
static uint64_t place(const void *src, size_t len, int how) {
	switch (how) {
	case P_STRADDLE:
		if (guard_used < NGUARD && len > 0) {
			size_t keep = len > 1 ? 1 + rnd((uint32_t)(len < PAGE ? len - 1 : PAGE - 1)) : 0;
			unsigned char *p = guard[guard_used++] + PAGE - keep;
			memcpy(p, src, keep);
			return (uint64_t)(uintptr_t)p;
		}
		break;
	case P_RO:
		if (ro_used < NRO && len <= 2 * PAGE) {
			unsigned char *p = ro[ro_used++];
			memcpy(p, src, len);
			return (uint64_t)(uintptr_t)p;
		}
		break;
	case P_NULL: return 0;
	case P_UNMAPPED: return UNMAPPED;
	case P_KERNEL: return KERNEL_ADDR;
	case P_NONCANON: return NONCANON;
	}
	void *p = alloc(len ? len : 1);
	memcpy(p, src, len);
	return (uint64_t)(uintptr_t)p;
}

static void protect_ro(int prot) {
	for (int i = 0; i < ro_used; i++)
		if (mprotect(ro[i], 2 * PAGE, prot))
			die("mprotect");
}

static int pick_place(int normal_percent) {
	if (chance(normal_percent))
		return P_NORMAL;
	static const int odd[] = {P_STRADDLE, P_STRADDLE, P_RO, P_NULL, P_UNMAPPED, P_KERNEL, P_NONCANON};
	return odd[rnd(sizeof odd / sizeof odd[0])];
}

/* ---- the program's own endpoints ---- */
static char dir[64];
static int pid_self;
static uint16_t port_u4, port_u6, port_t4, port_t6;
static char abs_name[64];
static size_t abs_len;
static int r_u4, r_u6, r_ud, r_ua, l_t4, l_t6, l_us, l_uq;
static int x_u4, x_u6;   /* TCP sockets holding the UDP receivers' ports */
static int r_t4u, r_t6u; /* UDP sockets holding the TCP listeners' ports */
static int fd_pipe_r, fd_pipe_w, fd_file, fd_opath, fd_udp, fd_unix, fd_closed;
static const char *deny_kind = "inet";

static void set_int(int fd, int level, int opt, int v) {
	if (setsockopt(fd, level, opt, &v, sizeof v))
		die("setsockopt");
}

/* try_int sets an option a program might set; a refusal is part of the
 * line (the kernel's, natively and wrapped alike). */
static void try_int(int fd, int level, int opt, int v) {
	if (setsockopt(fd, level, opt, &v, sizeof v))
		out("-%s", ename(errno));
}

static struct sockaddr_in in4(const char *ip4, uint16_t port) {
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (inet_pton(AF_INET, ip4, &a.sin_addr) != 1)
		abort();
	return a;
}

static struct sockaddr_in6 in6_loop(uint16_t port) {
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	a.sin6_addr.s6_addr[15] = 1;
	return a;
}

static struct sockaddr_in6 in6_mapped(uint16_t port) {
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	a.sin6_addr.s6_addr[10] = 0xff;
	a.sin6_addr.s6_addr[11] = 0xff;
	a.sin6_addr.s6_addr[12] = 127;
	a.sin6_addr.s6_addr[15] = 1;
	return a;
}

static uint16_t bound_port(int fd) {
	struct sockaddr_storage ss;
	socklen_t l = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &l))
		die("getsockname");
	return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
	                                     : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int bind_un(int type, const char *name, int passcred) {
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket unix");
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	socklen_t len;
	if (name[0] == '@') {
		memcpy(a.sun_path, abs_name, abs_len);
		len = offsetof(struct sockaddr_un, sun_path) + abs_len;
	} else {
		strcpy(a.sun_path, name);
		len = sizeof a;
	}
	if (bind(fd, (struct sockaddr *)&a, len))
		die("bind unix");
	if (name[0] != '@')
		chmod(name, 0777);
	if (passcred)
		set_int(fd, SOL_SOCKET, SO_PASSCRED, 1);
	if (type != SOCK_DGRAM && listen(fd, 256))
		die("listen unix");
	return fd;
}

/* bound_pair binds a socket of type on the loopback address of family,
 * listening if it is a stream, and *other to the same port number in the
 * other protocol on [::] (dual stack), retrying with another port until
 * both are free. */
static int bound_pair(int family, int type, int *other) {
	int otype = type == SOCK_DGRAM ? SOCK_STREAM : SOCK_DGRAM;
	for (int try = 0; try < 200; try++) {
		int fd = socket(family, type | SOCK_CLOEXEC | (type == SOCK_STREAM ? SOCK_NONBLOCK : 0), 0);
		struct sockaddr_in a4 = in4("127.0.0.1", 0);
		struct sockaddr_in6 a6 = in6_loop(0);
		int r = family == AF_INET ? bind(fd, (struct sockaddr *)&a4, sizeof a4)
		                          : bind(fd, (struct sockaddr *)&a6, sizeof a6);
		if (fd < 0 || r || (type == SOCK_STREAM && listen(fd, 256)))
			die("bind a receiver");
		struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_port = htons(bound_port(fd))};
		int o = socket(AF_INET6, otype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		int zero = 0;
		if (o < 0 || setsockopt(o, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero))
			die("reserve a port");
		if (bind(o, (struct sockaddr *)&any, sizeof any) == 0) {
			*other = o;
			return fd;
		}
		close(o);
		close(fd);
	}
	fprintf(stderr, "fuzz: no port free in both protocols\n");
	exit(2);
}

static unsigned char *guarded(size_t n) {
	unsigned char *p = mmap(NULL, n + PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || mprotect(p + n, PAGE, PROT_NONE))
		die("mmap");
	return p;
}

static void setup(void) {
	pid_self = getpid();
	strcpy(dir, "/tmp/difffuzz-XXXXXX");
	if (!mkdtemp(dir))
		die("mkdtemp");
	chmod(dir, 0777);
	if (chdir(dir))
		die("chdir");
	snprintf(abs_name, sizeof abs_name, "%cconnvisor-difffuzz-%010d", 0, pid_self);
	abs_len = 1 + strlen(abs_name + 1);

	/* Each port of the program's is its own in both protocols and on
	 * every address (a socket of the other protocol bound to [::]:port,
	 * dual stack): a concurrent run's listener never answers for one. */
	r_u4 = bound_pair(AF_INET, SOCK_DGRAM, &x_u4);
	set_int(r_u4, IPPROTO_IP, IP_RECVTOS, 1);
	port_u4 = bound_port(r_u4);
	r_u6 = bound_pair(AF_INET6, SOCK_DGRAM, &x_u6);
	set_int(r_u6, IPPROTO_IPV6, IPV6_RECVTCLASS, 1);
	port_u6 = bound_port(r_u6);
	l_t4 = bound_pair(AF_INET, SOCK_STREAM, &r_t4u);
	port_t4 = bound_port(l_t4);
	l_t6 = bound_pair(AF_INET6, SOCK_STREAM, &r_t6u);
	port_t6 = bound_port(l_t6);
	r_ud = bind_un(SOCK_DGRAM, "d", 1);
	r_ua = bind_un(SOCK_DGRAM, "@", 1);
	l_us = bind_un(SOCK_STREAM, "s", 1);
	l_uq = bind_un(SOCK_SEQPACKET, "q", 1);
	fcntl(l_us, F_SETFL, O_NONBLOCK);
	fcntl(l_uq, F_SETFL, O_NONBLOCK);

	/* Descriptors that ride in SCM_RIGHTS. */
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		die("pipe");
	fd_pipe_r = p[0];
	fd_pipe_w = p[1];
	fd_file = open("f", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	fd_opath = open(".", O_PATH | O_CLOEXEC);
	fd_udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	fd_unix = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	fd_closed = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd_file < 0 || fd_opath < 0 || fd_udp < 0 || fd_unix < 0 || fd_closed < 0)
		die("fd pool");
	close(fd_closed);

	/* Every region ends with a PROT_NONE page: a length that runs past
	 * it faults there, whatever the address space holds next (which
	 * differs from run to run). */
	data = guarded(DATA_SIZE);
	arena = guarded(ARENA_SIZE);
	for (size_t i = 0; i < DATA_SIZE; i += 8) {
		uint64_t v = next64();
		memcpy(data + i, &v, 8);
	}
	for (int i = 0; i < NGUARD; i++) {
		guard[i] = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (guard[i] == MAP_FAILED || mprotect(guard[i] + PAGE, PAGE, PROT_NONE))
			die("guard page");
	}
	for (int i = 0; i < NRO; i++) {
		ro[i] = guarded(2 * PAGE);
	}
}

/* ---- receiving: what the program's own sockets got ---- */
static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

struct rx {
	int msgs;
	long bytes;
	uint64_t hash;
	int fds;
	char fdtypes[32];
	int creds;
	char cred[64];
	int credvary;
	int tos;
	int stream; /* bytes without boundaries: how many reads is timing */
};

static char fdtype(int fd) {
	struct stat st;
	if (fstat(fd, &st))
		return '?';
	if (S_ISSOCK(st.st_mode))
		return 's';
	if (S_ISFIFO(st.st_mode))
		return 'p';
	if (S_ISREG(st.st_mode))
		return 'f';
	if (S_ISDIR(st.st_mode))
		return 'd';
	return 'o';
}

/* drain reads everything queued on fd without blocking. A connected
 * socket's 0 is its end (a zero-length SEQPACKET record reads the same,
 * and ends the drain too); stream says the bytes have no boundaries. */
static void drain(int fd, struct rx *r, int stream, int connected) {
	static unsigned char buf[1 << 17];
	static unsigned char cbuf[8192];
	if (!r->hash)
		r->hash = 0xcbf29ce484222325ull;
	r->stream |= stream;
	for (;;) {
		struct iovec iov = {buf, sizeof buf};
		struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
		ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0)
			return; /* EAGAIN: all read; or an error the next call shows */
		int rights = 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
			rights |= c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS;
		/* The end of a connection reads 0, with credentials when they
		 * are passed; a SEQPACKET record of 0 bytes and no descriptors
		 * reads the same and ends the drain too (deterministically). */
		if (n == 0 && connected && !rights)
			return;
		r->msgs++;
		r->bytes += n;
		if (!stream) {
			uint64_t l = (uint64_t)n;
			r->hash = fnv(r->hash, (unsigned char *)&l, sizeof l);
		}
		r->hash = fnv(r->hash, buf, (size_t)n);
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
				int *fds = (int *)CMSG_DATA(c);
				for (int i = 0; i < k; i++) {
					if (r->fds < (int)sizeof r->fdtypes - 1)
						r->fdtypes[r->fds] = fdtype(fds[i]);
					r->fds++;
					close(fds[i]);
				}
			} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
				struct ucred u;
				memcpy(&u, CMSG_DATA(c), sizeof u);
				char s[64];
				snprintf(s, sizeof s, "%s/%u/%u",
				         u.pid == pid_self ? "self" : u.pid == 0 ? "0" : u.pid == 1 ? "1" : "other",
				         u.uid, u.gid);
				if (r->creds && strcmp(s, r->cred))
					r->credvary = 1;
				strcpy(r->cred, s);
				r->creds++;
			} else if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) ||
			           (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS)) {
				int v = c->cmsg_level == IPPROTO_IP ? *(unsigned char *)CMSG_DATA(c) : *(int *)CMSG_DATA(c);
				if (v)
					r->tos = v;
			}
		}
		if (m.msg_flags & MSG_CTRUNC)
			r->credvary |= 2;
	}
}

static void show(const char *name, struct rx *r) {
	if (!r->msgs && !r->fds && !r->creds)
		return;
	out(" %s[", name);
	if (!r->stream)
		out("n=%d ", r->msgs);
	out("b=%ld h=%08x", r->bytes, (unsigned)(r->hash ^ (r->hash >> 32)));
	if (r->fds)
		out(" fds=%d:%s", r->fds, r->fdtypes);
	if (r->creds)
		out(" cred=%d:%s%s", r->creds, r->cred, r->credvary & 1 ? "*" : "");
	if (r->credvary & 2)
		out(" ctrunc");
	if (r->tos)
		out(" tos=%d", r->tos);
	out("]");
}

/* Connections made to the listeners, accepted and read after each call. */
#define MAXPEERS 64
static int peers[MAXPEERS];
static int peerstream[MAXPEERS]; /* 0 for SEQPACKET: records, not bytes */
static int npeers;

static void accept_all(int l) {
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0)
			return;
		if (npeers < MAXPEERS) {
			peerstream[npeers] = l != l_uq;
			peers[npeers++] = c;
		} else {
			close(c);
		}
	}
}

/* ---- the sockets a call is made on ---- */
enum {
	K_UDP4, K_UDP4C, K_UDP6, K_UDP6C, K_UDP4REFUSED,
	K_UDG, K_UDGC, K_UDGPAIR, K_UDGABSC,
	K_UST, K_USTPAIR, K_USTUN, K_USTGONE,
	K_USQ, K_USQPAIR, K_USQUN, K_USQGONE,
	K_TCP4C, K_TCP4, K_TCP6C, K_TCP6,
	K_CLOSED, K_PIPE, K_OPATH, K_FILE, K_BADNUM,
	NKINDS
};
static const char *kname[] = {
	"udp4", "udp4c", "udp6", "udp6c", "udp4refused",
	"udg", "udgc", "udgpair", "udgabsc",
	"ust", "ustpair", "ustun", "ustgone",
	"usq", "usqpair", "usqun", "usqgone",
	"tcp4c", "tcp4", "tcp6c", "tcp6",
	"closed", "pipe", "opath", "file", "badnum",
};
static const int kweight[NKINDS] = {
	10, 8, 6, 5, 2,
	6, 5, 5, 2,
	6, 4, 2, 2,
	5, 4, 2, 2,
	6, 5, 3, 3,
	1, 1, 1, 1, 1,
};

struct sender {
	int kind;
	int fd;   /* what the call names */
	int own;  /* to close afterwards, -1 if none */
	int own2; /* a pipe's other end */
	int peer; /* the other end of a socketpair, -1 if none */
};

static int sock(int domain, int type) {
	int fd = socket(domain, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	return fd;
}

static int setup_connect(int fd, const void *a, socklen_t len) {
	if (connect(fd, a, len) == 0)
		return 0;
	out(" SETUP-CONNECT-%s", ename(errno));
	return -1;
}

static struct sockaddr_un un_addr(const char *path, socklen_t *len) {
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (path[0] == '@') {
		memcpy(a.sun_path, abs_name, abs_len);
		*len = offsetof(struct sockaddr_un, sun_path) + abs_len;
	} else {
		strcpy(a.sun_path, path);
		*len = offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
	}
	return a;
}

static void make_sender(struct sender *s) {
	int total = 0;
	for (int k = 0; k < NKINDS; k++)
		total += kweight[k];
	int r = (int)rnd((uint32_t)total), k = 0;
	while (r >= kweight[k])
		r -= kweight[k++];
	s->kind = k;
	s->own = s->own2 = s->peer = -1;
	out(" %s", kname[k]);
	struct sockaddr_in a4;
	struct sockaddr_in6 a6;
	struct sockaddr_un au;
	socklen_t ul;
	int sv[2];
	switch (k) {
	case K_UDP4: s->own = sock(AF_INET, SOCK_DGRAM); break;
	case K_UDP4C:
		s->own = sock(AF_INET, SOCK_DGRAM);
		a4 = in4("127.0.0.1", port_u4);
		setup_connect(s->own, &a4, sizeof a4);
		break;
	case K_UDP6:
		s->own = sock(AF_INET6, SOCK_DGRAM);
		if (chance(20)) {
			out(" v6only");
			try_int(s->own, IPPROTO_IPV6, IPV6_V6ONLY, 1);
		}
		break;
	case K_UDP6C:
		s->own = sock(AF_INET6, SOCK_DGRAM);
		a6 = in6_loop(port_u6);
		setup_connect(s->own, &a6, sizeof a6);
		break;
	case K_UDP4REFUSED: {
		/* Connected to a closed port, with the ICMP error pending. */
		s->own = sock(AF_INET, SOCK_DGRAM);
		a4 = in4("127.0.0.1", 1);
		setup_connect(s->own, &a4, sizeof a4);
		if (write(s->own, "x", 1) != 1)
			out(" SETUP-WRITE-%s", ename(errno));
		break;
	}
	case K_UDG: s->own = sock(AF_UNIX, SOCK_DGRAM); break;
	case K_UDGC:
		s->own = sock(AF_UNIX, SOCK_DGRAM);
		au = un_addr("d", &ul);
		setup_connect(s->own, &au, ul);
		break;
	case K_UDGABSC:
		s->own = sock(AF_UNIX, SOCK_DGRAM);
		au = un_addr("@", &ul);
		setup_connect(s->own, &au, ul);
		break;
	case K_UDGPAIR:
	case K_USTPAIR:
	case K_USQPAIR:
		if (socketpair(AF_UNIX, (k == K_UDGPAIR ? SOCK_DGRAM : k == K_USTPAIR ? SOCK_STREAM : SOCK_SEQPACKET) | SOCK_CLOEXEC, 0, sv))
			die("socketpair");
		s->own = sv[0];
		s->peer = sv[1];
		set_int(s->peer, SOL_SOCKET, SO_PASSCRED, 1);
		break;
	case K_UST:
	case K_USTGONE:
		s->own = sock(AF_UNIX, SOCK_STREAM);
		au = un_addr("s", &ul);
		setup_connect(s->own, &au, ul);
		break;
	case K_USTUN: s->own = sock(AF_UNIX, SOCK_STREAM); break;
	case K_USQ:
	case K_USQGONE:
		s->own = sock(AF_UNIX, SOCK_SEQPACKET);
		au = un_addr("q", &ul);
		setup_connect(s->own, &au, ul);
		break;
	case K_USQUN: s->own = sock(AF_UNIX, SOCK_SEQPACKET); break;
	case K_TCP4C:
		s->own = sock(AF_INET, SOCK_STREAM);
		a4 = in4("127.0.0.1", port_t4);
		setup_connect(s->own, &a4, sizeof a4);
		break;
	case K_TCP4: s->own = sock(AF_INET, SOCK_STREAM); break;
	case K_TCP6C:
		s->own = sock(AF_INET6, SOCK_STREAM);
		a6 = in6_loop(port_t6);
		setup_connect(s->own, &a6, sizeof a6);
		break;
	case K_TCP6: s->own = sock(AF_INET6, SOCK_STREAM); break;
	case K_CLOSED:
		s->fd = fd_closed;
		return;
	case K_PIPE:
		if (pipe2(sv, O_CLOEXEC))
			die("pipe");
		s->own = sv[1];
		s->own2 = sv[0];
		break;
	case K_OPATH:
		s->own = open(chance(50) ? "." : "s", O_PATH | O_CLOEXEC);
		if (s->own < 0)
			die("open O_PATH");
		break;
	case K_FILE: s->own = open("f", O_WRONLY | O_CLOEXEC); break;
	case K_BADNUM:
		s->fd = chance(50) ? -1 : 1000000;
		return;
	}
	s->fd = s->own;
	if (k == K_UST || k == K_USTGONE || k == K_USQ || k == K_USQGONE) {
		accept_all(k == K_UST || k == K_USTGONE ? l_us : l_uq);
		if ((k == K_USTGONE || k == K_USQGONE) && npeers > 0) {
			close(peers[--npeers]);
		}
	}
	if (k == K_TCP4C || k == K_TCP6C)
		accept_all(k == K_TCP4C ? l_t4 : l_t6);
	if (k >= K_CLOSED)
		return;

	/* Socket options a program might have set before the send. */
	struct timeval tv = {0, 20000};
	if (setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv))
		die("SO_SNDTIMEO");
	if (chance(50)) {
		fcntl(s->fd, F_SETFL, O_NONBLOCK);
		out(" nb");
	}
	if (chance(8)) {
		out(" sndbuf");
		try_int(s->fd, SOL_SOCKET, SO_SNDBUF, 4096);
	}
	if (chance(8)) {
		out(" passcred");
		try_int(s->fd, SOL_SOCKET, SO_PASSCRED, 1);
	}
	int inet = k <= K_UDP4REFUSED || (k >= K_TCP4C && k <= K_TCP6);
	if (inet && chance(6)) {
		out(" zerocopy");
		try_int(s->fd, SOL_SOCKET, SO_ZEROCOPY, 1);
	}
	if (inet && chance(6)) {
		out(" prio");
		try_int(s->fd, SOL_SOCKET, SO_PRIORITY, 5);
	}
	if ((k == K_UDP4 || k == K_UDP4C) && chance(8)) {
		out(" tos");
		try_int(s->fd, IPPROTO_IP, IP_TOS, 0x20);
	}
	if ((k == K_UDP4 || k == K_UDP4C || k == K_UDP6) && chance(4)) {
		out(" cork");
		try_int(s->fd, IPPROTO_UDP, UDP_CORK, 1);
	}
	if ((k == K_TCP4C || k == K_TCP6C) && chance(5)) {
		out(" cork");
		try_int(s->fd, IPPROTO_TCP, TCP_CORK, 1);
	}
}

/* ---- destinations ---- */
static unsigned char abuf[256];

/* gen_addr writes an address into abuf and returns its natural length. */
static size_t gen_addr(void) {
	memset(abuf, 0, sizeof abuf);
	struct sockaddr_in a4;
	struct sockaddr_in6 a6;
	struct sockaddr_un au;
	socklen_t ul;
	int c = (int)rnd(34);
	switch (c) {
#define IN4(name, ip, port) out(" " name); a4 = in4(ip, port); memcpy(abuf, &a4, sizeof a4); return sizeof a4;
#define IN6(name, a) out(" " name); a6 = a; memcpy(abuf, &a6, sizeof a6); return sizeof a6;
	case 0: case 1: case 2: IN4("u4", "127.0.0.1", port_u4)
	case 3: IN4("t4", "127.0.0.1", port_t4)
	case 4: IN4("closed4", "127.0.0.1", 1)
	case 5: IN4("lo2:u4", "127.0.0.2", port_u4)
	case 6: IN4("any4:u4", "0.0.0.0", port_u4)
	case 7: IN4("denied", "127.0.0.99", 9)
	case 8: IN4("port0", "127.0.0.1", 0)
	case 9: case 10: IN6("u6", in6_loop(port_u6))
	case 11: IN6("t6", in6_loop(port_t6))
	case 12: IN6("closed6", in6_loop(1))
	case 13: IN6("mapped:u4", in6_mapped(port_u4))
	case 14: IN6("mapped:t4", in6_mapped(port_t4))
	case 15: {
		out(" any6:u6");
		a6 = in6_loop(port_u6);
		a6.sin6_addr.s6_addr[15] = 0;
		memcpy(abuf, &a6, sizeof a6);
		return sizeof a6;
	}
	case 16: {
		out(" u6scope");
		a6 = in6_loop(port_u6);
		a6.sin6_scope_id = chance(50) ? 1 : 99;
		memcpy(abuf, &a6, sizeof a6);
		return sizeof a6;
	}
#undef IN4
#undef IN6
	case 17: case 18: au = un_addr("d", &ul); out(" path:d"); memcpy(abuf, &au, ul); return ul;
	case 19: {
		out(" abspath:d");
		au = (struct sockaddr_un){.sun_family = AF_UNIX};
		snprintf(au.sun_path, sizeof au.sun_path, "%s/d", dir);
		ul = offsetof(struct sockaddr_un, sun_path) + strlen(au.sun_path);
		memcpy(abuf, &au, sizeof au);
		return ul;
	}
	case 20: au = un_addr("s", &ul); out(" path:s"); memcpy(abuf, &au, ul); return ul;
	case 21: au = un_addr("q", &ul); out(" path:q"); memcpy(abuf, &au, ul); return ul;
	case 22: au = un_addr("nx", &ul); out(" path:nx"); memcpy(abuf, &au, ul); return ul;
	case 23: au = un_addr("f", &ul); out(" path:file"); memcpy(abuf, &au, ul); return ul;
	case 24: case 25: au = un_addr("@", &ul); out(" abstract"); memcpy(abuf, &au, ul); return ul;
	case 26: {
		out(" abstract:nx");
		au = (struct sockaddr_un){.sun_family = AF_UNIX};
		memcpy(au.sun_path, "\0connvisor-difffuzz-none", 24);
		memcpy(abuf, &au, sizeof au);
		return offsetof(struct sockaddr_un, sun_path) + 24;
	}
	case 27: out(" unnamed"); abuf[0] = AF_UNIX; return 2;
	case 28: {
		out(" unspec");
		a4 = in4("127.0.0.1", port_u4);
		a4.sin_family = AF_UNSPEC;
		memcpy(abuf, &a4, sizeof a4);
		return chance(50) ? 2 : sizeof a4;
	}
	case 29: {
		out(" netlink");
		struct sockaddr_nl nl = {.nl_family = AF_NETLINK};
		memcpy(abuf, &nl, sizeof nl);
		return sizeof nl;
	}
	case 30: {
		out(" packet");
		abuf[0] = 17; /* AF_PACKET: sockaddr_ll, loopback's ifindex */
		abuf[4] = 1;
		return 20;
	}
	case 31: {
		out(" vsock");
		struct sockaddr_vm vm = {.svm_family = AF_VSOCK, .svm_port = 9, .svm_cid = VMADDR_CID_LOCAL};
		memcpy(abuf, &vm, sizeof vm);
		return sizeof vm;
	}
	case 32: {
		/* Another family's number on a valid path or address. */
		static const int fam[] = {AF_NETLINK, AF_INET, AF_INET6, AF_PACKET, 3, 99, 255, 0xffff};
		int f = fam[rnd(sizeof fam / sizeof fam[0])];
		if (chance(50)) {
			out(" fam%d:path:d", f);
			au = un_addr("d", &ul);
			memcpy(abuf, &au, ul);
			abuf[0] = (unsigned char)f;
			abuf[1] = (unsigned char)(f >> 8);
			return ul;
		}
		out(" fam%d:u4", f);
		a4 = in4("127.0.0.1", port_u4);
		memcpy(abuf, &a4, sizeof a4);
		abuf[0] = (unsigned char)f;
		abuf[1] = (unsigned char)(f >> 8);
		return sizeof a4;
	}
	default: {
		size_t n = 2 + rnd(127);
		for (size_t i = 0; i < n; i++)
			abuf[i] = (unsigned char)next64();
		/* Never a real family that could leave the machine. */
		static const int fam[] = {AF_UNIX, 0, 3, 77, 200, 0xfffe};
		int f = fam[rnd(sizeof fam / sizeof fam[0])];
		out(" garbage%d", f);
		if (f == AF_UNSPEC && n >= 8) {
			/* IPv4 UDP reads an AF_UNSPEC name as AF_INET: keep the
			 * address on loopback, whatever the port. */
			abuf[4] = 127;
			abuf[5] = abuf[6] = 0;
			abuf[7] = (unsigned char)(1 + rnd(254));
		}
		abuf[0] = (unsigned char)f;
		abuf[1] = (unsigned char)(f >> 8);
		return n;
	}
	}
}

/* gen_name picks an address, its length and where it lies. */
static void gen_name(uint64_t *ptr, uint64_t *len, int allow_none) {
	if (allow_none && chance(30)) {
		*ptr = 0;
		*len = chance(90) ? 0 : 16;
		out(" noaddr%s", *len ? "/16" : "");
		return;
	}
	size_t n = gen_addr();
	uint64_t l = n;
	if (chance(12)) {
		static const uint64_t odd[] = {0, 1, 2, 3, 15, 23, 110, 111, 128, 129, 0x80000000ull,
		                               0xffffffffull, 0x100000010ull};
		l = odd[rnd(sizeof odd / sizeof odd[0])];
		if (chance(30))
			l = n - 1;
		out("/len%llu", (unsigned long long)l);
	}
	int how = pick_place(88);
	if (how != P_NORMAL)
		out("/%s", pname[how]);
	size_t copy = l < sizeof abuf ? (size_t)l : sizeof abuf;
	*ptr = place(abuf, copy < 128 ? copy : 128, how);
	*len = l;
}

/* ---- data ---- */
static uint64_t gen_len(int big) {
	int c = (int)rnd(100);
	if (c < 10) return 0;
	if (c < 50) return 1 + rnd(64);
	if (c < 80) return 1 + rnd(1500);
	if (c < 85) return 65507;
	if (c < 88) return 65508;
	if (!big) return 1 + rnd(9000);
	if (c < 92) return 200000 + rnd(200000);
	if (c < 95) return 1u << 20;
	if (c < 97) return (1u << 20) + 1 + rnd(1u << 20);
	static const uint64_t huge[] = {1ull << 62, 0x7fffffffffffffffull, 0xffffffffffffffffull, 0x80000000ull};
	return huge[rnd(4)];
}

static uint64_t data_ptr(uint64_t len, int *how) {
	*how = pick_place(85);
	uint64_t l = len > DATA_SIZE / 2 ? 64 : len;
	switch (*how) {
	case P_NORMAL: return (uint64_t)(uintptr_t)(data + rnd((uint32_t)(DATA_SIZE - l - 8)));
	case P_STRADDLE:
	case P_RO: {
		if (l > 2 * PAGE)
			l = 2 * PAGE;
		return place(data + rnd(1 << 20), (size_t)l, *how);
	}
	}
	return place(NULL, 0, *how);
}

/* gen_iov builds an iovec array and returns its address and count. */
static void gen_iov(uint64_t *iovp, uint64_t *iovlen, int small) {
	int c = (int)rnd(100);
	uint64_t n;
	if (c < 8) n = 0;
	else if (c < 60) n = 1;
	else if (c < 88) n = 2 + rnd(7);
	else if (c < 93) n = 1024;
	else if (c < 97) n = 1025;
	else n = chance(50) ? 1u << 20 : 0xffffffffffffffffull;
	if (small && n > 8)
		n = 1 + rnd(3);
	size_t build = n > 1025 ? 4 : (size_t)n;
	struct iovec *iov = alloc(build * sizeof *iov + 1);
	out(" iov%llu", (unsigned long long)n);
	int odd = 0;
	uint64_t total = 0;
	for (size_t i = 0; i < build; i++) {
		uint64_t len = build > 8 ? rnd(17) : gen_len(!small);
		int how;
		uint64_t base = data_ptr(len, &how);
		if (how == P_NULL && chance(30))
			len = 0;
		iov[i].iov_base = (void *)(uintptr_t)base;
		iov[i].iov_len = len;
		total += len;
		if (build <= 8)
			out("%s%llu%s%s", i ? "," : ":", (unsigned long long)len, how ? "/" : "", pname[how]);
		else if (how)
			odd++;
	}
	if (build > 8)
		out(":total%llu/odd%d", (unsigned long long)total, odd);
	int how = pick_place(92);
	if (how != P_NORMAL)
		out("/vec-%s", pname[how]);
	*iovp = build ? place(iov, build * sizeof *iov, how) : (how == P_NORMAL ? (uint64_t)(uintptr_t)iov : place(NULL, 0, how));
	*iovlen = n;
}

/* ---- control messages ---- */
static unsigned char cbuf[256 << 10];

static size_t add_cmsg(size_t at, int level, int type, const void *payload, size_t plen) {
	struct cmsghdr h = {.cmsg_len = CMSG_LEN(plen), .cmsg_level = level, .cmsg_type = type};
	if (chance(6)) {
		static const int tweak[] = {0, 1, 8, 15, 16, -1, 1, 4, 1000};
		int t = tweak[rnd(sizeof tweak / sizeof tweak[0])];
		h.cmsg_len = t == 1 ? h.cmsg_len + 1 + rnd(7) : t == -1 ? h.cmsg_len - 1 : t == 4 ? h.cmsg_len - 4 : t == 1000 ? 1u << 20 : (size_t)t;
		out("!len%zu", (size_t)h.cmsg_len);
	}
	memcpy(cbuf + at, &h, sizeof h);
	memcpy(cbuf + at + CMSG_LEN(0), payload, plen);
	return at + CMSG_SPACE(plen);
}

static int pick_fd(int sender) {
	int fds[] = {fd_pipe_r, fd_pipe_w, fd_file, fd_opath, fd_udp, fd_unix, fd_closed, -1, 1000000, sender, 0};
	int i = (int)rnd(sizeof fds / sizeof fds[0]);
	return fds[i];
}

static size_t gen_cmsgs(int sender, int uid, int gid) {
	int n = 1 + (int)(chance(25) ? rnd(3) : 0);
	size_t at = 0;
	memset(cbuf, 0, 1024);
	for (int i = 0; i < n; i++) {
		int c = (int)rnd(100);
		if (c >= 97 && i > 0)
			c = 0;
		if (c < 30) {
			int k, fds[300];
			int r = (int)rnd(100);
			k = r < 10 ? 0 : r < 70 ? 1 + (int)rnd(3) : r < 85 ? 4 + (int)rnd(20) : r < 93 ? 253 : 254;
			int valid = chance(75);
			for (int j = 0; j < k; j++)
				fds[j] = valid ? (chance(50) ? fd_pipe_r : fd_udp) : pick_fd(sender);
			size_t bytes = (size_t)k * sizeof(int);
			if (chance(12)) {
				/* A payload that is not a whole number of ints. */
				bytes = chance(50) ? 1 + rnd(3) : 5 + rnd(3);
				fds[0] = fds[1] = fd_pipe_r;
				out(" rights%zub", bytes);
			} else {
				out(" rights%d%s", k, valid ? "" : "mix");
			}
			at = add_cmsg(at, SOL_SOCKET, SCM_RIGHTS, fds, bytes);
		} else if (c < 50) {
			struct ucred u = {getpid(), (uid_t)uid, (gid_t)gid};
			int w = (int)rnd(6);
			if (w == 1) u.pid = 1;
			if (w == 2) u.uid = uid ? 0 : 65534;
			if (w == 3) u.gid = gid ? 0 : 65534;
			if (w == 4) u.pid = 0;
			static const char *wn[] = {"own", "pid1", "uid", "gid", "pid0", "own"};
			out(" cred-%s", wn[w]);
			at = add_cmsg(at, SOL_SOCKET, SCM_CREDENTIALS, &u, w == 5 && chance(50) ? 8 : sizeof u);
		} else if (c < 60) {
			struct in_pktinfo pi = {0};
			int w = (int)rnd(3);
			pi.ipi_ifindex = w == 0 ? 0 : w == 1 ? 1 : 999;
			if (chance(50))
				pi.ipi_spec_dst.s_addr = htonl(0x7f000001);
			out(" pktinfo%d", w);
			at = add_cmsg(at, IPPROTO_IP, IP_PKTINFO, &pi, sizeof pi);
		} else if (c < 68) {
			struct in6_pktinfo pi = {0};
			int w = (int)rnd(3);
			pi.ipi6_ifindex = w == 0 ? 0 : w == 1 ? 1 : 999;
			if (chance(50))
				pi.ipi6_addr.s6_addr[15] = 1;
			out(" pktinfo6-%d", w);
			at = add_cmsg(at, IPPROTO_IPV6, IPV6_PKTINFO, &pi, sizeof pi);
		} else if (c < 76) {
			int tos = 0x10;
			int one = chance(30);
			out(" tos%s", one ? "1b" : "");
			at = add_cmsg(at, IPPROTO_IP, IP_TOS, &tos, one ? 1 : sizeof tos);
		} else if (c < 84) {
			uint16_t gso = (uint16_t)(chance(50) ? 100 : 1 + rnd(2000));
			out(" gso%u", gso);
			at = add_cmsg(at, IPPROTO_UDP, UDP_SEGMENT, &gso, sizeof gso);
		} else if (c < 90) {
			int v = 1;
			out(" unknownlevel");
			at = add_cmsg(at, 12345, 1, &v, sizeof v);
		} else if (c < 94) {
			int v = 1;
			out(" solsocket-unknown");
			at = add_cmsg(at, SOL_SOCKET, 77, &v, sizeof v);
		} else if (c < 97) {
			int v = 0x20;
			out(" tclass");
			at = add_cmsg(at, IPPROTO_IPV6, IPV6_TCLASS, &v, sizeof v);
		} else {
			/* Large: an unknown-level message that fills tens of KiB. */
			static const unsigned char zeros[140 << 10];
			size_t big = chance(50) ? (60u << 10) + rnd(40u << 10) : (130u << 10);
			out(" big%zu", big);
			at = add_cmsg(at, 12345, 2, zeros, big);
			break; /* one per buffer: cbuf holds one and a few small ones */
		}
	}
	return at;
}

static void gen_control(uint64_t *ptr, uint64_t *len, int sender, int uid, int gid) {
	if (chance(45)) {
		*ptr = 0;
		*len = 0;
		return;
	}
	int c = (int)rnd(100);
	if (c < 4) {
		*ptr = 0;
		*len = 24;
		out(" ctl-null/24");
		return;
	}
	if (c < 7) {
		*ptr = (uint64_t)(uintptr_t)cbuf;
		*len = 0;
		out(" ctl-len0");
		return;
	}
	size_t n = gen_cmsgs(sender, uid, gid);
	uint64_t l = n;
	if (chance(8)) {
		static const int d[] = {-1, -4, 1, 4, -8, 16};
		int dd = d[rnd(6)];
		if ((int64_t)l + dd >= 0) {
			l = (uint64_t)((int64_t)l + dd);
			out(" ctllen%+d", dd);
		}
	}
	int how = pick_place(90);
	if (how != P_NORMAL)
		out("/ctl-%s", pname[how]);
	*ptr = place(cbuf, (size_t)l, how);
	*len = l;
}

/* ---- flags ---- */
static int gen_flags(void) {
	int f = 0;
	if (chance(30)) f |= MSG_DONTWAIT;
	if (chance(8)) f |= MSG_MORE;
	if (chance(5)) f |= MSG_OOB;
	if (chance(5)) f |= MSG_EOR;
	if (chance(5)) f |= MSG_CONFIRM;
	if (chance(4)) f |= MSG_ZEROCOPY;
	if (chance(6)) f |= MSG_FASTOPEN;
	if (chance(20)) f |= MSG_NOSIGNAL;
	if (chance(3)) f |= MSG_DONTROUTE;
	if (chance(3)) f |= (int)(1u << rnd(32));
	if (chance(3)) f |= (int)0x80000000u;
	return f;
}

/* ---- a message header ---- */
static void gen_msghdr(struct msghdr *m, int sender, int uid, int gid, int small) {
	uint64_t p, l;
	memset(m, 0, sizeof *m);
	gen_name(&p, &l, 1);
	m->msg_name = (void *)(uintptr_t)p;
	m->msg_namelen = (socklen_t)l;
	gen_iov(&p, &l, small);
	m->msg_iov = (void *)(uintptr_t)p;
	m->msg_iovlen = l;
	gen_control(&p, &l, sender, uid, gid);
	m->msg_control = (void *)(uintptr_t)p;
	m->msg_controllen = l;
	if (chance(5))
		m->msg_flags = (int)next64();
}

/* ---- signals ---- */
static volatile sig_atomic_t pipes;
static void on_pipe(int sig) { (void)sig; pipes++; }
static void on_alarm(int sig) {
	(void)sig;
	static const char msg[] = " HANG\n";
	if (write(1, line, linelen) < 0 || write(1, msg, sizeof msg - 1) < 0)
		_exit(3);
	_exit(3);
}

static void set_sigpipe(int how) {
	struct sigaction sa = {0};
	sa.sa_handler = how == 0 ? SIG_IGN : on_pipe;
	sa.sa_flags = how == 1 ? SA_RESTART : 0;
	sigaction(SIGPIPE, &sa, NULL);
}

/* ---- liveness probes ---- */
static void probe(int i) {
	set_sigpipe(0); /* liveness, not signals */
	linelen = 0;
	out("%d probe", i);
	int fd = sock(AF_INET, SOCK_STREAM);
	struct sockaddr_in a = in4("127.0.0.1", port_t4);
	int r = connect(fd, (struct sockaddr *)&a, sizeof a);
	out(" allow=%s", r == 0 ? "0" : ename(errno));
	accept_all(l_t4);
	close(fd);
	if (!strcmp(deny_kind, "netlink")) {
		fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
		/* To a user port, not the kernel: nothing checks that it
		 * exists, and netlink to the kernel is not egress. */
		struct sockaddr_nl nl = {.nl_family = AF_NETLINK, .nl_pid = 0x7fff1234};
		r = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&nl, sizeof nl);
	} else {
		fd = sock(AF_INET, SOCK_STREAM);
		a = in4("127.0.0.99", 9);
		r = connect(fd, (struct sockaddr *)&a, sizeof a);
	}
	out(" deny=%s", r == 0 ? "0" : ename(errno));
	if (fd >= 0)
		close(fd);
	fd = sock(AF_INET, SOCK_DGRAM);
	a = in4("127.0.0.1", port_u4);
	r = (int)sendto(fd, "probe", 5, 0, (struct sockaddr *)&a, sizeof a);
	struct rx rx = {0};
	drain(r_u4, &rx, 0, 0);
	out(" udp=%s/%d", r == 5 ? "5" : ename(errno), rx.msgs);
	close(fd);
	for (int j = 0; j < npeers; j++)
		close(peers[j]);
	npeers = 0;
	printf("%s\n", line);
}

static void cleanup(void) {
	static const char *names[] = {"d", "s", "q", "f"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		unlinkat(AT_FDCWD, names[i], 0);
	if (chdir("/") == 0)
		rmdir(dir);
}

static int count_fds(void) {
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

int main(int argc, char **argv) {
	int drop = 0, every = 50, opt;
	long start = 0;
	while ((opt = getopt(argc, argv, "ud:p:s:")) != -1) {
		switch (opt) {
		case 'u': drop = 1; break;
		case 'd': deny_kind = optarg; break;
		case 'p': every = atoi(optarg); break;
		case 's': start = atol(optarg); break;
		default:
			fprintf(stderr, "usage: fuzz [-u] [-d inet|netlink] [-p N] [-s START] SEED COUNT\n");
			return 2;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: fuzz [-u] [-d inet|netlink] [-p N] [-s START] SEED COUNT\n");
		return 2;
	}
	uint64_t seed = strtoull(argv[optind], NULL, 0);
	long count = atol(argv[optind + 1]);
	rng = seed;
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	umask(0);
	setup();
	atexit(cleanup);
	if (drop) {
		if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			die("drop to nobody");
	}
	int uid = (int)getuid(), gid = (int)getgid();
	signal(SIGALRM, on_alarm);
	int fds_before = count_fds();
	printf("start seed=%llu count=%ld uid=%d\n", (unsigned long long)seed, count, uid);
	for (long i = start; i < start + count; i++) {
		if (every > 0 && i % every == 0)
			probe((int)i);
		/* Each call draws from its own stream, so a change in how one
		 * call is generated does not shift every later one. */
		rng = seed ^ ((uint64_t)i * 0xd1b54a32d192ed03ull);
		rng = next64();
		linelen = 0;
		arena_used = 0;
		guard_used = ro_used = 0;
		int sig = (int)rnd(3);
		/* Setup runs with SIGPIPE ignored: the disposition drawn is
		 * for the call alone. */
		set_sigpipe(0);
		static const char *kinds[] = {"connect", "sendto", "sendmsg", "sendmmsg"};
		static const int kw[] = {15, 35, 35, 15};
		int kr = (int)rnd(100), kind = 0;
		while (kr >= kw[kind])
			kr -= kw[kind++];
		out("%ld %s sig%d", i, kinds[kind], sig);
		struct sender s;
		make_sender(&s);
		long nr;
		uint64_t a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0;
		struct mmsghdr *vec = NULL;
		uint64_t vlen = 0;
		int vhow = P_NORMAL;
		out(" :");
		switch (kind) {
		case 0:
			nr = SYS_connect;
			gen_name(&a1, &a2, 0);
			break;
		case 1: {
			nr = SYS_sendto;
			uint64_t l = gen_len(1);
			int how;
			a1 = data_ptr(l, &how);
			a2 = l;
			out(" len%llu%s%s", (unsigned long long)l, how ? "/" : "", pname[how]);
			a3 = (uint64_t)(uint32_t)gen_flags();
			if (chance(3)) {
				a3 |= 0xdead00000000ull; /* flags is an int: high bits are ignored */
				out(" flagshi");
			}
			gen_name(&a4, &a5, 1);
			break;
		}
		case 2: {
			nr = SYS_sendmsg;
			struct msghdr m;
			gen_msghdr(&m, s.fd, uid, gid, 0);
			a2 = (uint64_t)(uint32_t)gen_flags();
			int how = pick_place(94);
			if (how != P_NORMAL)
				out(" hdr-%s", pname[how]);
			a1 = place(&m, sizeof m, how);
			break;
		}
		default: {
			nr = SYS_sendmmsg;
			int c = (int)rnd(100);
			vlen = c < 5 ? 0 : c < 45 ? 1 : c < 90 ? 2 + rnd(3) : c < 95 ? 1024 : c < 97 ? 1025 : 0xffffffffull;
			size_t build = vlen > 4 ? 1025 : (size_t)vlen;
			vec = alloc((build ? build : 1) * sizeof *vec);
			out(" vlen%llu", (unsigned long long)vlen);
			for (size_t j = 0; j < build; j++) {
				if (j < 4 || build <= 4) {
					out(" {");
					gen_msghdr(&vec[j].msg_hdr, s.fd, uid, gid, build > 4);
					out(" }");
				} else {
					vec[j] = vec[j % 4];
				}
				vec[j].msg_len = 0xdeadbeef;
			}
			a3 = (uint64_t)(uint32_t)gen_flags();
			vhow = pick_place(90);
			if (vhow == P_RO && build * sizeof *vec > 2 * PAGE)
				vhow = P_NORMAL;
			if (vhow != P_NORMAL)
				out(" vec-%s", pname[vhow]);
			a1 = vhow == P_NORMAL ? (uint64_t)(uintptr_t)vec : place(vec, build * sizeof *vec, vhow);
			a2 = vlen;
			break;
		}
		}
		if (kind != 0)
			out(" flags=%#llx", (unsigned long long)(kind == 1 ? a3 : kind == 2 ? a2 : a3));
		protect_ro(PROT_READ);
		set_sigpipe(sig);
		pipes = 0;
		alarm(HANG_SECONDS);
		long r = syscall(nr, (long)s.fd, a1, a2, a3, a4, a5);
		int e = r < 0 ? errno : 0;
		alarm(0);
		int pipes_in_call = (int)pipes;
		set_sigpipe(0);
		protect_ro(PROT_READ | PROT_WRITE);
		out(" -> %ld %s", r < 0 ? -1 : r, ename(e));
		if (kind == 3 && r > 0) {
			struct mmsghdr *got = vhow == P_NORMAL ? vec : (struct mmsghdr *)(uintptr_t)a1;
			out(" lens");
			for (long j = 0; j < r && j < 8; j++)
				out("%s%u", j ? "," : "=", got[j].msg_len);
		}
		if (s.own >= 0 && s.kind < K_CLOSED) {
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
			struct sockaddr_storage ss;
			socklen_t pl = sizeof ss;
			int connected = getpeername(s.fd, (struct sockaddr *)&ss, &pl) == 0;
			out(" so=%s peer=%d", ename(soerr), connected);
		}
		out(" pipe=%d |", pipes_in_call);

		/* What arrived: datagrams, connections, stream bytes. */
		struct rx ru4 = {0}, ru6 = {0}, rud = {0}, rua = {0}, rpeer = {0}, rconn = {0}, rtu = {0};
		drain(r_t4u, &rtu, 0, 0);
		drain(r_t6u, &rtu, 0, 0);
		drain(r_u4, &ru4, 0, 0);
		drain(r_u6, &ru6, 0, 0);
		drain(r_ud, &rud, 0, 0);
		drain(r_ua, &rua, 0, 0);
		accept_all(l_t4);
		accept_all(l_t6);
		accept_all(l_us);
		accept_all(l_uq);
		int pstream = s.kind == K_USTPAIR;
		if (s.peer >= 0)
			drain(s.peer, &rpeer, pstream, s.kind != K_UDGPAIR);
		for (int j = 0; j < npeers; j++)
			drain(peers[j], &rconn, peerstream[j], 1);
		if (s.own >= 0)
			close(s.own);
		if (s.own2 >= 0)
			close(s.own2);
		/* Closing the sender flushes what it held (corked data, FIN). */
		drain(r_u4, &ru4, 0, 0);
		drain(r_u6, &ru6, 0, 0);
		if (s.peer >= 0) {
			drain(s.peer, &rpeer, pstream, s.kind != K_UDGPAIR);
			close(s.peer);
		}
		accept_all(l_t4);
		accept_all(l_t6);
		accept_all(l_us);
		accept_all(l_uq);
		for (int j = 0; j < npeers; j++) {
			drain(peers[j], &rconn, peerstream[j], 1);
			close(peers[j]);
		}
		int conns = npeers;
		npeers = 0;
		show("tu", &rtu);
		show("u4", &ru4);
		show("u6", &ru6);
		show("ud", &rud);
		show("ua", &rua);
		show("pair", &rpeer);
		if (conns)
			out(" conns=%d", conns);
		show("conn", &rconn);
		printf("%s\n", line);
	}
	probe((int)(start + count));
	int fds_after = count_fds();
	printf("end fds=%+d\n", fds_after - fds_before);
	return 0;
}

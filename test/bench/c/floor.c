// floor: the least a seccomp user-notification supervisor can cost. It runs
// CMD under a filter that notifies connect(2) and nothing else, and answers
// every notification at once, on the target's CPU (SYNC_WAKE_UP):
//
//   floor errno|continue|emulate -- CMD [ARGS...]
//
// errno answers ECONNREFUSED without looking at the call (the floor of a
// denied connect); continue lets the kernel do the connect (the floor of
// --mode continue); emulate does the least an emulating supervisor must:
// a pidfd cached per thread, pidfd_getfd, process_vm_readv of the address,
// ID_VALID, connect on the duplicate, close, and the connect's own errno as
// the answer (the floor of an allowed, emulated connect). Nothing is
// decided, allocated or logged.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
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
#include <unistd.h>

// Absent from older headers (Linux 6.6).
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#endif

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

static pid_t child;

// A pidfd per thread, as connvisor caches them: a direct-mapped table by tid.
#define PIDFDS 4096
static struct {
	int tid, fd;
} pidfds[PIDFDS];

static int pidfd_of(int tid) {
	int slot = tid % PIDFDS;
	if (pidfds[slot].tid == tid && pidfds[slot].fd > 0)
		return pidfds[slot].fd;
	int fd = syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
	if (fd < 0)
		return -1;
	if (pidfds[slot].fd > 0)
		close(pidfds[slot].fd);
	pidfds[slot].tid = tid;
	pidfds[slot].fd = fd;
	return fd;
}

// emulate does the connect of req on a duplicate of the target's socket
// and returns the errno to answer (0: connected).
static int emulate(int l, struct seccomp_notif *req) {
	int pidfd = pidfd_of(req->pid);
	if (pidfd < 0)
		return EPERM;
	int dup = syscall(SYS_pidfd_getfd, pidfd, (int)req->data.args[0], 0);
	if (dup < 0)
		return errno == EBADF ? EBADF : EPERM;
	char addr[128];
	size_t len = req->data.args[2] < sizeof addr ? req->data.args[2] : sizeof addr;
	struct iovec local = {.iov_base = addr, .iov_len = len};
	struct iovec remote = {.iov_base = (void *)req->data.args[1], .iov_len = len};
	int e = 0;
	if (process_vm_readv(req->pid, &local, 1, &remote, 1, 0) != (ssize_t)len)
		e = EFAULT;
	else if (ioctl(l, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0)
		e = ENOENT;
	else if (connect(dup, (struct sockaddr *)addr, len) < 0)
		e = errno;
	close(dup);
	return e;
}

// The supervisor's only job ends with its child. RECV blocks even when no
// target is left, so the exit happens here rather than in the loop.
static void on_sigchld(int sig) {
	(void)sig;
	int st;
	if (waitpid(child, &st, WNOHANG) == child)
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static void die(const char *what) {
	fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
	exit(2);
}

static int install_filter(void) {
	struct sock_filter f[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
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

static void send_fd(int sock, int fd) {
	char buf[CMSG_SPACE(sizeof(int))] = {0};
	char one = 1;
	struct iovec iov = {.iov_base = &one, .iov_len = 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof buf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	if (sendmsg(sock, &m, 0) < 0)
		die("sendmsg");
}

static int recv_fd(int sock) {
	char buf[CMSG_SPACE(sizeof(int))] = {0};
	char one;
	struct iovec iov = {.iov_base = &one, .iov_len = 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof buf};
	if (recvmsg(sock, &m, 0) <= 0)
		die("recvmsg");
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		die("no fd received");
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof fd);
	return fd;
}

int main(int argc, char **argv) {
	if (argc < 4 || strcmp(argv[2], "--")) {
		fprintf(stderr, "usage: floor errno|continue|emulate -- CMD [ARGS...]\n");
		return 2;
	}
	int cont = !strcmp(argv[1], "continue"), emul = !strcmp(argv[1], "emulate");
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		die("socketpair");
	// SIGCHLD without SA_RESTART: it must interrupt a blocked RECV.
	struct sigaction sa = {.sa_handler = on_sigchld};
	sigaction(SIGCHLD, &sa, NULL);
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		close(sp[0]);
		int l = install_filter();
		send_fd(sp[1], l);
		close(l);
		close(sp[1]);
		execvp(argv[3], argv + 3);
		die("exec");
	}
	close(sp[1]);
	int l = recv_fd(sp[0]);
	close(sp[0]);
	if (ioctl(l, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) < 0)
		fprintf(stderr, "floor: SYNC_WAKE_UP unavailable: %s\n", strerror(errno));
	struct seccomp_notif req;
	struct seccomp_notif_resp resp;
	for (;;) {
		memset(&req, 0, sizeof req);
		if (ioctl(l, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
			if (errno == EINTR || errno == ENOENT)
				continue;
			die("NOTIF_RECV");
		}
		memset(&resp, 0, sizeof resp);
		resp.id = req.id;
		if (cont)
			resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		else if (emul)
			resp.error = -emulate(l, &req);
		else
			resp.error = -ECONNREFUSED;
		if (ioctl(l, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0 && errno != ENOENT && errno != EINTR)
			die("NOTIF_SEND");
	}
}

// Package emulate makes a trapped call for the target: it copies the call's
// arguments out of the target's memory with the kernel's own checks, in the
// kernel's order, and performs the call on a duplicate of the target's
// socket with the very bytes that were decided on, so the target cannot
// swap them after the check. The supervisor decides whether and when; this
// package knows how the kernel does it.
//
// The parts, in the order a call meets them:
//
//   - The target's socket (socket.go): OpenThread and DupTargetFD take a
//     duplicate of the target's descriptor (the same open file), Inspect
//     reads what it is (SocketInfo; ConnectBlocks says whether its connect
//     waits), and SendTimeout, SendBuffer, FileOf and TargetHolds answer
//     what the supervisor asks about it; TCPStateOf (tcpstate.go) reads a
//     TCP socket's state.
//   - What the kernel refuses whatever the destination (socket.go,
//     refused.go): a policy's errno for a denied destination must not hide
//     it. RefusedBeforeDestination for a connect, Copier.SendRefused for a
//     send (UnixDgramRefused before a UNIX name is looked up), and
//     TCPv6RefusesIPv4 for a name that is no destination at all.
//   - Addresses (memory.go, sockaddr.go): ReadSockaddr copies a connect's
//     or a send's address as move_addr_to_kernel does, Sockaddr decodes it
//     into a policy.Dest, and ResolveName replaces an unspecified address
//     by the one the kernel really reaches.
//   - Connecting the duplicate (socket.go): Connect; StartConnect and
//     FinishConnect for a blocking TCP connect waited for with epoll;
//     ConnectUnixRetrying for a UNIX connect waiting for backlog room.
//   - Messages (message.go): a Copier copies a send's message (sendto,
//     sendmsg, each entry of a sendmmsg's Mmsg) into a Message laid out so
//     that the kernel judges the copy as it judged the original, sends it
//     (Message.Send), and writes sendmmsg's msg_len back. RaiseSIGPIPE is
//     the signal a failed stream send raises natively.
//   - Control messages (control.go): descriptors in SCM_RIGHTS replaced by
//     duplicates, SCM_CREDENTIALS and privileged options checked against
//     the target's credentials (Sender), source routing refused.
//   - Identity (identity.go): who a thread is, for the policy and the logs
//     (Identify), for control messages (ReadSender, ThreadCreds) and for
//     the deputy, all from one parser of /proc/TID/status.
//   - The deputy (deputy.go, unixresolve.go, unixbound.go): Deputy makes
//     UNIX connects and sends with the target's credentials and filesystem
//     view, and WithUnixPath resolves a UNIX pathname as the target would
//     to the inode it names, decides on its canonical path and connects or
//     sends to that very inode.
//   - Network namespaces (netns.go): a Netns runs code in the network
//     namespace a socket lives in (SocketNetns, OwnNetns, InNetnsOf), for
//     sockets that must live beside the target's; AttachFilter gives one
//     a classic BPF filter. dnslearn's capture and the tarpits use them.
//
// Results: a syscall.Errno is what the target's own call would have
// returned (0: it succeeded); a Go error is a failure of the supervisor's
// own, which fails the call closed; ErrTargetGone means the thread is gone
// and nobody waits for an answer.
//
// The tarpits, which make an injected fault on a nonblocking TCP connect
// look like a real network failure, are a package of their own,
// emulate/tarpit, built on Inspect, TCPStateOf and Netns.
package emulate

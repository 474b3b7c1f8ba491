// Package tarpit makes an injected fault on a nonblocking TCP connect look
// like a real network failure. That is its one job.
//
// A program that connects a nonblocking TCP socket expects connect to
// return EINPROGRESS, poll to show the socket not writable while "the
// network" is slow, then writable with an error that getsockopt(SO_ERROR)
// reports. The only way to get exactly the kernel's own state machine is
// to let the kernel run it: the program's socket really sends a SYN, to a
// tarpit on the loopback interface of the socket's network namespace that
// never answers, and the failure is then delivered the way a network
// delivers it (an ICMP error, a reset, a timeout). No packet ever goes to
// the destination that is being denied.
//
// # Use
//
// The supervisor makes one Set with New and closes it at the end. For a
// faulted connect it calls Set.Hold (or Set.HoldRefusable for a refusal
// after a delay) on a duplicate of the program's socket, answers the
// program EINPROGRESS, and at the fault's time calls HeldConnect.Fail with
// the errno (for ETIMEDOUT, HeldConnect.TimeoutAt right after Hold arms
// the kernel's own timer). An immediate refusal needs no hold: Set.Refuse.
// Set.FailsAsync says beforehand which errnos can be delivered this way;
// the others are returned by connect itself. Set.Limits says, for the
// supervisor's warning at start, how a fault differs from the real thing.
//
// # Privileged and unprivileged
//
// With CAP_NET_RAW and CAP_NET_ADMIN (Set.Privileged) the tarpit is a
// listener with a socket filter that drops every packet, a raw ICMP socket
// and a raw TCP socket that speak for the network, and a packet socket
// that captures the SYNs (an ICMP error must quote its SYN, a reset must
// acknowledge it). Every errno below arrives asynchronously and at the
// exact delay.
//
// Without them (the supervisor runs as the same user as the program) there
// are no raw or packet sockets and no SIOCGSKNS, and classic socket filters
// may be refused too (EPERM from the BPF JIT's limit on unprivileged
// programs). The tarpit is then a listener whose accept queue is full, a
// loopback port nobody listens on, and TCP_USER_TIMEOUT.
//
// # What each errno becomes
//
//   - blackhole (no errno): the SYNs go unanswered, the connect stays in
//     SYN_SENT until the rule's timeout or the kernel's own SYN retries.
//     Exact either way.
//   - ECONNRESET: shutdown(SHUT_RDWR) in SYN_SENT. Exact either way.
//   - ETIMEDOUT: TCP_USER_TIMEOUT runs out, armed by TimeoutAt.
//     Privileged, a crafted ACK makes the retransmission timer follow it at
//     once, so it is exact; unprivileged, nothing ends the connect before
//     the first SYN retransmission (1 s).
//   - ECONNREFUSED at once, either way: Set.Refuse connects to a closed
//     loopback port and the kernel's own reset refuses it. After a delay,
//     privileged: the reset a closed port would send, crafted on the raw
//     TCP socket (not an ICMP port unreachable: see below); unprivileged:
//     the hold's private full listener is closed, and the next SYN
//     retransmission (1 s, 2 s, 3 s... after the connect) meets a closed
//     port.
//   - ENETUNREACH, EHOSTUNREACH, EACCES, ENOPROTOOPT, EOPNOTSUPP,
//     EHOSTDOWN, ENONET, EPROTO: an ICMP or ICMPv6 error quoting the SYN
//     (the table in errnos.go). Privileged only: without a raw socket
//     connect itself returns them (as natively when there is no route).
//
// # Network namespaces
//
// A tarpit lives on the loopback interface of the program's socket's own
// network namespace, one per namespace, shared by every held connect
// there; the socket's SYN never leaves that interface. Privileged, the
// supervisor finds the namespace with SIOCGSKNS and enters it to make the
// tarpit (which keeps the namespace alive until Set.Close).
// Unprivileged, only the supervisor's own namespace can be used: a socket
// elsewhere (told by SO_NETNS_COOKIE, Linux 5.14) gets ErrOtherNetns, and
// one whose namespace has loopback down gets ErrLoopbackDown.
//
// # Costs
//
// Per namespace and address family, made on first use: privileged, five
// descriptors (the listener, two raw sockets, the SYN capture, the closed
// port); unprivileged, three (the full listener, the connection that fills
// it, the closed port). The capture is shared because binding and closing
// a packet socket each wait for an RCU grace period (synchronize_net,
// about 10 ms). A held connect holds no descriptor of its own, except an
// unprivileged HoldRefusable's private full listener (two). Fail returns
// once the kernel has failed the connect: an ICMP error or a crafted reset
// takes microseconds, a refusal at the next retransmission up to a second. Making the tarpit
// of another namespace costs a thread that is thrown away after.
//
// # Kernel behaviours relied on
//
// Linux 6.18, each checked by this package's tests:
//   - A listening socket with a socket filter that drops everything never
//     sees the SYN (tcp_v4_rcv/tcp_v6_rcv run sk_filter before the LISTEN
//     state machine), so the client stays in SYN_SENT and nothing answers.
//   - An ICMP destination-unreachable quoting the SYN (sequence number in
//     snd_una..snd_nxt) is fatal in SYN_SENT for every code: tcp_v4_err and
//     tcp_v6_err end the connect with icmp_err_convert/icmpv6_err_convert's
//     errno, through tcp_done_with_error, exactly as a router's ICMP would.
//   - Over IPv4, tcp_v4_err in SYN_SENT also queues the ICMP error on the
//     socket's error queue, IP_RECVERR or not (tcp_v6_err only with
//     IPV6_RECVERR). Queueing it wakes pollers before tcp_done_with_error
//     sets sk_err: a poller woken then sees POLLERR alone and reads
//     SO_ERROR 0, as with a router's ICMP error. Hence a refusal is a reset.
//   - A RST|ACK acknowledging the SYN, as a closed port answers it
//     (tcp_v4_send_reset, tcp_v6_send_reset), refuses a connect in SYN_SENT
//     (tcp_rcv_synsent_state_process, tcp_reset): sk_err = ECONNREFUSED is
//     set before the state is CLOSE and before any poller is woken, and a
//     reset that meets the socket locked waits in its backlog.
//   - shutdown(SHUT_RDWR) in SYN_SENT runs tcp_disconnect, which sets
//     sk_err = ECONNRESET and sends nothing.
//   - A segment with an unacceptable ACK in SYN_SENT, before any
//     retransmission, re-arms the retransmission timer to TCP_TIMEOUT_MIN
//     (tcp_rcv_synsent_state_process); from then on the timer is clamped to
//     what remains of TCP_USER_TIMEOUT (tcp_clamp_rto_to_user_timeout), and
//     an expired user timeout fails the connect with ETIMEDOUT.
//
// And what the kernel still lets an ordinary user do, measured on Linux
// 6.18 as user nobody:
//   - A listener whose accept queue is full (listen backlog 0 plus one
//     connection never accepted) drops SYNs without answering
//     (tcp_conn_request, LISTENOVERFLOWS): the same SYN_SENT as the
//     filtered listener, so a blackhole is exact.
//   - A nonblocking connect to a loopback port that nobody listens on
//     returns EINPROGRESS; the reset arrives while the socket is still
//     locked, is processed at release_sock, and SO_ERROR then says
//     ECONNREFUSED (about 2 µs later): an immediate refusal is exact.
//   - Closing a held connect's private full listener makes the next SYN
//     retransmission meet a closed port: a delayed refusal arrives with
//     that retransmission (1 s, 2 s, 3 s... after the connect: Linux 6.5+
//     retransmits the first tcp_syn_linear_timeouts=4 SYNs a second apart).
//   - TCP_USER_TIMEOUT ends the connect with ETIMEDOUT, exactly at its
//     deadline once the first retransmission (1 s) has happened, and at
//     that retransmission for a shorter deadline (no kick without raw TCP).
//   - shutdown(SHUT_RDWR) gives ECONNRESET at any moment, as above.
//   - ENETUNREACH, EHOSTUNREACH and the other ICMP errnos need an ICMP
//     message: without a raw socket they can only be returned by connect
//     itself (as natively when there is no route).
package tarpit

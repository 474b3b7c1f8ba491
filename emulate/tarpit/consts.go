package tarpit

import "time"

// The tarpit's numbers, each with why it has that value. Packet layouts
// (header offsets, flags) are in packet.go and capture.go, next to the
// code that reads or writes them.
const (
	// firstRetransmit is when the kernel first retransmits an unanswered
	// SYN (TCP_TIMEOUT_INIT, the initial RTO): without a raw socket to
	// re-arm its timer, nothing that waits for a retransmission happens
	// earlier; it is also the RTO assumed when TCP_INFO cannot be read.
	firstRetransmit = time.Second

	// maxRetransmits bounds the walk over the kernel's SYN retransmission
	// schedule: the RTO doubles after the linear ones, so this is far past
	// any delay a rule can ask for.
	maxRetransmits = 64

	// refusalSlack is how long past the next retransmission (the RTO)
	// Fail waits for the refusal that retransmission brings: half an
	// initial RTO absorbs a loaded machine's timer slack.
	refusalSlack = firstRetransmit / 2

	// timeoutSlack is how long past the current RTO Fail waits for
	// ETIMEDOUT: the timer is already due, only its softirq can lag.
	timeoutSlack = 100 * time.Millisecond

	// synCaptureWait is how long Hold waits for its SYN on the capture.
	// The SYN crosses loopback during connect, so it is normally queued
	// already; a slower one is read at Fail.
	synCaptureWait = 200 * time.Millisecond

	// failTries and failRetry: tcp_v4_err and tcp_v6_err only record a
	// soft error when the program holds the socket lock at that instant,
	// so the ICMP error (or, for a refusal, the reset) is sent again until
	// the connect has failed, for up to a second.
	failTries = 20
	failRetry = 50 * time.Millisecond

	// handshakeWait bounds the loopback handshake of the connection that
	// fills a full listener's queue: it completes within connect, or in
	// a softirq right after it.
	handshakeWait = time.Second

	// maxStash bounds the SYNs kept for held connects that never asked
	// for theirs (each is a few dozen bytes).
	maxStash = 4096

	// captureBuf holds a captured SYN: an IP header (at most 60 bytes,
	// 40 for IPv6) and a TCP header with options (at most 60).
	captureBuf = 256

	// kickWindow is the window the crafted ACK advertises: any nonzero
	// value, the kernel reads none of it in SYN_SENT.
	kickWindow = 1024

	// dropListenerBacklog is the privileged listener's backlog: its
	// filter drops every SYN, so the queue never holds anything.
	dropListenerBacklog = 1

	// fullListenerBacklog 0 admits exactly one connection
	// (sk_acceptq_is_full compares with >): the filler, never accepted.
	fullListenerBacklog = 0
)

// Package emulate does the target's connect for it: it copies the sockaddr
// out of the target's memory with the kernel's own validation rules,
// decodes it into a policy.Dest, duplicates the target's socket and
// performs the connect on that duplicate with the very bytes that were
// decided on, so the target cannot swap the address after the check.
//
// It also holds what acting for the target needs beyond that: the deputy
// that makes UNIX connects and sends with the target's credentials, the
// copying of messages out of target memory, and the tarpits (tarpit.go)
// that make an injected fault on a nonblocking TCP connect look like a real
// network failure, with privileges (raw sockets, ICMP) or without (a full
// accept queue, a closed loopback port, TCP_USER_TIMEOUT).
package emulate

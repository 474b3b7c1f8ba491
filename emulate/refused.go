package emulate

import (
	"encoding/binary"
	"syscall"

	"golang.org/x/sys/unix"
)

// What the kernel refuses in a send whatever its destination. A policy that
// denies a destination answers in the kernel's place only where the kernel
// would have used it: a send the kernel fails whatever the destination (its
// control buffer, its flags, its size, its control messages, the socket's
// pending error, a fault in its data) gets the kernel's errno, as natively.
// Route errors (ENETUNREACH for an address the network cannot reach, EACCES
// for a broadcast, EINVAL for a loopback source sending off the host)
// depend on the destination and stay the policy's.

// Sizes that bound a UDP datagram (udp_sendmsg, ip_append_data): a 16-bit
// length field, less the headers it covers.
const (
	maxIPLen      = 0xffff
	udpHeaderLen  = 8
	ipv4HeaderLen = 20
)

// unixDgramSndbufReserve: unix_dgram_sendmsg refuses a datagram longer
// than the send buffer less this (EMSGSIZE) before it looks the name up.
const unixDgramSndbufReserve = 32

// SendRefused returns the errno the kernel gives the send of m on fd (the
// duplicate of the target's socket) whatever its destination, or 0.
// Nothing is sent. Call it only for a message whose destination the policy
// refused.
func (c *Copier) SendRefused(fd int, info SocketInfo, m *Message, flags int) syscall.Errno {
	if e := m.ControlErrno(); e != 0 {
		return e
	}
	switch {
	case info.Domain == unix.AF_UNIX && info.Type == unix.SOCK_DGRAM:
		return UnixDgramRefused(fd, m, flags)
	case (info.Domain == unix.AF_INET || info.Domain == unix.AF_INET6) && info.Type == unix.SOCK_DGRAM && isUDP(fd):
		return c.udpRefused(fd, info, m, flags)
	}
	if m.Faulted() && info.Type != unix.SOCK_STREAM {
		return syscall.EFAULT // a datagram is copied whole before it goes anywhere
	}
	return 0
}

// UnixDgramRefused is what unix_dgram_sendmsg refuses before it looks its
// name up (after scm_send, which PrepareSCM judges): MSG_OOB, a message its
// send buffer cannot hold, a pending error (pendingError), then a fault in
// the data, which it copies first.
func UnixDgramRefused(fd int, m *Message, flags int) syscall.Errno {
	if flags&unix.MSG_OOB != 0 {
		return syscall.EOPNOTSUPP
	}
	if sndbuf, err := SendBuffer(fd); err == nil && m.Len > sndbuf-unixDgramSndbufReserve {
		return syscall.EMSGSIZE
	}
	if e := pendingError(fd); e != 0 {
		return e
	}
	if m.Faulted() {
		return syscall.EFAULT
	}
	return 0
}

// pendingError takes the socket's pending error (an ICMP error on UDP, a
// peer's reset on UNIX), as sock_alloc_send_pskb does when the send
// allocates its buffer, before the data is copied: natively that send
// fails with it and clears it, wherever it was going.
func pendingError(fd int) syscall.Errno {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return 0
	}
	return syscall.Errno(v)
}

func isUDP(fd int) bool {
	p, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	return err == nil && (p == unix.IPPROTO_UDP || p == unix.IPPROTO_UDPLITE)
}

// udpRefused follows udpv6_sendmsg and udp_sendmsg (Linux 6.18) up to the
// route lookup, then ip_append_data's size check and the copy of the data:
//   - on an IPv6 socket, a name that goes the IPv4 way (AF_INET, or an
//     IPv4-mapped address) is ENETUNREACH on an IPV6_V6ONLY socket, before
//     anything else is looked at;
//   - the IPv4 way refuses more than 64 KiB (EMSGSIZE), MSG_OOB
//     (EOPNOTSUPP) and port 0 (EINVAL) first; the IPv6 way ignores
//     MSG_OOB;
//   - the control messages (udp_cmsg_send, ip_cmsg_send,
//     ip6_datagram_send_ctl) are judged by the kernel itself (probeSend);
//   - then more than the IP packet holds is EMSGSIZE (ip_append_data), a
//     pending error is taken (pendingError), a fault is EFAULT, and more
//     GSO segments than UDP_MAX_SEGMENTS is EINVAL (udp_send_skb).
func (c *Copier) udpRefused(fd int, info SocketInfo, m *Message, flags int) syscall.Errno {
	v4 := info.Domain == unix.AF_INET || m.Name.ipv4Way()
	maxPayload := maxIPLen - udpHeaderLen // the IPv6 header is outside the payload length
	if v4 {
		if info.Domain == unix.AF_INET6 {
			if only, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); err == nil && only != 0 {
				return syscall.ENETUNREACH
			}
		}
		switch {
		case m.Len > maxIPLen:
			return syscall.EMSGSIZE
		case flags&unix.MSG_OOB != 0:
			return syscall.EOPNOTSUPP
		case m.Name.port() == 0:
			return syscall.EINVAL
		}
		maxPayload -= ipv4HeaderLen
	}
	if e := c.probeSend(info.Domain, v4, m, flags); e != 0 {
		return e
	}
	if m.Len > maxPayload {
		return syscall.EMSGSIZE
	}
	if e := pendingError(fd); e != 0 {
		return e
	}
	if m.Faulted() {
		return syscall.EFAULT
	}
	if gso := m.udpSegment(fd); gso > 0 && m.Len > gso*udpMaxSegments {
		return syscall.EINVAL // udp_send_skb, once the data is copied
	}
	return 0
}

// udpMaxSegments is UDP_MAX_SEGMENTS: a GSO send is cut into at most this
// many datagrams.
const udpMaxSegments = 128

// udpSegment is the GSO segment size the kernel uses for m on the UDP
// socket fd: the socket's UDP_SEGMENT, unless a UDP_SEGMENT control message
// (the last one, as udp_cmsg_send reads them all) says otherwise. A
// malformed one is EINVAL before this counts (probeSend).
func (m *Message) udpSegment(fd int) int {
	const solUDP, udpSegmentOpt = 17, 103 // SOL_UDP, UDP_SEGMENT
	gso, err := unix.GetsockoptInt(fd, solUDP, udpSegmentOpt)
	if err != nil {
		gso = 0
	}
	walkControl(m.control, func(cm *cmsg) syscall.Errno {
		if cm.malformed {
			return syscall.EINVAL
		}
		if cm.level == solUDP && cm.typ == udpSegmentOpt && len(cm.data) == 2 {
			gso = int(binary.NativeEndian.Uint16(cm.data))
		}
		return 0
	})
	return gso
}

// ipv4Way reports whether a name given to an IPv6 UDP socket is sent the
// IPv4 way: AF_INET, or an IPv4-mapped IPv6 address (udpv6_sendmsg).
func (s *Sockaddr) ipv4Way() bool {
	switch s.Family() {
	case syscall.AF_INET:
		return true
	case syscall.AF_INET6:
		b := s.Bytes()
		if len(b) < sockaddrIn6MinLen {
			return false
		}
		var mapped = [12]byte{10: 0xff, 11: 0xff}
		return [12]byte(b[8:20]) == mapped
	}
	return false
}

// port is the port of an inet name (sockaddr_in and sockaddr_in6 keep it
// at the same place), -1 when the name is too short to hold one.
func (s *Sockaddr) port() int {
	b := s.Bytes()
	if len(b) < 4 {
		return -1
	}
	return int(binary.BigEndian.Uint16(b[2:]))
}

// probeSend has the kernel judge m's flags and control messages as the
// protocol would, on a scratch UDP socket of the same family sending the
// same way (IPv4 or IPv6) to loopback's discard port with MSG_PROBE, which
// makes udp_sendmsg and udpv6_sendmsg stop after the route lookup: nothing
// is sent, the data is not read. Only the errnos of the checks before the
// route count (EINVAL, EOPNOTSUPP, EMSGSIZE), and the route's ENODEV for
// an interface that does not exist; anything else (ENETUNREACH for an
// interface that is down among them), or a scratch
// socket that cannot be made, is 0: the kernel's answer stays unknown and
// the policy's stands. The scratch socket is in the supervisor's network
// namespace: an IP_PKTINFO or IPV6_PKTINFO naming an interface or address
// of the target's alone is judged against the supervisor's.
func (c *Copier) probeSend(domain int, v4 bool, m *Message, flags int) syscall.Errno {
	const msgProbe = 0x10 // MSG_PROBE: do not send, only probe the path
	fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	name := loopbackDiscard(domain, v4)
	if domain == unix.AF_INET6 && v4 {
		if unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0) != nil {
			return 0
		}
	}
	_, e := m.Send(c, fd, flags|msgProbe|unix.MSG_DONTWAIT, &name)
	switch e {
	case syscall.EINVAL, syscall.EOPNOTSUPP, syscall.EMSGSIZE,
		syscall.ENODEV: // a PKTINFO interface index that names no interface
		return e
	}
	return 0
}

// loopbackDiscard is 127.0.0.1:9 (as ::ffff:127.0.0.1 on an IPv6 socket
// sending the IPv4 way), or [::1]:9.
func loopbackDiscard(domain int, v4 bool) Sockaddr {
	var b []byte
	be := binary.BigEndian
	if domain == unix.AF_INET {
		b = make([]byte, sockaddrInLen)
		binary.NativeEndian.PutUint16(b, unix.AF_INET)
		be.PutUint16(b[2:], 9)
		copy(b[4:], []byte{127, 0, 0, 1})
		return NewSockaddr(b)
	}
	b = make([]byte, sockaddrIn6MinLen+4)
	binary.NativeEndian.PutUint16(b, unix.AF_INET6)
	be.PutUint16(b[2:], 9)
	if v4 {
		copy(b[8+10:], []byte{0xff, 0xff, 127, 0, 0, 1})
	} else {
		b[8+15] = 1
	}
	return NewSockaddr(b)
}

// TCPv6RefusesIPv4 reports whether fd is an IPv6 TCP socket and sa an
// AF_INET name, which tcp_v6_connect refuses (EINVAL under
// SIN6_LEN_RFC2133 bytes, EAFNOSUPPORT from there) for a connect and a
// fast open alike: such a name reaches nothing, where an IPv6 UDP socket
// sends it the IPv4 way (Reaches). Other stream protocols (SCTP) may take
// it, so the protocol is asked.
func TCPv6RefusesIPv4(fd int, info SocketInfo, sa *Sockaddr) bool {
	if info.Domain != unix.AF_INET6 || info.Type != unix.SOCK_STREAM || sa.Family() != unix.AF_INET {
		return false
	}
	p, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	return err == nil && p == unix.IPPROTO_TCP
}

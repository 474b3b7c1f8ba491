package tarpit

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Packet layouts the tarpit reads (captured SYNs) and writes (ICMP errors,
// the ACK that kicks the retransmission timer, the reset that refuses).
const (
	ipv4HeaderLen = 20 // without options
	ipv6HeaderLen = 40 // the fixed header; SYNs carry no extension header
	tcpHeaderLen  = 20 // without options

	// icmpQuotedTCP is how much of the TCP header an ICMP error quotes
	// after the IP header (RFC 792): ports and sequence number, which
	// tcp_v4_err and tcp_v6_err match against the socket.
	icmpQuotedTCP = 8
	icmpHeaderLen = 8

	tcpFlagSYN = 0x02
	tcpFlagRST = 0x04
	tcpFlagACK = 0x10

	// tcpChecksumOffset is where the checksum sits in a TCP header.
	tcpChecksumOffset = 16
)

// sockAddr is an IP address and port, IPv4-mapped addresses unmapped (the
// form the packets carry).
type sockAddr struct {
	ip   netip.Addr
	port uint16
}

func (a sockAddr) String() string { return netip.AddrPortFrom(a.ip, a.port).String() }

func sockAddrOf(sa unix.Sockaddr) sockAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return sockAddr{netip.AddrFrom4(a.Addr), uint16(a.Port)}
	case *unix.SockaddrInet6:
		return sockAddr{netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)}
	}
	return sockAddr{}
}

// icmpError is the ICMP or ICMPv6 error code quoting syn. ICMPv6 raw
// sockets always have the kernel compute the checksum; ICMPv4 carries its
// own.
func icmpError(code icmpCode, syn []byte, v4 bool) []byte {
	msg := make([]byte, icmpHeaderLen, icmpHeaderLen+len(syn))
	msg[0], msg[1] = code.typ, code.code
	msg = append(msg, syn...)
	if v4 {
		binary.BigEndian.PutUint16(msg[2:], inetChecksum(0, msg))
	}
	return msg
}

// tcpSegment is a bare TCP segment (no options, no data, sequence number
// 0) from the tarpit (addr, port) to local, with flags, acknowledging ack
// and advertising window. IPv4 carries its checksum; for IPv6 the raw
// socket's IPV6_CHECKSUM has the kernel compute it.
func tcpSegment(addr netip.Addr, port uint16, local sockAddr, flags byte, ack uint32, window uint16) []byte {
	seg := make([]byte, tcpHeaderLen)
	binary.BigEndian.PutUint16(seg[0:], port)       // source port
	binary.BigEndian.PutUint16(seg[2:], local.port) // destination port
	binary.BigEndian.PutUint32(seg[8:], ack)        // acknowledgment number
	seg[12] = (tcpHeaderLen / 4) << 4               // data offset, in 32-bit words
	seg[13] = flags
	binary.BigEndian.PutUint16(seg[14:], window)
	if addr.Is4() {
		src, dst := addr.As4(), local.ip.As4()
		pseudo := make([]byte, 0, 12)
		pseudo = append(pseudo, src[:]...)
		pseudo = append(pseudo, dst[:]...)
		pseudo = append(pseudo, 0, unix.IPPROTO_TCP, 0, byte(len(seg)))
		binary.BigEndian.PutUint16(seg[tcpChecksumOffset:], inetChecksum(sumWords(0, pseudo), seg))
	}
	return seg
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func sumWords(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// inetChecksum is RFC 1071's checksum of b, continuing sum.
func inetChecksum(sum uint32, b []byte) uint16 {
	sum = sumWords(sum, b)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

package emulate

import (
	"encoding/binary"
	"net/netip"
	"syscall"

	"github.com/connvisor/connvisor/policy"
)

// MaxSockaddrLen is sizeof(struct sockaddr_storage): the kernel rejects a
// longer addrlen with EINVAL before it reads anything (move_addr_to_kernel).
const MaxSockaddrLen = 128

// Lengths the kernel requires before it will connect anywhere.
const (
	sockaddrInLen      = 16  // sizeof(struct sockaddr_in)
	sockaddrIn6MinLen  = 24  // SIN6_LEN_RFC2133: sockaddr_in6 without scope id
	sockaddrUnMaxLen   = 110 // sizeof(struct sockaddr_un)
	sockaddrFamilySize = 2   // sizeof(sa_family_t)
	sockaddrNlLen      = 12  // sizeof(struct sockaddr_nl)
)

// Sockaddr is a private copy of the address a target passed to connect.
// The connect performed for the target uses exactly these bytes.
type Sockaddr struct {
	raw [MaxSockaddrLen]byte
	len int
}

// NewSockaddr copies b (at most MaxSockaddrLen bytes).
func NewSockaddr(b []byte) Sockaddr {
	var s Sockaddr
	s.len = copy(s.raw[:], b)
	return s
}

// Bytes returns the copied address bytes.
func (s *Sockaddr) Bytes() []byte { return s.raw[:s.len] }

// Len is the addrlen the target passed.
func (s *Sockaddr) Len() int { return s.len }

// Family is sa_family, or -1 when the address is too short to have one.
func (s *Sockaddr) Family() int {
	if s.len < sockaddrFamilySize {
		return -1
	}
	return int(binary.NativeEndian.Uint16(s.raw[:2]))
}

// Malformed reports whether the kernel would refuse the address itself
// (EINVAL, EAFNOSUPPORT) before reaching any destination: too short for
// its family. Such an address names no destination, so the policy has
// nothing to decide and the kernel's own errno is what the target must see.
func (s *Sockaddr) Malformed() bool {
	switch s.Family() {
	case -1:
		return true
	case syscall.AF_INET:
		return s.len < sockaddrInLen
	case syscall.AF_INET6:
		return s.len < sockaddrIn6MinLen
	case syscall.AF_UNIX:
		// unix_validate_addr: family alone, or longer than sockaddr_un.
		return s.len <= sockaddrFamilySize || s.len > sockaddrUnMaxLen
	}
	return false
}

// Decode fills the address part of d (family, address, port, path) from s.
// It allocates only for AF_UNIX names. The socket type and the caller's
// identity are the caller's to fill.
func (s *Sockaddr) Decode(d *policy.Dest) {
	fam := s.Family()
	if fam < 0 {
		d.Family = 0
		return
	}
	d.Family = uint16(fam)
	b := s.raw[:s.len]
	switch fam {
	case syscall.AF_INET:
		if s.len < sockaddrInLen {
			return
		}
		d.Port = binary.BigEndian.Uint16(b[2:4])
		d.Addr = netip.AddrFrom4([4]byte(b[4:8]))
	case syscall.AF_INET6:
		if s.len < sockaddrIn6MinLen {
			return
		}
		d.Port = binary.BigEndian.Uint16(b[2:4])
		d.Addr = netip.AddrFrom16([16]byte(b[8:24]))
	case syscall.AF_UNIX:
		decodeUnix(b, d)
	case syscall.AF_NETLINK:
		// struct sockaddr_nl: nl_pid 0 and no multicast group address the
		// kernel itself (netlink_sendmsg, netlink_connect).
		if s.len >= sockaddrNlLen {
			d.Kernel = binary.NativeEndian.Uint32(b[4:8]) == 0 && binary.NativeEndian.Uint32(b[8:12]) == 0
		}
	}
}

// decodeUnix follows unix_mkname_bsd: a pathname ends at the first NUL
// within addrlen; a leading NUL makes the whole rest an abstract name.
func decodeUnix(b []byte, d *policy.Dest) {
	if len(b) <= sockaddrFamilySize {
		d.Unnamed = true
		return
	}
	if len(b) > sockaddrUnMaxLen {
		return
	}
	name := b[sockaddrFamilySize:]
	if name[0] == 0 {
		d.Abstract = true
		d.Path = string(name[1:])
		return
	}
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	d.Path = string(name)
}

// Reaches reports whether a socket of the given domain can reach anything
// with an address of s's family. When it cannot, the kernel refuses the
// address itself (EAFNOSUPPORT, EINVAL), so it names no destination: TCP
// and UDP over IPv4 take AF_INET only, IPv6 sockets AF_INET6 and (UDP)
// AF_INET, UNIX sockets AF_UNIX; AF_UNSPEC dissolves an association.
func (s *Sockaddr) Reaches(domain int) bool {
	switch f := s.Family(); domain {
	case syscall.AF_INET:
		return f == syscall.AF_INET || f == syscall.AF_UNSPEC
	case syscall.AF_INET6:
		return f == syscall.AF_INET6 || f == syscall.AF_INET || f == syscall.AF_UNSPEC
	case syscall.AF_UNIX:
		return f == syscall.AF_UNIX || f == syscall.AF_UNSPEC
	}
	return true
}

// DecodeSendNameOn is Decode for the destination of a send on a socket of
// the given domain and type. Family 0 means "unspecified, dissolve" only
// to connect; a send reads it the way its protocol does:
//   - IPv4 (udp_sendmsg, raw_sendmsg) takes an AF_UNSPEC name as an IPv4
//     address;
//   - IPv6 raw sockets (rawv6_sendmsg) take it as an IPv6 address, while
//     IPv6 UDP (udpv6_sendmsg) drops it and sends to the connected peer;
//   - packet sockets (packet_snd, packet_sendmsg_spkt) never look at the
//     family of their sockaddr_ll: whatever it says, the destination is
//     decided as an AF_PACKET one, which only a rule naming packet (or
//     any) allows.
func (s *Sockaddr) DecodeSendNameOn(d *policy.Dest, domain, sockType int) {
	unspec := s.Family() == syscall.AF_UNSPEC
	b := s.raw[:s.len]
	switch {
	case domain == syscall.AF_PACKET && s.len >= sockaddrFamilySize:
		d.Family = syscall.AF_PACKET
	case domain == syscall.AF_INET && unspec && s.len >= sockaddrInLen:
		d.Family = syscall.AF_INET
		d.Port = binary.BigEndian.Uint16(b[2:4])
		d.Addr = netip.AddrFrom4([4]byte(b[4:8]))
	case domain == syscall.AF_INET6 && unspec && sockType != syscall.SOCK_DGRAM && s.len >= sockaddrIn6MinLen:
		d.Family = syscall.AF_INET6
		d.Port = binary.BigEndian.Uint16(b[2:4])
		d.Addr = netip.AddrFrom16([16]byte(b[8:24]))
	default:
		s.Decode(d)
	}
}

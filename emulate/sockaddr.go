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

// DecodeSendName is Decode for the destination of a send. IPv4 UDP takes
// an AF_UNSPEC name as an IPv4 address (udp_sendmsg), so it must be
// decided as one, not as a dissolve.
func (s *Sockaddr) DecodeSendName(d *policy.Dest, domain int) {
	if domain == syscall.AF_INET && s.Family() == syscall.AF_UNSPEC && s.len >= sockaddrInLen {
		b := s.raw[:s.len]
		d.Family = syscall.AF_INET
		d.Port = binary.BigEndian.Uint16(b[2:4])
		d.Addr = netip.AddrFrom4([4]byte(b[4:8]))
		return
	}
	s.Decode(d)
}

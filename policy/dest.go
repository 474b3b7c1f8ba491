package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// String formats the destination as logs and `connvisor explain` show it:
// "tcp 10.20.3.4:5432", "udp [::1]:53", "ip 10.0.0.1:80" (socket type
// unknown), "unix /run/x.sock", "unix @name", "unix unnamed", "unspec",
// "netlink", "netlink kernel" (addressed to the kernel itself). Who connects (Exe, UID) is not part of it: logs carry those
// as fields of their own.
func (d Dest) String() string {
	switch d.Family {
	case syscall.AF_INET, syscall.AF_INET6:
		return sockTypeName(d.SockType) + " " + netip.AddrPortFrom(d.Addr, d.Port).String()
	case syscall.AF_UNIX:
		switch {
		case d.Abstract:
			return "unix @" + d.Path
		case d.Unnamed || d.Path == "":
			return "unix unnamed"
		}
		return "unix " + d.Path
	case syscall.AF_NETLINK:
		if d.Kernel {
			return "netlink kernel"
		}
	}
	return familyName(d.Family)
}

func sockTypeName(t int) string {
	switch t &^ (syscall.SOCK_NONBLOCK | syscall.SOCK_CLOEXEC) {
	case syscall.SOCK_STREAM:
		return "tcp"
	case syscall.SOCK_DGRAM:
		return "udp"
	}
	return "ip"
}

// ParseDest reads a destination in the form Dest.String writes, optionally
// followed by who connects: "tcp 10.20.3.4:5432 exe=/usr/bin/curl
// uid=1000". "ip" stands for an inet socket of unknown type.
func ParseDest(s string) (Dest, error) {
	var d Dest
	toks := tokenize(s)
	if len(toks) == 0 {
		return d, fmt.Errorf("empty destination (expected like \"tcp 10.0.0.1:443\", \"unix /run/x.sock\" or \"unspec\")")
	}
	rest := toks[1:]
	switch kind := toks[0].s; kind {
	case "tcp", "udp", "ip":
		if len(rest) == 0 {
			return d, fmt.Errorf("%s destination needs ADDR:PORT (like %s 10.0.0.1:443 or %s [::1]:53)", kind, kind, kind)
		}
		ap, err := netip.ParseAddrPort(rest[0].s)
		if err != nil {
			return d, fmt.Errorf("destination %q: expected ADDR:PORT, IPv6 in brackets: %w", rest[0].s, err)
		}
		d.Addr, d.Port = ap.Addr(), ap.Port()
		d.Family = syscall.AF_INET6
		if d.Addr.Is4() {
			d.Family = syscall.AF_INET
		}
		switch kind {
		case "tcp":
			d.SockType = syscall.SOCK_STREAM
		case "udp":
			d.SockType = syscall.SOCK_DGRAM
		}
		rest = rest[1:]
	case "unix":
		d.Family = syscall.AF_UNIX
		d.SockType = syscall.SOCK_STREAM
		if len(rest) == 0 {
			return d, fmt.Errorf("unix destination needs a path, @name or unnamed")
		}
		switch p := rest[0].s; {
		case p == "unnamed":
			d.Unnamed = true
		case strings.HasPrefix(p, "@"):
			d.Abstract, d.Path = true, p[1:]
		case strings.HasPrefix(p, "/") || strings.HasPrefix(p, "."):
			d.Path = p
		default:
			return d, fmt.Errorf("unix destination %q: expected a path, @name or unnamed", p)
		}
		rest = rest[1:]
	case "unspec":
		d.Family = syscall.AF_UNSPEC
	default:
		f, ok := familyByName(kind)
		if !ok {
			return d, fmt.Errorf("unknown destination kind %q (expected tcp, udp, ip, unix, unspec or a family name like netlink)", kind)
		}
		d.Family = f
		if f == syscall.AF_NETLINK && len(rest) > 0 && rest[0].s == "kernel" {
			d.Kernel = true
			rest = rest[1:]
		}
	}
	for _, t := range rest {
		k, v, _ := strings.Cut(t.s, "=")
		switch k {
		case "exe":
			d.Exe = v
		case "uid":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return d, fmt.Errorf("invalid uid %q (expected a number)", v)
			}
			d.UID = uint32(n)
		default:
			return d, fmt.Errorf("unexpected %q after the destination (expected exe=PATH or uid=N)", t.s)
		}
	}
	return d, nil
}

package policy

import (
	"strconv"
	"strings"
)

// families names the socket address families a rule can name. Numbers are
// Linux's (include/linux/socket.h); syscall lacks the newer ones (vsock,
// alg, xdp, ...), and a policy must be able to name them all.
var families = []struct {
	name string
	num  uint16
}{
	{"unspec", 0}, {"unix", 1}, {"inet", 2}, {"ax25", 3}, {"ipx", 4},
	{"appletalk", 5}, {"netrom", 6}, {"bridge", 7}, {"atmpvc", 8},
	{"x25", 9}, {"inet6", 10}, {"rose", 11}, {"decnet", 12},
	{"netbeui", 13}, {"security", 14}, {"key", 15}, {"netlink", 16},
	{"packet", 17}, {"ash", 18}, {"econet", 19}, {"atmsvc", 20},
	{"rds", 21}, {"sna", 22}, {"irda", 23}, {"pppox", 24},
	{"wanpipe", 25}, {"llc", 26}, {"ib", 27}, {"mpls", 28}, {"can", 29},
	{"tipc", 30}, {"bluetooth", 31}, {"iucv", 32}, {"rxrpc", 33},
	{"isdn", 34}, {"phonet", 35}, {"ieee802154", 36}, {"caif", 37},
	{"alg", 38}, {"nfc", 39}, {"vsock", 40}, {"kcm", 41},
	{"qipcrtr", 42}, {"smc", 43}, {"xdp", 44}, {"mctp", 45},
}

// familyByName returns the number of a family named like "netlink" or
// "AF_NETLINK" (any case). unix, inet and inet6 are not returned: they have
// matchers of their own.
func familyByName(s string) (uint16, bool) {
	s = strings.ToLower(strings.TrimPrefix(strings.ToUpper(s), "AF_"))
	if len(s) == 0 {
		return 0, false
	}
	if n, err := strconv.ParseUint(strings.TrimPrefix(s, "af"), 10, 16); err == nil && strings.HasPrefix(s, "af") && n != 1 && n != 2 && n != 10 {
		return uint16(n), true
	}
	for _, f := range families {
		if f.name == s {
			switch f.name {
			case "unix", "inet", "inet6":
				return 0, false
			}
			return f.num, true
		}
	}
	return 0, false
}

// familyName is the policy word for a family number ("netlink"), or
// "af42" for one without a name.
func familyName(n uint16) string {
	for _, f := range families {
		if f.num == n {
			return f.name
		}
	}
	return "af" + strconv.Itoa(int(n))
}

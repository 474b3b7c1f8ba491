package policy

import (
	"net/netip"
	"syscall"
	"time"
)

// Dest is one destination that a target tries to reach, as decoded from its
// sockaddr, plus who is connecting. The supervisor fills it; Decide reads it.
type Dest struct {
	// Family is the sockaddr's sa_family (syscall.AF_INET, AF_INET6,
	// AF_UNIX, AF_UNSPEC, AF_NETLINK, ...).
	Family uint16
	// SockType is the socket's type (syscall.SOCK_STREAM, SOCK_DGRAM,
	// SOCK_SEQPACKET, SOCK_RAW); 0 when unknown. tcp means SOCK_STREAM on
	// an inet socket, udp means SOCK_DGRAM on an inet socket.
	SockType int
	// Addr and Port are set for AF_INET and AF_INET6. An IPv4-mapped IPv6
	// address is kept as given; matching treats it as the IPv4 address.
	Addr netip.Addr
	Port uint16
	// Path is the AF_UNIX pathname, or the abstract name without its
	// leading NUL when Abstract is set. Unnamed is an AF_UNIX sockaddr of
	// family only (autobind peers).
	Path     string
	Abstract bool
	Unnamed  bool
	// Kernel: an AF_NETLINK address of the kernel itself (nl_pid 0 and
	// no multicast groups), not of another process.
	Kernel bool
	// Exe is the connecting process's executable path, UID its uid. The
	// supervisor fills them only when the policy says it needs them
	// (NeedsExe, NeedsUID), because reading them costs system calls.
	Exe string
	UID uint32
}

// Action is what a decision tells the supervisor to do.
type Action uint8

const (
	Allow Action = iota // perform the connect for the target
	Deny                // answer with Errno
	Log                 // allow, and log the decision at warn level
	Fail                // injected fault: answer Errno (after Delay), or hold (Blackhole)
)

// Decision is the outcome of Decide. It is a value: deciding allocates nothing.
type Decision struct {
	Action Action
	// Errno for Deny and Fail (positive, e.g. syscall.ECONNREFUSED).
	Errno syscall.Errno
	// Delay holds the connect this long before answering (allow or fail).
	Delay time.Duration
	// Blackhole: the connect never completes; a blocking one times out
	// with ETIMEDOUT after Timeout (0: the socket's SO_SNDTIMEO, else never).
	Blackhole bool
	Timeout   time.Duration
	// Rule is the rule that decided, nil when the default did.
	Rule *Rule
	// WouldDeny is set when a policy in audit mode allowed the connect
	// although Rule (nil: the default) denies it or injects a fault:
	// Action is then Allow, and WouldErrno is the errno the connect would
	// have got (0 for a blackhole, which Rule says). The supervisor logs
	// the decision as "would-deny".
	WouldDeny  bool
	WouldErrno syscall.Errno
	// Host is the name that explains the destination address, when one
	// does (DecideNamed): the name the rule matched, else a name the
	// tree's DNS answers gave for the address. HostVia says how it was
	// found: from an answer the tree received, or resolved at load.
	Host    string
	HostVia HostVia

	// pending is the fault rule (number pendingAt of the policy that
	// decided) whose schedule must count the connect before the decision
	// stands: see Pending and Policy.Count.
	pending   *Rule
	pendingAt int32
}

// Pending reports whether the decision waits on a fault rule's schedule:
// it is what the connect gets if the schedule fires, and Policy.Count
// says whether it does.
func (d Decision) Pending() bool { return d.pending != nil }

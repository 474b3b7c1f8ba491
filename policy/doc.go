// Package policy decides what a trapped connect may do. It is pure: it
// parses rules, matches destinations and returns decisions, and never makes
// a system call (host names are resolved through Options.Resolve, files
// read through Options.ReadFile), so every behaviour is testable with
// tables. GRAMMAR.md in this directory has the same grammar with more
// examples.
//
// # Policy files
//
// One rule a line; '#' at the start of a word begins a comment; blank lines
// are ignored. Rules are tried in order and the first that matches (and,
// for a fault rule, fires) decides. Rules from command-line flags come
// before the file's.
//
//	policy    = { line } .
//	line      = [ rule | default | include | resolve | mode | dnsgrace ] [ "#" comment ] .
//	rule      = action { word } .
//	action    = "allow" | "deny" | "log" | "fail" .
//	default   = "default" ( "allow" | "deny" | "log" ) [ "errno=" ERRNO ] [ "delay=" DURATION ]
//	          | "default" "deny=" ERRNO .
//	include   = "include" FILE .                  (relative to the including file; cycles are errors)
//	resolve   = "resolve" ( "every" DURATION | "never" ) .
//	mode      = "mode" ( "audit" | "enforce" ) .   (audit: see Policy.Audit)
//	dnsgrace  = "dns" "grace" DURATION .          (learned names count this long past their TTL; default 60s)
//	word      = proto | family | address | "port" PORTS | unixsock
//	          | "exe=" GLOB | "uid=" N [ "-" M ]
//	          | "errno=" ERRNO | "blackhole" | "when=" WHEN
//	          | "probability=" P | "delay=" DURATION | "timeout=" DURATION
//	          | "after=" DURATION | "for=" DURATION | "every=" DURATION
//	          | "allow-private" | compact .
//	proto     = "tcp" | "udp" | "any" .           (default any; tcp is SOCK_STREAM, udp SOCK_DGRAM)
//	family    = "unix" | "unspec" | "netlink" | "packet" | "vsock" | ... | "AF_NAME" | "afN" .
//	address   = IPV4 [ "/" LEN ] | IPV6 [ "/" LEN ] | "[" IPV6 [ "/" LEN ] "]" | HOST | "*." HOST | "*" | "inet" | "inet6"
//	          | "loopback" | "private" | "link-local" | "metadata" | "public" .
//	PORTS     = range { "," range } | "*" .       range = N [ "-" M ]
//	unixsock  = "/" GLOB | "@" GLOB | "unnamed" .
//	WHEN      = FIRST [ ".." LAST ] [ "+" [ STEP ] ] .
//
// The compact form is what --allow, --deny, --log, --fail and --default take,
// and it is accepted as a word of a file rule too, so a rule moves between
// flag and file unchanged:
//
//	compact   = [ ( "tcp" | "udp" | "any" ) ":" ] dest [ "=" ( ERRNO | "blackhole" ) ] [ ":" option { "," option } ] .
//	dest      = ( IPV4[/LEN] | "[" IPV6[/LEN] "]" | HOST | "*" ) [ ":" PORTS ] | IPV6[/LEN]
//	          | "unix" | "unix:/" GLOB | "unix:@" GLOB | "unix:unnamed" | "any" | family .
//	option    = ( "when" | "probability" | "delay" | "timeout" | "errno" | "after" | "for" | "every" ) "=" VALUE .
//
// # Matching
//
//   - An IPv4-mapped IPv6 destination (::ffff:a.b.c.d) matches IPv4 rules,
//     and a mapped prefix in a rule is read as the IPv4 prefix.
//   - tcp and udp match the socket's type; a destination of unknown type
//     matches only rules with protocol any.
//   - Globs (UNIX paths, exe=) follow path.Match: '*' and '?' do not match
//     '/', "**" matches anything including '/', [..] classes, '\' escapes.
//     In abstract names (@GLOB), which are not paths, '*' and '?' match '/'
//     as well, so `deny unix @*` covers every abstract socket.
//   - A rule with no destination word (`allow any`, `allow exe=/bin/x`)
//     matches every family except AF_UNSPEC.
//   - AF_UNSPEC (which dissolves a datagram association) is allowed unless
//     a rule names unspec: the default does not apply to it. Nor does it
//     apply to a netlink message to the kernel (nl_pid 0, no group; the
//     destination "netlink kernel"), which is no egress.
//   - An explicit --default replaces the embedded default policy: its
//     rules do not stay behind the flag rules.
//   - Host names (and wildcards *.example.com: one or more labels under
//     the name, not the name itself) match through the names the tree's
//     own DNS answers gave for the address (DecideNamed; see names.go).
//     An address no answer explains falls back to the addresses resolved
//     when the policy loads (all A and AAAA records) and again by
//     Reresolve, at the interval `resolve every` sets. A name that does not
//     resolve at load is a warning. A learned name allows a loopback,
//     private or link-local address only with allow-private.
//
// # Actions
//
// allow performs the connect (after delay=, if given). deny answers an
// errno (EPERM unless errno= says otherwise). log allows and asks for a
// warn-level log line. fail injects a fault: errno= (after delay=) or
// blackhole (the connect never completes; timeout= bounds a blocking one).
// when= selects which of the connects that match the rule fail, counted
// from 1 per rule and shared by every thread, with strace's meaning:
// FIRST only; FIRST..LAST; every STEP-th from FIRST ("FIRST+" is every one
// from FIRST). probability=P fails a matching connect with probability P,
// deterministically from the seed and the match number, so a run replays
// exactly with the same seed. after=, for= and every= give a fail rule a
// time window, counted from when the rule entered the policy (Load,
// Prepend, Insert; Reset restarts it) on the clock of Options.Now: it
// fires from after= on, for for= (then it expires), again every every=
// (flapping). A connect outside the window is not counted by when=. A fail
// rule that does not fire lets the connect fall through to the next rule.
//
// # Audit mode
//
// `mode audit` (or Options.Audit) turns every decision that would deny or
// inject a fault, the default's included, into an allow that carries what
// it would have been (Decision.WouldDeny, WouldErrno and Rule), so a policy
// can be tried on a running service without breaking it. Permits answers
// the enforced question without counting anything.
//
// # Speed
//
// Decide allocates nothing and is O(log n) in the number of CIDR rules: IP
// rules sit in one interval table per family (binary search, then the
// chain of containing prefixes), other rules in short per-family lists.
package policy

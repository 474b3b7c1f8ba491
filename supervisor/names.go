package supervisor

import (
	"net/netip"
	"syscall"

	"go.uber.org/zap"

	"github.com/connvisor/connvisor/dnslearn"
	"github.com/connvisor/connvisor/emulate"
	"github.com/connvisor/connvisor/policy"
)

// newNames makes the learner of the tree's DNS answers; nil when this
// process cannot capture packets (host-name rules then match the
// addresses resolved at load only).
func newNames(p *policy.Policy, opts Options, log *zap.Logger) *dnslearn.Learner {
	if err := dnslearn.Available(); err != nil {
		switch {
		case p.UsesNames():
			log.Warn("host names match only the addresses resolved at load: learning names from the program's DNS answers needs CAP_NET_RAW (run connvisor as root)", zap.Error(err))
		case opts.LearnNames:
			log.Warn("decisions carry no host names: learning them from the program's DNS answers needs CAP_NET_RAW (run connvisor as root)", zap.Error(err))
		}
		return nil
	}
	return dnslearn.New(log)
}

// learnsNames reports whether calls under pol are decided with the names
// the tree's DNS answers gave: pol matches by host name, or the options
// ask for the names (Options.LearnNames).
func (s *Supervisor) learnsNames(pol *policy.Policy) bool {
	return s.names != nil && (pol.UsesNames() || s.opts.LearnNames)
}

// decide applies the policy to d, with the names the tree's DNS answers
// gave for its address when the policy matches by host name (or
// Options.LearnNames asks for them). Like policy.Decide it counts nothing:
// a decision Pending on a fault schedule is settled by count.
func (s *Supervisor) decide(pol *policy.Policy, d *policy.Dest) policy.Decision {
	var buf [4]string
	return pol.DecideNamed(d, s.namesOf(pol, d, buf[:0]))
}

// count settles dec, decide's answer for d, where the call is performed:
// the fault schedules it meets count it (policy.Count), once per call.
func (s *Supervisor) count(pol *policy.Policy, d *policy.Dest, dec policy.Decision) policy.Decision {
	if !dec.Pending() {
		return dec
	}
	var buf [4]string
	return pol.Count(d, s.namesOf(pol, d, buf[:0]), dec)
}

// decideAndCount is decide then count, for a call performed right away.
func (s *Supervisor) decideAndCount(pol *policy.Policy, d *policy.Dest) policy.Decision {
	return s.count(pol, d, s.decide(pol, d))
}

// namesOf returns, in buf, the names the tree's DNS answers gave for d's
// address, when the policy is decided with names.
func (s *Supervisor) namesOf(pol *policy.Policy, d *policy.Dest, buf []string) []string {
	if !s.learnsNames(pol) || (d.Family != syscall.AF_INET && d.Family != syscall.AF_INET6) {
		return nil
	}
	return s.names.Names(d.Addr, pol.NameGrace(), buf)
}

// noteDNS tells the learner that the tree's socket dup has just connected
// or sent to a DNS server (port 53) as the policy allowed, so answers from
// that server to its local address are the tree's. It is called after the
// call, which may have bound the socket.
func (s *Supervisor) noteDNS(dup int, d *policy.Dest, sockType int) {
	if s.names == nil || dup < 0 || d.Port != 53 || (d.Family != syscall.AF_INET && d.Family != syscall.AF_INET6) {
		return
	}
	if !s.learnsNames(s.policy.Load()) {
		return
	}
	proto := dnslearn.UDP
	switch sockType &^ (syscall.SOCK_NONBLOCK | syscall.SOCK_CLOEXEC) {
	case syscall.SOCK_STREAM:
		proto = dnslearn.TCP
	case syscall.SOCK_DGRAM:
	default:
		return
	}
	s.names.NoteSocket(dup, proto, netip.AddrPortFrom(d.Addr, d.Port))
}

// prepareDNS makes sure a capture runs in the network namespace of dup
// before its call to port 53 is made: the answer may come back before the
// call returns.
func (s *Supervisor) prepareDNS(dup int, d *policy.Dest) {
	if s.names == nil || dup < 0 || d.Port != 53 || (d.Family != syscall.AF_INET && d.Family != syscall.AF_INET6) {
		return
	}
	if s.learnsNames(s.policy.Load()) {
		s.names.Prepare(dup)
	}
}

// noteSentDNS is noteDNS after a send with a destination.
func (s *Supervisor) noteSentDNS(c *call, m *emulate.Message) {
	if s.names == nil || !m.HasName || m.Name.Malformed() {
		return
	}
	var d policy.Dest
	m.Name.Decode(&d)
	s.noteDNS(c.dup.Int(), &d, c.info.Type)
}

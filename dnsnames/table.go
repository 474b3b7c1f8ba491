// Package dnsnames turns DNS answers into name → address mappings with
// their TTL, and answers which names an address was learned for. It has one
// job and makes no system call: answers in (wire format, as captured),
// mappings out. Memory is bounded; a message that does not parse, or that
// is not an answer to one question of class IN, adds nothing.
package dnsnames

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Limits. MaxEntries bounds the table (about 100 bytes an entry); maxChain
// bounds a CNAME chain (resolvers stop at 8 to 16 too); maxTTL bounds how
// long an answer may vouch for an address, whatever it claims.
const (
	DefaultMaxEntries = 65536
	maxChain          = 16
	maxTTL            = 24 * time.Hour
)

// ErrNotAnswer: the message parses but is no answer to learn from (a
// query, an error rcode, several questions, another class).
var ErrNotAnswer = errors.New("not an answer to learn from")

// ErrFull: the table holds MaxEntries live mappings; the answer's new
// mappings were dropped (connects to those addresses are then decided
// without them).
var ErrFull = errors.New("name table full")

type key struct {
	addr netip.Addr
	name string
}

// Table holds the mappings learned for one process tree. It is safe for
// concurrent use.
type Table struct {
	mu     sync.Mutex
	max    int
	until  map[key]time.Time       // when the mapping's TTL ends
	byAddr map[netip.Addr][]string // names per address, in learning order
}

// New returns an empty table bounded to max mappings (0: DefaultMaxEntries).
func New(max int) *Table {
	if max <= 0 {
		max = DefaultMaxEntries
	}
	return &Table{max: max, until: make(map[key]time.Time), byAddr: make(map[netip.Addr][]string)}
}

// Mapping is one name → address pair an answer gave, valid until Until.
type Mapping struct {
	Name  string
	Addr  netip.Addr
	Until time.Time
}

// Parse reads one DNS message and returns the mappings it gives: every A
// and AAAA record reached from the question's name through the answer's
// CNAME chain, under each name of the chain (the question's, each alias),
// with the smallest TTL along the way. Records the chain does not reach
// are ignored: an answer vouches only for what was asked.
func Parse(msg []byte, now time.Time) ([]Mapping, error) {
	var m dns.Msg
	if err := m.Unpack(msg); err != nil {
		return nil, fmt.Errorf("unpack DNS message: %w", err)
	}
	if !m.Response || m.Rcode != dns.RcodeSuccess || len(m.Question) != 1 || m.Question[0].Qclass != dns.ClassINET {
		return nil, ErrNotAnswer
	}
	chain := []string{Canonical(m.Question[0].Name)}
	ttl := maxTTL
	// Follow CNAMEs in the order the chain asks for them, not the order
	// the records come in (both are allowed).
	for len(chain) <= maxChain {
		next := ""
		for _, rr := range m.Answer {
			if c, ok := rr.(*dns.CNAME); ok && rr.Header().Class == dns.ClassINET && Canonical(c.Hdr.Name) == chain[len(chain)-1] {
				next = Canonical(c.Target)
				ttl = min(ttl, time.Duration(c.Hdr.Ttl)*time.Second)
				break
			}
		}
		if next == "" || contains(chain, next) {
			break
		}
		chain = append(chain, next)
	}
	last := chain[len(chain)-1]
	var out []Mapping
	for _, rr := range m.Answer {
		h := rr.Header()
		if h.Class != dns.ClassINET || Canonical(h.Name) != last {
			continue
		}
		var a netip.Addr
		switch r := rr.(type) {
		case *dns.A:
			a, _ = netip.AddrFromSlice(r.A.To4())
		case *dns.AAAA:
			a, _ = netip.AddrFromSlice(r.AAAA.To16())
		default:
			continue
		}
		if !a.IsValid() {
			continue
		}
		until := now.Add(min(ttl, time.Duration(h.Ttl)*time.Second))
		for _, n := range chain {
			out = append(out, Mapping{Name: n, Addr: a.Unmap(), Until: until})
		}
	}
	return out, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Canonical is a name as tables and rules compare it: lower case, no
// trailing dot.
func Canonical(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}

// Learn parses an answer and records its mappings. It returns how many it
// recorded.
func (t *Table) Learn(msg []byte, now time.Time) (int, error) {
	ms, err := Parse(msg, now)
	if err != nil {
		return 0, err
	}
	return t.Add(ms, now)
}

// Add records mappings; a mapping already known gets the later of the two
// expiries.
func (t *Table) Add(ms []Mapping, now time.Time) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	swept := false
	for _, m := range ms {
		k := key{m.Addr, m.Name}
		if old, ok := t.until[k]; ok {
			if m.Until.After(old) {
				t.until[k] = m.Until
			}
			n++
			continue
		}
		if len(t.until) >= t.max && !swept {
			// Full: drop what is past any grace, then, if that is not
			// enough, what is past its TTL (the grace gives way first).
			t.sweep(now.Add(-SweepAfter))
			if len(t.until) >= t.max {
				t.sweep(now)
			}
			swept = true
		}
		if len(t.until) >= t.max {
			return n, ErrFull
		}
		t.until[k] = m.Until
		t.byAddr[m.Addr] = append(t.byAddr[m.Addr], m.Name)
		n++
	}
	return n, nil
}

// sweep drops every mapping whose TTL ended before cutoff. The grace
// period is the reader's (Names): a mapping past its TTL is kept until
// SweepAfter has gone by, so no grace a policy can set outlives it, unless
// the table is full.
func (t *Table) sweep(cutoff time.Time) {
	for k, u := range t.until {
		if u.Before(cutoff) {
			t.remove(k)
		}
	}
}

// SweepAfter is how long a mapping is kept past its TTL: the longest grace
// period a policy may ask for.
const SweepAfter = 10 * time.Minute

func (t *Table) remove(k key) {
	delete(t.until, k)
	names := t.byAddr[k.addr]
	for i, n := range names {
		if n == k.name {
			names = append(names[:i], names[i+1:]...)
			break
		}
	}
	if len(names) == 0 {
		delete(t.byAddr, k.addr)
	} else {
		t.byAddr[k.addr] = names
	}
}

// Names appends to buf the names that resolved to a and whose TTL plus
// grace has not ended at now. IPv4-mapped addresses are looked up as IPv4.
func (t *Table) Names(a netip.Addr, now time.Time, grace time.Duration, buf []string) []string {
	a = a.Unmap().WithZone("")
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range t.byAddr[a] {
		if !now.After(t.until[key{a, n}].Add(grace)) {
			buf = append(buf, n)
		}
	}
	return buf
}

// Len is the number of mappings held (expired ones included until swept).
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.until)
}

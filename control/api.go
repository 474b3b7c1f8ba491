package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/connvisor/connvisor/policy"
	"github.com/connvisor/connvisor/supervisor"
)

// Bounds on request bodies: a policy file, and one rule in JSON.
const (
	maxPolicyBody = 1 << 20
	maxRuleBody   = 16 << 10
	maxDecisions  = 10000 // one page of /v1/decisions at most
)

// Handler serves the API (the UNIX socket's handler; Listen uses it).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/policy", s.getPolicy)
	mux.HandleFunc("PUT /v1/policy", s.putPolicy)
	mux.HandleFunc("GET /v1/rules", s.getPolicy)
	mux.HandleFunc("POST /v1/rules", s.addRule)
	mux.HandleFunc("DELETE /v1/rules/{id}", s.removeRule)
	mux.HandleFunc("GET /v1/stats", s.getStats)
	mux.HandleFunc("POST /v1/reset", s.reset)
	mux.HandleFunc("GET /v1/decisions", s.getDecisions)
	mux.Handle("GET /metrics", s.MetricsHandler())
	// The same paths with any other method: 405 naming the ones allowed
	// (a pattern with a method is more specific, so it wins).
	for path, allow := range map[string]string{
		"/v1/policy": "GET, PUT", "/v1/rules": "GET, POST", "/v1/rules/{id}": "DELETE", "/v1/stats": "GET",
		"/v1/reset": "POST", "/v1/decisions": "GET", "/metrics": "GET",
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			fail(w, http.StatusMethodNotAllowed, "%s %s: method not allowed (allowed: %s)", r.Method, r.URL.Path, allow)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, "no such endpoint %s %s (see GET /v1/policy, /v1/stats, /v1/decisions, /metrics)", r.Method, r.URL.Path)
	})
	return mux
}

// MetricsHandler serves the Prometheus metrics.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
}

// Observe takes one decision of the supervisor: counters, the decision
// log and the metrics. Wire it to supervisor.Cmd.OnDecision.
func (s *Server) Observe(e supervisor.Event) {
	s.stats.Record(e)
	d := e.Decision
	rule, id := "(default)", int64(-1)
	switch {
	case d.Rule != nil:
		rule, id = d.Rule.Origin(), int64(d.Rule.ID())
	case policy.NotEgress(&e.Dest) && d.Action == policy.Allow:
		rule = "(not egress)"
	}
	fam := familyLabel(e.Dest.Family)
	s.metrics.decisions.WithLabelValues(d.Action.String(), rule, fam).Inc()
	s.metrics.latency.Observe(e.Latency.Seconds())
	entry := Decision{
		Time: e.Time, Pid: e.Pid, Tid: e.Tid, Exe: e.Exe, Syscall: e.Syscall,
		Family: fam, Dest: e.Dest.String(), Decision: d.Action.String(), Rule: rule, RuleID: id,
		LatencyUS: float64(e.Latency.Nanoseconds()) / 1e3,
	}
	if e.Result != 0 {
		entry.Errno = policy.ErrnoName(e.Result)
	}
	if d.Action == policy.Fail {
		entry.Injected = "blackhole"
		if !d.Blackhole {
			entry.Injected = policy.ErrnoName(d.Errno)
		}
	}
	s.ring.add(entry)
}

func familyLabel(f uint16) string {
	switch f {
	case syscall.AF_INET:
		return "inet"
	case syscall.AF_INET6:
		return "inet6"
	case syscall.AF_UNIX:
		return "unix"
	case syscall.AF_NETLINK:
		return "netlink"
	case syscall.AF_UNSPEC:
		return "unspec"
	}
	return "af" + strconv.Itoa(int(f))
}

// RuleInfo is one rule as the API shows it.
type RuleInfo struct {
	ID      uint64 `json:"id"`
	Origin  string `json:"origin"`
	Rule    string `json:"rule"`              // long file form
	Compact string `json:"compact,omitempty"` // flag form, when there is one
	Action  string `json:"action"`
	// Matches counts the connects that reached a fault schedule; Active
	// says whether its time window is open now.
	Matches uint64 `json:"matches,omitempty"`
	Active  bool   `json:"active"`
}

// PolicyInfo is GET /v1/policy.
type PolicyInfo struct {
	Text    string     `json:"text"`
	Rules   []RuleInfo `json:"rules"`
	Default string     `json:"default"`
	Seed    int64      `json:"seed"`
}

func describe(p *policy.Policy) PolicyInfo {
	info := PolicyInfo{Rules: []RuleInfo{}, Seed: p.Seed()}
	var text strings.Builder
	for _, r := range p.Rules() {
		info.Rules = append(info.Rules, RuleInfo{
			ID: r.ID(), Origin: r.Origin(), Rule: r.String(), Compact: r.Compact(), Action: r.Action().String(),
			Matches: r.Matches(), Active: p.InWindow(r),
		})
		fmt.Fprintf(&text, "%-60s # id %d, %s\n", r.String(), r.ID(), r.Origin())
	}
	if dr := p.DefaultRule(); dr != nil {
		info.Default = dr.String()
	} else {
		d := p.DefaultDecision()
		info.Default = "default " + d.Action.String()
		if d.Action == policy.Deny {
			info.Default += " errno=" + policy.ErrnoName(d.Errno)
		}
	}
	text.WriteString(info.Default + "\n")
	info.Text = text.String()
	return info
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) {
	info := describe(s.Policy())
	if wantsText(r) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, info.Text)
		return
	}
	reply(w, http.StatusOK, info)
}

func wantsText(r *http.Request) bool {
	if r.URL.Query().Get("format") == "text" {
		return true
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "text/plain") && !strings.Contains(accept, "application/json")
}

// putPolicy replaces the whole policy with a text in the file language.
func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "text/plain" {
			fail(w, http.StatusUnsupportedMediaType, "PUT /v1/policy takes text/plain (a policy in the file language), not %q", ct)
			return
		}
	}
	body, ok := readBody(w, r, maxPolicyBody)
	if !ok {
		return
	}
	opts := s.cfg.LoadOptions
	opts.ReadFile = func(path string) ([]byte, error) {
		if path == "policy" {
			return body, nil
		}
		return nil, errors.New("include is not available in a policy sent over the API")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seed := s.target.Policy().Seed()
	opts.Seed = &seed
	p, err := policy.Load(nil, "policy", opts)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	if err := s.replaceLocked(p); err != nil {
		fail(w, http.StatusInternalServerError, "%v", err)
		return
	}
	s.metrics.changes.WithLabelValues("put").Inc()
	s.logChange(r, "policy replaced", zap.Int("rules", len(p.Rules())))
	reply(w, http.StatusOK, describe(s.Policy()))
}

// AddRule is the body of POST /v1/rules.
type AddRule struct {
	// Rule is one rule line of the file language.
	Rule string `json:"rule"`
	// After is the id of the rule to insert after; absent: in front.
	After *uint64 `json:"after,omitempty"`
}

func (s *Server) addRule(w http.ResponseWriter, r *http.Request) {
	var req AddRule
	if !decodeJSON(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Rule) == "" {
		fail(w, http.StatusBadRequest, `missing "rule" (like {"rule": "fail 127.0.0.1:5432=ECONNREFUSED:for=10s"})`)
		return
	}
	after := int64(-1)
	if req.After != nil {
		if *req.After > 1<<62 {
			fail(w, http.StatusNotFound, "no rule with id %d", *req.After)
			return
		}
		after = int64(*req.After)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	np, rule, err := s.Policy().Insert("api", req.Rule, after)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, policy.ErrNoRule) {
			code = http.StatusNotFound
		}
		fail(w, code, "%v", err)
		return
	}
	if err := s.applyLocked(np); err != nil {
		fail(w, http.StatusInternalServerError, "%v", err)
		return
	}
	s.metrics.changes.WithLabelValues("add").Inc()
	s.logChange(r, "rule added", zap.Uint64("id", rule.ID()), zap.String("rule", rule.String()), zap.Int64("after", after))
	reply(w, http.StatusCreated, RuleInfo{ID: rule.ID(), Origin: rule.Origin(), Rule: rule.String(), Compact: rule.Compact(),
		Action: rule.Action().String(), Active: np.InWindow(rule)})
}

func (s *Server) removeRule(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		fail(w, http.StatusBadRequest, "rule id %q: expected a number (see GET /v1/policy)", r.PathValue("id"))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	np, err := s.Policy().Remove(id)
	if err != nil {
		fail(w, http.StatusNotFound, "%v", err)
		return
	}
	if err := s.applyLocked(np); err != nil {
		fail(w, http.StatusInternalServerError, "%v", err)
		return
	}
	s.metrics.changes.WithLabelValues("remove").Inc()
	s.logChange(r, "rule removed", zap.Uint64("id", id))
	reply(w, http.StatusOK, map[string]uint64{"removed": id})
}

// DestStats is one destination of GET /v1/stats.
type DestStats struct {
	Dest    string  `json:"dest"`
	Seen    int     `json:"seen"`
	Allowed int     `json:"allowed"`
	Denied  int     `json:"denied"`
	Failed  int     `json:"failed"`
	P50US   float64 `json:"p50_us"`
	P90US   float64 `json:"p90_us"`
	P99US   float64 `json:"p99_us"`
}

// Stats is GET /v1/stats.
type Stats struct {
	Since        time.Time   `json:"since"`
	Destinations []DestStats `json:"destinations"`
}

func (s *Server) getStats(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := Stats{Since: s.resetT, Destinations: []DestStats{}}
	s.mu.Unlock()
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	for _, d := range s.stats.Summary() {
		out.Destinations = append(out.Destinations, DestStats{d.Dest, d.Seen, d.Allowed, d.Denied, d.Failed, us(d.P50), us(d.P90), us(d.P99)})
	}
	reply(w, http.StatusOK, out)
}

// reset zeroes the counters of /v1/stats and restarts every fault
// schedule and time window. Prometheus counters are not reset (they only
// go up), nor is the decision log (read it with since=).
func (s *Server) reset(w http.ResponseWriter, r *http.Request) {
	if _, ok := readBody(w, r, maxRuleBody); !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.target.Policy().Reset()
	s.stats.Reset()
	s.resetT = time.Now()
	s.metrics.changes.WithLabelValues("reset").Inc()
	s.logChange(r, "counters and schedules reset")
	reply(w, http.StatusOK, map[string]any{"reset": true, "last_seq": s.ring.last()})
}

// Decisions is GET /v1/decisions.
type Decisions struct {
	Decisions []Decision `json:"decisions"`
	// Next is the since= of the next call; Dropped counts decisions
	// after since that the bounded log no longer holds.
	Next    uint64 `json:"next"`
	Dropped uint64 `json:"dropped"`
}

func (s *Server) getDecisions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, limit := uint64(0), 1000
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			fail(w, http.StatusBadRequest, "since=%q: expected a decision number (0 for all)", v)
			return
		}
		since = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDecisions {
			fail(w, http.StatusBadRequest, "limit=%q: expected 1 to %d", v, maxDecisions)
			return
		}
		limit = n
	}
	out, next, dropped := s.ring.since(since, limit)
	if out == nil {
		out = []Decision{}
	}
	reply(w, http.StatusOK, Decisions{out, next, dropped})
}

// logChange logs a change with who made it, at warn level so that -q
// keeps this audit trail (as it keeps the fault seed).
func (s *Server) logChange(r *http.Request, what string, fields ...zap.Field) {
	p := peerOf(r.Context())
	s.log.Warn(what, append([]zap.Field{zap.Uint32("peer_uid", p.UID), zap.Int32("peer_pid", p.Pid)}, fields...)...)
}

// readBody reads a bounded body; an oversized one is 413.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(w, http.StatusRequestEntityTooLarge, "body larger than %d bytes", limit)
		} else {
			fail(w, http.StatusBadRequest, "read body: %v", err)
		}
		return nil, false
	}
	return b, true
}

// decodeJSON reads exactly one JSON object with known fields only.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			fail(w, http.StatusUnsupportedMediaType, "expected application/json, not %q", ct)
			return false
		}
	}
	body, ok := readBody(w, r, maxRuleBody)
	if !ok {
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, http.StatusBadRequest, "malformed JSON: %v", err)
		return false
	}
	if dec.More() {
		fail(w, http.StatusBadRequest, "malformed JSON: data after the object")
		return false
	}
	return true
}

// APIError is the body of every 4xx and 5xx answer.
type APIError struct {
	Error string `json:"error"`
}

func fail(w http.ResponseWriter, code int, format string, args ...any) {
	reply(w, code, APIError{fmt.Sprintf(format, args...)})
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

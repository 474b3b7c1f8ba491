package control

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/connvisor/connvisor/policy"
	"github.com/connvisor/connvisor/supervisor"
)

// Target is what a Server drives: *supervisor.Cmd and *supervisor.Supervisor
// are Targets, and so is any holder of one (the container agent).
type Target interface {
	Policy() *policy.Policy
	SetPolicy(*policy.Policy)
}

// Config tunes a Server; the zero value works.
type Config struct {
	// Logger receives one event per change (with the peer's uid and pid)
	// and per refused connection; nil logs nothing.
	Logger *zap.Logger
	// LoadOptions are used to load a policy sent with PUT /v1/policy
	// (Resolve, Now). ReadFile is ignored: a policy sent over the API has
	// no includes. The seed of the policy in force is kept.
	LoadOptions policy.Options
	// HeldCalls, when set, is exported as the connvisor_held_calls gauge.
	HeldCalls func() int
	// DecisionLog is how many recent decisions /v1/decisions keeps
	// (default 4096).
	DecisionLog int
	// AllowSameProcess serves connections from this very process, which
	// are otherwise refused because the wrapped tree's connects are made
	// by the supervisor. Only for tests that run the supervisor, the
	// server and the client in one process.
	AllowSameProcess bool
}

// DefaultDecisionLog is the default size of the decision log.
const DefaultDecisionLog = 4096

// Server is the control API of one supervised tree.
type Server struct {
	target  Target
	cfg     Config
	log     *zap.Logger
	metrics *metrics
	ring    *ring

	// mu serializes changes: each is computed from the policy in force
	// and swapped in whole.
	mu     sync.Mutex
	path   string // canonical path of the socket, "" before Listen
	stats  *supervisor.Stats
	resetT time.Time

	ln      net.Listener
	srv     *http.Server
	metrSrv *http.Server
	metrLn  net.Listener
}

// New returns a server driving t. Call Observe for every decision, then
// Listen.
func New(t Target, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.DecisionLog <= 0 {
		cfg.DecisionLog = DefaultDecisionLog
	}
	return &Server{
		target:  t,
		cfg:     cfg,
		log:     cfg.Logger.Named("control"),
		metrics: newMetrics(cfg.HeldCalls),
		ring:    newRing(cfg.DecisionLog),
		stats:   supervisor.NewStats(),
		resetT:  time.Now(),
	}
}

// guardOrigin names the rule that keeps the tree off the socket.
const guardOrigin = "control-socket"

// Listen makes the socket at path (mode 0600, owned by this process's
// user) and serves the API on it until Close. The path must not exist,
// or be a socket nobody listens on any more (left by a killed connvisor);
// it must contain no blank, because the policy rule that keeps the tree
// off it names it.
func (s *Server) Listen(path string) error {
	canon, err := canonicalSocketPath(path)
	if err != nil {
		return err
	}
	if err := removeStale(canon); err != nil {
		return err
	}
	s.mu.Lock()
	if s.target.Policy() == nil {
		s.mu.Unlock()
		return errors.New("control socket: the target has no policy yet")
	}
	s.path = canon
	err = s.applyLocked(s.userPolicy(s.target.Policy()))
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", canon)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	// bind made the file with 0777 &^ umask; only this user may connect
	// (connect needs write permission on the socket file).
	if err := os.Chmod(canon, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	s.ln = newGuardedListener(ln, s.log, s.cfg.AllowSameProcess)
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			p, _ := readPeer(c)
			return context.WithValue(ctx, peerKey{}, p)
		},
	}
	go s.srv.Serve(s.ln)
	s.log.Info("control API listening", zap.String("socket", canon))
	return nil
}

// ServeMetrics serves /metrics on a TCP address (":9464") until Close, for
// a Prometheus scraper that cannot reach the UNIX socket.
func (s *Server) ServeMetrics(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.MetricsHandler())
	s.metrSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.metrLn = ln
	go s.metrSrv.Serve(ln)
	s.log.Info("metrics listening", zap.Stringer("addr", ln.Addr()))
	return ln.Addr(), nil
}

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	var errs []error
	for _, srv := range []*http.Server{s.srv, s.metrSrv} {
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := srv.Shutdown(ctx); err != nil {
				errs = append(errs, srv.Close())
			}
			cancel()
		}
	}
	// Serve closes its listener, but may not have started yet: close it
	// here too, so the socket file is gone when Close returns.
	for _, ln := range []net.Listener{s.ln, s.metrLn} {
		if ln != nil {
			ln.Close()
		}
	}
	return errors.Join(errs...)
}

// Path is the socket's canonical path ("" before Listen).
func (s *Server) Path() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path
}

// SetPolicy replaces the policy in force with p, a policy just loaded (it
// changes p: its rules are numbered after the ids already given), keeping
// the tree off the control socket. A holder that reloads the policy
// (SIGUSR2, --watch) goes through here, not through the Target.
func (s *Server) SetPolicy(p *policy.Policy) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replaceLocked(p)
}

func (s *Server) replaceLocked(p *policy.Policy) error {
	s.target.Policy().Succeed(p)
	return s.applyLocked(p)
}

// CompareAndSwap puts next in force if old is still the policy in force,
// under the lock that orders the API's changes, so that a holder deriving
// a policy from the one in force (re-resolving host names) never undoes
// a change made meanwhile. next must already hold the guard rule (derive
// it from old, which does).
func (s *Server) CompareAndSwap(old, next *policy.Policy) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.target.Policy() != old {
		return false
	}
	s.target.SetPolicy(next)
	return true
}

// Policy is the policy in force as the API shows it: without the rule
// that keeps the tree off the control socket.
func (s *Server) Policy() *policy.Policy { return s.userPolicy(s.target.Policy()) }

// userPolicy strips the guard rule from p.
func (s *Server) userPolicy(p *policy.Policy) *policy.Policy {
	for _, r := range p.Rules() {
		if isGuard(r) {
			if np, err := p.Remove(r.ID()); err == nil {
				p = np
			}
		}
	}
	return p
}

func isGuard(r *policy.Rule) bool { return strings.HasPrefix(r.Origin(), guardOrigin+"#") }

// applyLocked puts the guard rule in front of p (a policy without one) and
// swaps it in.
func (s *Server) applyLocked(p *policy.Policy) error {
	if s.path != "" {
		g, _, err := p.Insert(guardOrigin, "deny unix "+globEscape(s.path)+" errno=EACCES", -1)
		if err != nil {
			return fmt.Errorf("guard rule for the control socket: %w", err)
		}
		p = g
	}
	s.target.SetPolicy(p)
	return nil
}

// globEscape makes path match itself only, as a policy glob.
func globEscape(path string) string {
	var b strings.Builder
	for _, c := range path {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// canonicalSocketPath is path made absolute with its directory's symlinks
// resolved: the name the supervisor decides a connect to it on.
func canonicalSocketPath(path string) (string, error) {
	if path == "" {
		return "", errors.New("control socket: empty path")
	}
	if strings.ContainsAny(path, " \t\r\n#") {
		return "", fmt.Errorf("control socket %q: the path may not contain blanks or '#'", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("control socket %q: %w", path, err)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", fmt.Errorf("control socket %q: directory: %w", path, err)
	}
	return filepath.Join(dir, filepath.Base(abs)), nil
}

// removeStale removes a socket file nobody listens on; anything else at
// path is an error.
func removeStale(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if st.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket %s: exists and is not a socket", path)
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: in use by another process", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	return os.Remove(path)
}

// ForCommand wires a server to cmd before it starts, as `connvisor run`
// does (and any other holder of a Cmd can): cmd's decisions feed the
// server, the held-calls gauge reads cmd's supervisor, and the API listens
// on socket ("" for none) and the metrics on metricsAddr ("" for none).
// Call it before cmd.Start, so the tree is kept off the socket from its
// first connect; Close the server when cmd is done.
func ForCommand(cmd *supervisor.Cmd, socket, metricsAddr string, cfg Config) (*Server, error) {
	if cfg.HeldCalls == nil {
		cfg.HeldCalls = func() int {
			if s := cmd.Supervisor(); s != nil {
				return s.HeldCalls()
			}
			return 0
		}
	}
	srv := New(cmd, cfg)
	cmd.OnDecision = srv.Observe
	if socket != "" {
		if err := srv.Listen(socket); err != nil {
			return nil, err
		}
	}
	if metricsAddr != "" {
		if _, err := srv.ServeMetrics(metricsAddr); err != nil {
			srv.Close()
			return nil, err
		}
	}
	return srv, nil
}

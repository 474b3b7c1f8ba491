package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/connvisor/connvisor/policy"
	"github.com/connvisor/connvisor/supervisor"
)

// Config is what an agent needs.
type Config struct {
	// Listen is the UNIX socket the runtimes connect to (the profile's
	// listenerPath). It is made with mode 0600.
	Listen string
	// PolicyDir holds the policy files that listenerMetadata and the
	// org.connvisor.policy annotation name.
	PolicyDir string
	// PolicyFile applies to containers that name no policy; "" refuses
	// them.
	PolicyFile string
	// LoadPolicy reads a policy file (the caller sets resolving and
	// seeds); nil: policy.Load with os.ReadFile.
	LoadPolicy func(path string) (*policy.Policy, error)
	// Logger gets the agent's events and every decision.
	Logger *zap.Logger
	// Options of the supervisor for every listener.
	Options supervisor.Options
	// HandoffTimeout: how long a runtime has to send its message once
	// connected (0: DefaultHandoffTimeout).
	HandoffTimeout time.Duration
	// Upgrade takes over from the agent running on Listen (see Upgrade)
	// instead of making the socket.
	Upgrade bool
}

// PolicyAnnotation names the policy file of a container, when the
// profile's listenerMetadata does not.
const PolicyAnnotation = "org.connvisor.policy"

// The CRI plugin's annotations that name a Kubernetes container.
const (
	annotationPod       = "io.kubernetes.cri.sandbox-name"
	annotationNamespace = "io.kubernetes.cri.sandbox-namespace"
	annotationContainer = "io.kubernetes.cri.container-name"
)

// maxGoneContainers bounds the containers whose supervision ended that the
// summary still shows.
const maxGoneContainers = 1000

// Agent accepts hand-offs and supervises their listeners.
type Agent struct {
	cfg Config
	log *zap.Logger

	mu         sync.Mutex
	containers map[string]*container
	gone       []string // ids of containers with no listener left, oldest first
	listeners  map[*listener]struct{}

	socket  *net.UnixListener
	upgrade *net.UnixListener
	wg      sync.WaitGroup
	// handoffs counts the hand-offs being read, which an upgrade waits for.
	handoffs sync.WaitGroup
}

// container is what the agent knows of one container.
type container struct {
	id, pod, namespace, name string
	source                   string // the policy file
	pol                      *policy.Policy
	stats                    *supervisor.Stats
	listeners                int // live ones
	handoffs                 int // every one seen
}

// listener is one supervised hand-off.
type listener struct {
	c      *container
	sup    *supervisor.Supervisor
	raw    []byte // the hand-off's JSON
	pid    int
	handed bool // given to a new agent: do not count it as gone
}

// New checks cfg and returns an agent that Serve runs.
func New(cfg Config) (*Agent, error) {
	if cfg.Listen == "" {
		return nil, errors.New("no socket path to listen on")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.HandoffTimeout <= 0 {
		cfg.HandoffTimeout = DefaultHandoffTimeout
	}
	if cfg.LoadPolicy == nil {
		cfg.LoadPolicy = func(path string) (*policy.Policy, error) {
			return policy.Load(nil, path, policy.Options{ReadFile: os.ReadFile})
		}
	}
	if cfg.PolicyDir != "" {
		if st, err := os.Stat(cfg.PolicyDir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("policy directory %s: not a directory (%v)", cfg.PolicyDir, err)
		}
	}
	if cfg.PolicyFile != "" {
		// A policy that does not load is refused at start, not at the
		// first container.
		if _, err := cfg.LoadPolicy(cfg.PolicyFile); err != nil {
			return nil, err
		}
	}
	return &Agent{
		cfg:        cfg,
		log:        cfg.Logger,
		containers: make(map[string]*container),
		listeners:  make(map[*listener]struct{}),
	}, nil
}

// UpgradePath is where an agent listening on listen waits for its
// successor.
func UpgradePath(listen string) string { return listen + ".upgrade" }

// Serve makes the sockets (or takes them over from a running agent, with
// Config.Upgrade) and supervises every listener handed over, until ctx
// ends: then it stops supervising (the containers' trapped calls fail with
// ENOSYS from then on) and returns nil. It returns ErrUpgraded when a new
// agent took everything over: supervision goes on there.
func (a *Agent) Serve(ctx context.Context) error {
	if a.cfg.Upgrade {
		err := a.takeOver()
		if errors.Is(err, errNoPredecessor) {
			// A DaemonSet's new pod on a fresh node has nobody to take
			// over from: it starts as the first agent.
			a.log.Warn("--upgrade: no agent runs here, starting as the first one", zap.Error(err))
		} else if err != nil {
			return err
		}
	}
	if a.socket == nil {
		l, err := listenUnix(a.cfg.Listen, "unix")
		if err != nil {
			return err
		}
		a.socket = l
	}
	up, err := listenUnix(UpgradePath(a.cfg.Listen), "unixpacket")
	if err != nil {
		a.socket.Close()
		return err
	}
	a.upgrade = up
	a.log.Info("agent listening", zap.String("socket", a.cfg.Listen), zap.String("policy_dir", a.cfg.PolicyDir),
		zap.String("policy", a.cfg.PolicyFile))
	upgraded := make(chan struct{})
	go a.acceptHandoffs(a.socket)
	go a.acceptUpgrades(upgraded)
	select {
	case <-ctx.Done():
		a.shutdown(true)
		return nil
	case <-upgraded:
		a.shutdown(false)
		return ErrUpgraded
	}
}

// ErrUpgraded: a new agent supervises every listener now.
var ErrUpgraded = errors.New("handed over to a new agent")

// listenUnix makes a UNIX socket at path, mode 0600, replacing a stale
// socket file (one nobody accepts on); a live one is an error: another
// agent runs there.
func listenUnix(path, network string) (*net.UnixListener, error) {
	if c, err := net.DialTimeout(network, path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("an agent already listens on %s (take over with --upgrade)", path)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		os.Remove(path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	// The umask makes the socket 0600 from the start: chmod afterwards
	// would leave a moment in which others could connect.
	old := unix.Umask(0o177)
	l, err := net.ListenUnix(network, &net.UnixAddr{Name: path, Net: network})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	return l, nil
}

// acceptHandoffs serves the runtimes' connections until sock closes.
func (a *Agent) acceptHandoffs(sock *net.UnixListener) {
	for {
		conn, err := sock.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				a.log.Error("accept a hand-off", zap.Error(err))
				time.Sleep(10 * time.Millisecond) // EMFILE and the like: do not spin
				continue
			}
			return
		}
		a.handoffs.Add(1)
		go func() {
			defer a.handoffs.Done()
			defer conn.Close()
			a.serveHandoff(conn)
		}()
	}
}

// serveHandoff takes one runtime's listener and supervises it, or refuses
// it with a log line.
func (a *Agent) serveHandoff(conn *net.UnixConn) {
	// A bug met by one hand-off must not take every container's
	// supervision down with the agent.
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("internal error reading a hand-off: connection closed, the agent goes on",
				zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	h, err := readHandoff(conn, a.cfg.HandoffTimeout)
	if err != nil {
		a.log.Warn("hand-off refused, connection closed", zap.Error(err), zap.String("container", h.state.State.ID))
		return
	}
	if err := a.adopt(h, ""); err != nil {
		a.log.Warn("listener refused: its container's trapped calls fail with ENOSYS",
			append(containerFields(h.state), zap.Int("pid", h.state.Pid), zap.Error(err))...)
	}
}

// adopt supervises h's listener under the container's policy (source, if
// given, else the one the hand-off names), or closes it.
func (a *Agent) adopt(h handoff, source string) error {
	defer h.listener.Close() // unless Supervise takes it
	id := h.state.State.ID
	a.mu.Lock()
	c := a.containers[id]
	a.mu.Unlock()
	if source == "" {
		var err error
		source, err = a.policySource(h.state)
		if err != nil {
			return err
		}
	}
	var pol *policy.Policy
	if c != nil && c.source == source {
		a.mu.Lock()
		pol = c.pol // listeners of a container share its policy and schedules
		a.mu.Unlock()
	} else {
		p, err := a.cfg.LoadPolicy(source)
		if err != nil {
			return fmt.Errorf("policy %s: %w", source, err)
		}
		pol = p
	}
	a.mu.Lock()
	if c = a.containers[id]; c == nil || c.source != source {
		c = newContainer(h.state, source, pol)
		a.containers[id] = c
		a.dropGone(id)
	}
	c.listeners++
	c.handoffs++
	pol = c.pol
	a.mu.Unlock()
	fields := append(containerFields(h.state), zap.Int("listener_pid", h.state.Pid))
	log := a.log.With(fields...)
	sup, err := supervisor.Supervise(h.listener.Release(), pol, supervisor.SuperviseConfig{Logger: log, Options: a.cfg.Options, Stats: c.stats})
	if err != nil {
		a.mu.Lock()
		c.listeners--
		a.mu.Unlock()
		return err
	}
	l := &listener{c: c, sup: sup, raw: h.raw, pid: h.state.Pid}
	a.mu.Lock()
	a.listeners[l] = struct{}{}
	a.mu.Unlock()
	log.Info("supervising", zap.String("policy", source), zap.String("runtime_status", string(h.state.State.Status)))
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		<-sup.Done()
		a.release(l)
	}()
	return nil
}

// release forgets a listener whose supervision ended.
func (a *Agent) release(l *listener) {
	l.sup.Stop()
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.listeners[l]; !ok {
		return
	}
	delete(a.listeners, l)
	l.c.listeners--
	if l.handed {
		return
	}
	if l.c.listeners == 0 {
		a.gone = append(a.gone, l.c.id)
		for len(a.gone) > maxGoneContainers {
			delete(a.containers, a.gone[0])
			a.gone = a.gone[1:]
		}
	}
	a.log.Info("supervision ended: no process uses the listener", zap.String("container", l.c.id), zap.Int("listener_pid", l.pid))
}

// dropGone removes id from the gone list (a container id seen again).
func (a *Agent) dropGone(id string) {
	for i, g := range a.gone {
		if g == id {
			a.gone = append(a.gone[:i], a.gone[i+1:]...)
			return
		}
	}
}

func newContainer(st specs.ContainerProcessState, source string, pol *policy.Policy) *container {
	an := st.State.Annotations
	return &container{
		id: st.State.ID, pod: an[annotationPod], namespace: an[annotationNamespace], name: an[annotationContainer],
		source: source, pol: pol, stats: supervisor.NewStats(),
	}
}

// containerFields name the container on every log line.
func containerFields(st specs.ContainerProcessState) []zap.Field {
	f := []zap.Field{zap.String("container", st.State.ID)}
	an := st.State.Annotations
	for _, k := range []struct{ key, field string }{
		{annotationPod, "pod"}, {annotationNamespace, "namespace"}, {annotationContainer, "container_name"},
	} {
		if v := an[k.key]; v != "" {
			f = append(f, zap.String(k.field, v))
		}
	}
	return f
}

// policySource chooses the policy file of a hand-off: listenerMetadata,
// else the annotation, else the agent's own, else none (an error).
func (a *Agent) policySource(st specs.ContainerProcessState) (string, error) {
	named := func(how, name string) (string, error) {
		if a.cfg.PolicyDir == "" {
			return "", fmt.Errorf("%s names policy %q, but the agent has no --policy-dir", how, name)
		}
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
			return "", fmt.Errorf("%s names %q, which is not a file name", how, name)
		}
		for _, cand := range []string{name, name + ".policy"} {
			p := filepath.Join(a.cfg.PolicyDir, cand)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
		}
		return "", fmt.Errorf("%s names policy %q, which is not in %s (as %s or %s.policy)", how, name, a.cfg.PolicyDir, name, name)
	}
	if st.Metadata != "" {
		return named("listenerMetadata", st.Metadata)
	}
	if v, ok := st.State.Annotations[PolicyAnnotation]; ok {
		return named("annotation "+PolicyAnnotation, v)
	}
	if a.cfg.PolicyFile != "" {
		return a.cfg.PolicyFile, nil
	}
	return "", errors.New("no policy: the profile's listenerMetadata and the annotation " + PolicyAnnotation +
		" name none, and the agent has no --policy")
}

// shutdown stops accepting and, when stopAll, stops every supervisor (the
// listeners close: their calls fail with ENOSYS). The socket file is
// removed only when this agent owns it still (not after an upgrade).
func (a *Agent) shutdown(stopAll bool) {
	if a.upgrade != nil {
		a.upgrade.Close()
	}
	if stopAll {
		a.mu.Lock()
		sock := a.socket
		a.mu.Unlock()
		sock.Close()
		os.Remove(a.cfg.Listen)
		os.Remove(UpgradePath(a.cfg.Listen))
		a.mu.Lock()
		ls := make([]*listener, 0, len(a.listeners))
		for l := range a.listeners {
			ls = append(ls, l)
		}
		a.mu.Unlock()
		for _, l := range ls {
			l.sup.Stop()
		}
	}
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		a.log.Warn("calls still held at exit; they end with the process")
	}
}

// shutdownGrace bounds how long an agent waits for held calls at exit.
const shutdownGrace = 5 * time.Second

// WriteSummary prints, per container, its counters: live containers first,
// then the ones whose supervision ended, each by id.
func (a *Agent) WriteSummary(w io.Writer) error {
	a.mu.Lock()
	cs := make([]*container, 0, len(a.containers))
	for _, c := range a.containers {
		cs = append(cs, c)
	}
	type line struct {
		c              *container
		live, handoffs int
	}
	lines := make([]line, len(cs))
	for i, c := range cs {
		lines[i] = line{c, c.listeners, c.handoffs}
	}
	a.mu.Unlock()
	sort.Slice(lines, func(i, j int) bool {
		if (lines[i].live > 0) != (lines[j].live > 0) {
			return lines[i].live > 0
		}
		return lines[i].c.id < lines[j].c.id
	})
	fmt.Fprintf(w, "connvisor agent summary: %d containers\n", len(lines))
	for _, l := range lines {
		c := l.c
		state := "running"
		if l.live == 0 {
			state = "gone"
		}
		who := ""
		if c.pod != "" || c.name != "" {
			who = fmt.Sprintf(" (pod %s/%s, container %s)", c.namespace, c.pod, c.name)
		}
		fmt.Fprintf(w, "container %s%s: %s, policy %s, %d listeners (%d live)\n", c.id, who, state, c.source, l.handoffs, l.live)
		if err := c.stats.WriteSummary(w); err != nil {
			return err
		}
	}
	return nil
}

// Reload reads every live container's policy file again and swaps it in
// for all of the container's listeners; a file that no longer loads is
// logged and the policy in force stays.
func (a *Agent) Reload() {
	a.mu.Lock()
	byContainer := map[*container][]*listener{}
	for l := range a.listeners {
		byContainer[l.c] = append(byContainer[l.c], l)
	}
	a.mu.Unlock()
	for c, ls := range byContainer {
		p, err := a.cfg.LoadPolicy(c.source)
		if err != nil {
			a.log.Error("policy reload rejected, the old policy stays in force",
				zap.String("container", c.id), zap.String("policy", c.source), zap.Error(err))
			continue
		}
		a.mu.Lock()
		c.pol = p
		a.mu.Unlock()
		for _, l := range ls {
			l.sup.SetPolicy(p)
		}
		a.log.Info("policy reloaded", zap.String("container", c.id), zap.String("policy", c.source), zap.Int("rules", len(p.Rules())))
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The rows of issue 15: real software under a real policy. Every connect
// of a policy that is not allow-all is emulated; "--deny 192.0.2.99:1"
// denies nothing these programs reach, so the emulated row does the same
// work as the others.
var emulatedPolicy = []string{"--default", "allow", "--deny", "192.0.2.99:1"}

// debianTool is a program a row needs and the Debian package that has it.
type debianTool struct{ bin, pkg string }

var realTools = []debianTool{
	{"ab", "apache2-utils"},
	{"nginx", "nginx-light"},
	{"redis-server", "redis-server"},
	{"redis-benchmark", "redis-tools"},
}

// ensureTools installs the Debian packages of the missing tools (the full
// run only: a CI run or go test does not install software) and returns
// what is still missing.
func (b *bench) ensureTools() map[string]bool {
	missing := map[string]bool{}
	var pkgs []string
	for _, t := range realTools {
		if _, err := exec.LookPath(t.bin); err != nil {
			missing[t.bin] = true
			pkgs = append(pkgs, t.pkg)
		}
	}
	if len(pkgs) == 0 || !b.cfg.Install {
		return missing
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return missing
	}
	fmt.Fprintf(b.out, "(installing %s with apt-get)\n", strings.Join(pkgs, " "))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := func(pkgs []string) error {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"install", "-y", "-qq", "--no-install-recommends"}, pkgs...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, tail(string(out)))
		}
		return nil
	}
	if err := install(pkgs); err != nil {
		// Package lists may be stale or absent: refresh once. nginx-light
		// is gone from newer Debian releases; nginx is the same server.
		exec.CommandContext(ctx, "apt-get", "update", "-qq").Run()
		for i, p := range pkgs {
			if p == "nginx-light" {
				pkgs[i] = "nginx"
			}
		}
		if err := install(pkgs); err != nil {
			fmt.Fprintf(b.out, "(apt-get install failed: %v)\n", err)
		}
	}
	for bin := range missing {
		if _, err := exec.LookPath(bin); err == nil {
			delete(missing, bin)
		}
	}
	return missing
}

// freePort returns a loopback port nobody listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// server is a process the benchmark runs natively for the wrapped clients.
type server struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	stderr bytes.Buffer
}

// startServer starts argv and waits until it accepts on port.
func (b *bench) startServer(port int, argv ...string) (*server, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cmd: b.command(ctx, argv), cancel: cancel}
	s.cmd.Stderr = &s.stderr
	if err := s.cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("%s: %w", argv[0], err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s does not accept on port %d: %v\n%s", argv[0], port, err, tail(s.stderr.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) stop() {
	s.cancel()
	s.cmd.Wait()
}

func (b *bench) startNginx() (*server, int, error) {
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	dir := filepath.Join(b.dir, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, err
	}
	// One worker: the client, the server and the supervisor share 2 CPUs.
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen 127.0.0.1:%[2]d backlog=4096;
		location / { return 200 "ok\n"; }
	}
}
`, dir, port)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, 0, err
	}
	s, err := b.startServer(port, "nginx", "-p", dir, "-c", path)
	return s, port, err
}

func (b *bench) startRedis() (*server, int, error) {
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	s, err := b.startServer(port, "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
		"--dir", b.dir, "--logfile", "", "--tcp-backlog", "4096")
	return s, port, err
}

// runOutput runs argv to completion and returns its standard output.
func (b *bench) runOutput(argv []string, env ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := b.command(ctx, argv, env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: timed out after %v", strings.Join(argv, " "), b.cfg.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v\n%s%s", strings.Join(argv, " "), err, tail(stdout.String()), tail(stderr.String()))
	}
	return stdout.Bytes(), nil
}

var (
	abRate     = regexp.MustCompile(`Requests per second:\s+([\d.]+)`)
	abFailed   = regexp.MustCompile(`Failed requests:\s+(\d+)`)
	abNon2xx   = regexp.MustCompile(`Non-2xx responses:\s+(\d+)`)
	abComplete = regexp.MustCompile(`Complete requests:\s+(\d+)`)
)

// parseAB reads ab's requests per second, and fails a run whose requests
// did not all succeed.
func parseAB(out []byte, n int) (float64, error) {
	m := abRate.FindSubmatch(out)
	c := abComplete.FindSubmatch(out)
	if m == nil || c == nil {
		return 0, fmt.Errorf("ab printed no rate:\n%s", tail(string(out)))
	}
	if f := abFailed.FindSubmatch(out); f != nil && string(f[1]) != "0" {
		return 0, fmt.Errorf("ab: %s failed requests", f[1])
	}
	if f := abNon2xx.FindSubmatch(out); f != nil {
		return 0, fmt.Errorf("ab: %s non-2xx responses", f[1])
	}
	if string(c[1]) != strconv.Itoa(n) {
		return 0, fmt.Errorf("ab: %s of %d requests complete", c[1], n)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// parseRedisCSV reads redis-benchmark --csv: the mean requests per second
// of its PING tests (inline and multi-bulk).
func parseRedisCSV(out []byte) (float64, error) {
	recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark --csv: %w\n%s", err, tail(string(out)))
	}
	var sum float64
	var n int
	for _, r := range recs {
		if len(r) < 2 || !strings.HasPrefix(r[0], "PING") {
			continue
		}
		v, err := strconv.ParseFloat(r[1], 64)
		if err != nil {
			return 0, fmt.Errorf("redis-benchmark rate %q: %w", r[1], err)
		}
		sum += v
		n++
	}
	if n == 0 {
		return 0, errors.New("redis-benchmark printed no PING rate:\n" + tail(string(out)))
	}
	return sum / float64(n), nil
}

// realRow is one workload of the real-software table: how to run it under
// a prefix, and what it yields (higher better for rates, lower for times).
type realRow struct {
	name   string
	unit   string
	higher bool // a rate: higher is better
	target string
	run    func(prefix []string) (float64, error)
	skip   string // why the row is not measured
}

func (b *bench) realSoftware() error {
	missing := b.ensureTools()
	abN, redisN, sendN := 5000, 10000, b.cfg.UDP
	if b.cfg.Quick {
		abN, redisN = 500, 2000
	}
	var rows []realRow

	var notes []string
	if missing["ab"] || missing["nginx"] {
		rows = append(rows, realRow{name: "ab -c 16, nginx", skip: "ab or nginx missing (apt-get install apache2-utils nginx-light)"})
	} else {
		srv, port, err := b.startNginx()
		if err != nil {
			return err
		}
		defer srv.stop()
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		rows = append(rows, realRow{name: fmt.Sprintf("ab -n %d -c 16, nginx, req/s", abN), higher: true, target: "≥ 0.85",
			run: func(prefix []string) (float64, error) {
				out, err := b.runOutput(append(append([]string{}, prefix...), "ab", "-q", "-n", strconv.Itoa(abN), "-c", "16", url))
				if err != nil {
					return 0, err
				}
				return parseAB(out, abN)
			}})
	}
	if missing["redis-server"] || missing["redis-benchmark"] {
		rows = append(rows, realRow{name: "redis-benchmark PING", skip: "redis missing (apt-get install redis-server redis-tools)"})
	} else {
		srv, port, err := b.startRedis()
		if err != nil {
			return err
		}
		defer srv.stop()
		rows = append(rows, realRow{name: fmt.Sprintf("redis-benchmark PING -c 20 -k 0 -n %d, req/s", redisN), higher: true, target: "≥ 0.85",
			run: func(prefix []string) (float64, error) {
				out, err := b.runOutput(append(append([]string{}, prefix...), "redis-benchmark", "-p", strconv.Itoa(port),
					"-c", "20", "-k", "0", "-n", strconv.Itoa(redisN), "-t", "ping", "--csv"))
				if err != nil {
					return 0, err
				}
				return parseRedisCSV(out)
			}})
	}
	hsrv, hurl, err := startHTTP()
	if err != nil {
		return err
	}
	defer hsrv.Close()
	rows = append(rows,
		realRow{name: "Go HTTP client, 50×10 GETs, no keep-alive, ms", target: "≤ 1.2×",
			run: func(prefix []string) (float64, error) {
				r, err := b.runOnce(append(append([]string{}, prefix...), b.self, hurl, "500", "10"), helperEnv+"=httpclient")
				if err != nil {
					return 0, err
				}
				if r["errors"] != "0" {
					return 0, fmt.Errorf("HTTP client: %s errors", r["errors"])
				}
				return r.float("ms"), nil
			}},
		realRow{name: "UDP connect, µs", target: "table 2",
			run: b.targetRow("udp", strconv.Itoa(b.cfg.UDP), "9")},
		realRow{name: "sendmsg 64 B, connected UNIX datagram, µs", target: "≤ 1.3× allow-all",
			run: b.targetRow("sendunix", strconv.Itoa(sendN))},
		realRow{name: "sendmsg 64 B, connected UDP, µs", target: "≤ 1.3× allow-all",
			run: b.targetRow("sendudp", strconv.Itoa(sendN))},
		realRow{name: fmt.Sprintf("%d threads, TCP cycles/s", stormThreads), higher: true, target: "≥ 0.7",
			run: func(prefix []string) (float64, error) {
				r, err := b.runOnce(append(append([]string{}, prefix...), b.target, "threads", strconv.Itoa(stormThreads), strconv.Itoa(b.cfg.StormConns)))
				if err != nil {
					return 0, err
				}
				if r["errors"] != "0" {
					return 0, fmt.Errorf("%d threads: %s connects failed", stormThreads, r["errors"])
				}
				return r.float("rate"), nil
			}},
	)

	vs := []variant{
		{"native", nil, "ok"},
		{"allow-all", []string{b.cv, "run", "-q", "--default", "allow", "--"}, "ok"},
		{"emulated", append(append([]string{b.cv, "run", "-q"}, emulatedPolicy...), "--"), "ok"},
	}
	if b.cfg.Baseline != "" {
		// Another build (an earlier commit) in the same rounds: before
		// and after from one run.
		vs = append(vs, variant{"emulated, baseline", append(append([]string{b.cfg.Baseline, "run", "-q"}, emulatedPolicy...), "--"), "ok"})
	}
	vals := make([][][]float64, len(rows))
	for i := range vals {
		vals[i] = make([][]float64, len(vs))
	}
	for round := 0; round < b.cfg.Rounds; round++ {
		for ri, row := range rows {
			if row.skip != "" {
				continue
			}
			for k := range vs {
				vi := (k + round) % len(vs)
				x, err := row.run(vs[vi].prefix)
				if err != nil {
					return fmt.Errorf("%s under %s: %w", row.name, vs[vi].name, err)
				}
				vals[ri][vi] = append(vals[ri][vi], x)
			}
		}
	}
	t := &table{title: fmt.Sprintf("8. Real software under a real policy (issue 15): median over %d interleaved rounds", b.cfg.Rounds)}
	head := []string{"workload", "native", "allow-all", "emulated", "emulated ×native", "÷ allow-all", "target"}
	if b.cfg.Baseline != "" {
		head = append(head, "baseline emulated", "baseline ×native")
	}
	t.row(head...)
	for ri, row := range rows {
		if row.skip != "" {
			t.row(row.name, "-", "-", "-", "-", "-", row.target)
			notes = append(notes, row.name+": skipped, "+row.skip)
			continue
		}
		nat, all, emu := median(vals[ri][0]), median(vals[ri][1]), median(vals[ri][2])
		format := f2
		if row.higher {
			format = func(x float64) string { return fmt.Sprintf("%.0f", x) }
		}
		cells := []string{row.name, format(nat), format(all), format(emu), fmt.Sprintf("%.2f×", emu/nat), fmt.Sprintf("%.2f×", emu/all), row.target}
		if b.cfg.Baseline != "" {
			base := median(vals[ri][3])
			cells = append(cells, format(base), fmt.Sprintf("%.2f×", base/nat))
		}
		t.row(cells...)
	}
	if b.cfg.Baseline != "" {
		notes = append(notes, "baseline: "+b.cfg.Baseline+", emulated, in the same rounds.")
	}
	t.notes = append(notes,
		"clients wrapped, servers native (nginx: 1 worker; redis-server; a Go server in the bench process). Rates: higher is better; µs and ms: lower is better.",
		"allow-all: --default allow (the kernel continues each call); emulated: --default allow --deny 192.0.2.99:1, every connect and send decided and emulated.",
		"sendmsg: a 64 B datagram on a connected socket without a destination, timed inside the target (its peer drained after each, untimed).",
		"the UDP connect rows of issue 15 (allowed vs the C emulating floor, denied vs the C errno floor) are in table 2.")
	t.print(b.out)
	return nil
}

// targetRow runs the C target in mode with args and yields its median in µs.
func (b *bench) targetRow(mode string, args ...string) func(prefix []string) (float64, error) {
	return func(prefix []string) (float64, error) {
		r, err := b.runOnce(append(append(append([]string{}, prefix...), b.target, mode), args...))
		if err != nil {
			return 0, err
		}
		if r["errors"] != "0" {
			return 0, fmt.Errorf("%s: %s of %s calls failed (%s)", mode, r["errors"], r["n"], r["first_errno"])
		}
		return r.float("median_ns") / 1000, nil
	}
}

package control

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap/zapcore"
)

// metrics are the server's Prometheus metrics, in a registry of its own
// (no global state: two servers in one process do not share counters).
// Counters only go up, as Prometheus expects: POST /v1/reset resets the
// API's counters and schedules, not these.
type metrics struct {
	reg       *prometheus.Registry
	decisions *prometheus.CounterVec
	latency   prometheus.Histogram
	errors    prometheus.Counter
	changes   *prometheus.CounterVec
}

// latencyBuckets span an errno answered on the loop (a few µs) to a held
// connect (seconds): 1 µs × 4^k.
var latencyBuckets = prometheus.ExponentialBuckets(1e-6, 4, 12)

func newMetrics(held func() int) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connvisor_decisions_total",
			Help: "Trapped calls decided, by decision (allow, deny, log, fail), deciding rule and address family.",
		}, []string{"decision", "rule", "family"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "connvisor_decision_duration_seconds",
			Help:    "Time from trapping a call to answering it, delays and held connects included.",
			Buckets: latencyBuckets,
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "connvisor_internal_errors_total",
			Help: "Errors connvisor logged about itself (each fails closed).",
		}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connvisor_policy_changes_total",
			Help: "Policy changes made through the control API, by operation (put, add, remove, reset).",
		}, []string{"op"}),
	}
	m.reg.MustRegister(m.decisions, m.latency, m.errors, m.changes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if held != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "connvisor_held_calls",
			Help: "Trapped calls held right now (blocking connects, delays, blackholes).",
		}, func() float64 { return float64(held()) }))
	}
	return m
}

// ErrorHook counts log entries at error level and above as internal
// errors: pass it to zap.Hooks on the supervisor's logger.
func (s *Server) ErrorHook(e zapcore.Entry) error {
	if e.Level >= zapcore.ErrorLevel {
		s.metrics.errors.Inc()
	}
	return nil
}

package integration

import (
	"encoding/json"
	"strings"
	"testing"
)

// event is one decision of connvisor's JSON log.
type event struct {
	Level    string `json:"level"`
	Msg      string `json:"msg"`
	Decision string `json:"decision"`
	Tid      int    `json:"tid"`
	Pid      int    `json:"pid"`
	Exe      string `json:"exe"`
	Syscall  string `json:"syscall"`
	Family   string `json:"family"`
	Dest     string `json:"dest"`
	Addr     string `json:"addr"`
	Port     int    `json:"port"`
	Rule     string `json:"rule"`
	Errno    string `json:"errno"`
	// Latency is present; its unit is zap's duration encoding.
	Latency *float64 `json:"latency"`
}

// decisions parses the connect events out of a JSON log; other lines (the
// program's own stderr, other events) are ignored, but a line that starts
// like JSON must be JSON.
func decisions(t testing.TB, log string) []event {
	t.Helper()
	var out []event
	for _, l := range strings.Split(log, "\n") {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var e event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("decision log line is not JSON: %v\n%s", err, l)
		}
		if e.Msg == "connect" {
			out = append(out, e)
		}
	}
	return out
}

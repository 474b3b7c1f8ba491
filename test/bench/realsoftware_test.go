package main

import "testing"

// The parsers of ab and redis-benchmark output refuse a run whose requests
// did not all succeed: a benchmark of failing requests must not pass.
func TestParseAB(t *testing.T) {
	ok := "Complete requests:      500\nFailed requests:        0\nRequests per second:    1234.56 [#/sec] (mean)\n"
	if r, err := parseAB([]byte(ok), 500); err != nil || r != 1234.56 {
		t.Fatalf("parseAB(ok) = %v, %v; want 1234.56", r, err)
	}
	for name, out := range map[string]string{
		"failed":     "Complete requests:      500\nFailed requests:        3\nRequests per second:    1234.56 [#/sec] (mean)\n",
		"non-2xx":    "Complete requests:      500\nFailed requests:        0\nNon-2xx responses:      500\nRequests per second:    1234.56 [#/sec] (mean)\n",
		"incomplete": "Complete requests:      499\nFailed requests:        0\nRequests per second:    1234.56 [#/sec] (mean)\n",
		"no rate":    "apr_socket_recv: Connection refused (111)\n",
	} {
		if _, err := parseAB([]byte(out), 500); err == nil {
			t.Errorf("parseAB(%s) succeeded", name)
		}
	}
}

func TestParseRedisCSV(t *testing.T) {
	out := `"test","rps","avg_latency_ms"` + "\n" + `"PING_INLINE","1000.00","0.5"` + "\n" + `"PING_MBULK","3000.00","0.4"` + "\n"
	if r, err := parseRedisCSV([]byte(out)); err != nil || r != 2000 {
		t.Fatalf("parseRedisCSV = %v, %v; want the mean 2000", r, err)
	}
	if _, err := parseRedisCSV([]byte("Could not connect to Redis at 127.0.0.1:1: Connection refused\n")); err == nil {
		t.Error("parseRedisCSV of an error message succeeded")
	}
}

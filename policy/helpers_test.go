package policy

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
)

var testSeed int64 = 42

// testNames is the fake DNS of the tests.
var testNames = map[string][]netip.Addr{
	"api.example.com": {netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
	"db.example.com":  {netip.MustParseAddr("10.9.9.9")},
}

func testOptions(files map[string]string) Options {
	return Options{
		Seed: &testSeed,
		ReadFile: func(path string) ([]byte, error) {
			s, ok := files[path]
			if !ok {
				return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
			}
			return []byte(s), nil
		},
		Resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			a, ok := testNames[host]
			if !ok {
				return nil, errors.New("no such host")
			}
			return a, nil
		},
	}
}

// decided decides a connect to d as the supervisor does for a call it
// performs: Decide, then Count, once.
func decided(p *Policy, d *Dest) Decision { return p.Count(d, nil, p.Decide(d)) }

package difffuzz

import (
	"regexp"
	"slices"
)

// A diffEntry explains one class of differences between a native and a
// wrapped outcome. A difference belongs to the first entry whose every
// given pattern matches: desc against the call's description, native and
// wrapped against the two outcomes (result, errno, socket state, receipt).
type diffEntry struct {
	name, reason string
	modes        []string // the modes it applies to; nil: all
	desc         *regexp.Regexp
	native       *regexp.Regexp
	wrapped      *regexp.Regexp
}

func (e *diffEntry) matches(d diff) bool {
	return (e.modes == nil || slices.Contains(e.modes, d.mode)) &&
		(e.desc == nil || e.desc.MatchString(d.desc)) &&
		(e.native == nil || e.native.MatchString(d.native)) &&
		(e.wrapped == nil || e.wrapped.MatchString(d.wrapped))
}

var re = regexp.MustCompile

// inherentDiffs are differences emulation cannot remove: the supervisor,
// not the program, performs the call.
var inherentDiffs = []diffEntry{}

// knownDiffs are fidelity gaps issue 11 tracks; each is to be fixed and
// its entry removed (DIFFFUZZ_STRICT=1 fails on any of them).
var knownDiffs = []diffEntry{}

// classify returns the entry that explains d, and whether it is a known
// gap (rather than inherent); nil when nothing explains it.
func classify(d diff) (*diffEntry, bool) {
	for i := range inherentDiffs {
		if inherentDiffs[i].matches(d) {
			return &inherentDiffs[i], false
		}
	}
	for i := range knownDiffs {
		if knownDiffs[i].matches(d) {
			return &knownDiffs[i], true
		}
	}
	return nil, false
}

var _ = re

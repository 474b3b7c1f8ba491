package policy

import (
	"errors"
	"fmt"
)

// A glob matches UNIX socket paths, abstract names and executable paths.
//
// Syntax, as in path.Match with one addition:
//
//   - any run of characters except '/'
//     **     any run of characters, '/' included
//     ?      one character except '/'
//     [abc]  one character of the class; [a-z] ranges, [!abc] or [^abc] negates
//     \c     the character c itself
//
// For abstract names (which are not paths) '*' and '?' cross '/' too, so that
// `deny unix @*` means every abstract socket.
//
// Matching simulates the pattern as an NFA over a fixed-size bit set, so it
// allocates nothing and costs at most len(name) × len(pattern) steps whatever
// the input: no pattern can make it backtrack exponentially.
type glob struct {
	src     string
	literal bool // no metacharacters: compare src directly
	toks    []globTok
}

type globKind uint8

const (
	gLit   globKind = iota // c
	gAny                   // ? (not '/' unless crossing)
	gClass                 // [..]
	gStar                  // * (not '/' unless crossing)
	gStar2                 // ** (anything)
)

type globTok struct {
	kind  globKind
	c     byte
	cross bool      // for gAny and gStar: '/' allowed
	neg   bool      // gClass negated
	set   [4]uint64 // gClass members
}

// maxGlobToks bounds a pattern so that the NFA state fits in [4]uint64.
const maxGlobToks = 255

// compileGlob parses pattern. crossSlash makes '*' and '?' match '/' (used
// for abstract names).
func compileGlob(pattern string, crossSlash bool) (*glob, error) {
	g := &glob{src: pattern, literal: true}
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		var t globTok
		switch c {
		case '*':
			g.literal = false
			if i+1 < len(pattern) && pattern[i+1] == '*' {
				for i+1 < len(pattern) && pattern[i+1] == '*' {
					i++
				}
				t = globTok{kind: gStar2}
			} else {
				t = globTok{kind: gStar, cross: crossSlash}
			}
			if crossSlash {
				t = globTok{kind: gStar2}
			}
			// Adjacent stars add nothing but NFA states.
			if n := len(g.toks); n > 0 && (g.toks[n-1].kind == gStar || g.toks[n-1].kind == gStar2) {
				if t.kind == gStar2 {
					g.toks[n-1].kind = gStar2
				}
				continue
			}
		case '?':
			g.literal = false
			t = globTok{kind: gAny, cross: crossSlash}
		case '\\':
			g.literal = false
			if i+1 >= len(pattern) {
				return nil, errors.New(`glob ends in "\\": escape a character after it`)
			}
			i++
			t = globTok{kind: gLit, c: pattern[i]}
		case '[':
			g.literal = false
			t = globTok{kind: gClass}
			j := i + 1
			if j < len(pattern) && (pattern[j] == '!' || pattern[j] == '^') {
				t.neg = true
				j++
			}
			first := true
			for {
				if j >= len(pattern) {
					return nil, fmt.Errorf("glob %q: unterminated character class (expected ']')", pattern)
				}
				lo := pattern[j]
				if lo == ']' && !first {
					break
				}
				first = false
				if lo == '\\' {
					j++
					if j >= len(pattern) {
						return nil, fmt.Errorf("glob %q: unterminated character class (expected ']')", pattern)
					}
					lo = pattern[j]
				}
				hi := lo
				if j+2 < len(pattern) && pattern[j+1] == '-' && pattern[j+2] != ']' {
					j += 2
					hi = pattern[j]
					if hi == '\\' {
						j++
						if j >= len(pattern) {
							return nil, fmt.Errorf("glob %q: unterminated character class (expected ']')", pattern)
						}
						hi = pattern[j]
					}
					if hi < lo {
						return nil, fmt.Errorf("glob %q: character range %c-%c is backwards", pattern, lo, hi)
					}
				}
				for b := int(lo); b <= int(hi); b++ {
					t.set[b>>6] |= 1 << (b & 63)
				}
				j++
			}
			i = j
		default:
			t = globTok{kind: gLit, c: c}
		}
		g.toks = append(g.toks, t)
		if len(g.toks) > maxGlobToks {
			return nil, fmt.Errorf("glob %q is too long (at most %d elements)", pattern, maxGlobToks)
		}
	}
	return g, nil
}

// matchOne reports whether token t consumes byte c.
func (t *globTok) matchOne(c byte) bool {
	switch t.kind {
	case gLit:
		return t.c == c
	case gAny:
		return t.cross || c != '/'
	case gClass:
		in := t.set[c>>6]&(1<<(c&63)) != 0
		return in != t.neg
	}
	return false
}

type globState [4]uint64

func (s *globState) set(i int)      { s[i>>6] |= 1 << (i & 63) }
func (s *globState) has(i int) bool { return s[i>>6]&(1<<(i&63)) != 0 }

// closure adds the states reachable without consuming input: a star may
// match the empty string.
func (g *glob) closure(s *globState) {
	for i, t := range g.toks {
		if s.has(i) && (t.kind == gStar || t.kind == gStar2) {
			s.set(i + 1)
		}
	}
}

// match reports whether name matches the whole pattern.
func (g *glob) match(name string) bool {
	if g.literal {
		return name == g.src
	}
	var cur globState
	cur.set(0)
	g.closure(&cur)
	n := len(g.toks)
	for k := 0; k < len(name); k++ {
		c := name[k]
		var next globState
		any := false
		for i := 0; i < n; i++ {
			if !cur.has(i) {
				continue
			}
			t := &g.toks[i]
			switch t.kind {
			case gStar:
				if t.cross || c != '/' {
					next.set(i)
					any = true
				}
			case gStar2:
				next.set(i)
				any = true
			default:
				if t.matchOne(c) {
					next.set(i + 1)
					any = true
				}
			}
		}
		if !any {
			return false
		}
		g.closure(&next)
		cur = next
	}
	return cur.has(n)
}

// covers reports whether every name h matches is also matched by g, as far
// as can be told cheaply: equal patterns, a literal h that g matches, or a g
// that is "**". Used only for shadow warnings, so a false "no" is harmless.
func (g *glob) covers(h *glob) bool {
	if g.src == h.src {
		return true
	}
	if h.literal {
		return g.match(h.src)
	}
	return len(g.toks) == 1 && g.toks[0].kind == gStar2
}

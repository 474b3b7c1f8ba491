// Package policy decides what a trapped connect may do. It is pure: it
// parses rules, matches destinations and returns decisions, and never makes
// a system call (names are resolved through Options.Resolve, files read
// through Options.ReadFile), so every behaviour is testable with tables.
//
// See GRAMMAR.md in this directory for the policy language.
package policy

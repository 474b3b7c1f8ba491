// Package examples holds runnable examples of connvisor's Go API for test
// authors: fault injection on a real program, changed while it runs.
package examples

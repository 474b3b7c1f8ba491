package main

import (
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

// Keep the main goroutine on the leader thread, so that goroutines locked
// with lockOSThread cannot be on it.
func init() { runtime.LockOSThread() }

func lockOSThread() { runtime.LockOSThread() }

// signalSelf dies of sig the way a C program would: restore the default
// action, send the signal, and wait for it.
func signalSelf(sig syscall.Signal) {
	signal.Reset(sig)
	syscall.Kill(syscall.Getpid(), sig)
	time.Sleep(5 * time.Second)
}

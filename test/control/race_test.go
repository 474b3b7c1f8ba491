//go:build race

package control_test

// raceBuild: under go test -race, connvisor and the dialer are built with
// -race too, so the API served while the supervisor starts and decides is
// checked in the real binary (a race exits it with status 66).
const raceBuild = true

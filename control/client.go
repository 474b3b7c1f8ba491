package control

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Client calls the API over its UNIX socket (connvisor ctl, tests).
type Client struct {
	http *http.Client
	sock string
}

// clientTimeout bounds one call: the API answers from memory.
const clientTimeout = 30 * time.Second

// NewClient returns a client of the API at the socket path sock.
func NewClient(sock string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &Client{http: &http.Client{Transport: tr, Timeout: clientTimeout}, sock: sock}
}

// Do makes one call and returns the status and the body; ctype is the
// body's Content-Type ("" for none).
func (c *Client) Do(method, path, ctype string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://connvisor"+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("control socket %s: %w", c.sock, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("control socket %s: read answer: %w", c.sock, err)
	}
	return resp.StatusCode, out, nil
}

// CloseIdle closes the client's idle connections.
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

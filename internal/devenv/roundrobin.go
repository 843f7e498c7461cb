package devenv

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// RoundRobin is a TCP proxy on loopback that hands each new connection to
// the next backend, as a Service does in front of a Deployment's pods. A
// backend whose port refuses the connection is skipped, as an endpoint that
// is no longer ready is; the connection is closed only when every backend
// refuses.
type RoundRobin struct {
	l        net.Listener
	backends []string
	next     atomic.Uint64
	conns    []atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	open     map[net.Conn]struct{}
	closed   bool
}

// StartRoundRobin listens on 127.0.0.1 (a free port) and proxies to the
// backends (host:port, loopback).
func StartRoundRobin(backends ...string) (*RoundRobin, error) {
	if len(backends) == 0 {
		return nil, errors.New("round robin: no backends")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("round robin: %w", err)
	}
	rr := &RoundRobin{l: l, backends: backends, conns: make([]atomic.Int64, len(backends)), open: map[net.Conn]struct{}{}}
	rr.wg.Add(1)
	go rr.serve()
	return rr, nil
}

// Addr is the proxy's host:port.
func (rr *RoundRobin) Addr() string { return rr.l.Addr().String() }

// Connections returns how many connections backend i has been handed.
func (rr *RoundRobin) Connections(i int) int64 { return rr.conns[i].Load() }

// Close stops accepting, closes every proxied connection and waits for the
// proxy's goroutines. Closing again does nothing.
func (rr *RoundRobin) Close() error {
	err := rr.l.Close()
	rr.mu.Lock()
	rr.closed = true
	for c := range rr.open {
		c.Close()
	}
	rr.mu.Unlock()
	rr.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil // closed before
	}
	return err
}

func (rr *RoundRobin) serve() {
	defer rr.wg.Done()
	for {
		c, err := rr.l.Accept()
		if err != nil {
			return
		}
		if !rr.track(c) {
			c.Close()
			return
		}
		rr.wg.Add(1)
		go func() {
			defer rr.wg.Done()
			defer rr.untrack(c)
			b := rr.dial()
			if b == nil {
				return
			}
			if !rr.track(b) {
				b.Close()
				return
			}
			defer rr.untrack(b)
			splice(c, b)
		}()
	}
}

// dial connects to the next backend that accepts, trying each at most once.
func (rr *RoundRobin) dial() net.Conn {
	start := rr.next.Add(1) - 1
	for k := range uint64(len(rr.backends)) {
		i := int((start + k) % uint64(len(rr.backends)))
		b, err := net.Dial("tcp", rr.backends[i])
		if err == nil {
			rr.conns[i].Add(1)
			return b
		}
	}
	return nil
}

// splice copies both ways until one side ends, then closes both, so that a
// backend that dies ends the client's connection too (the client then
// opens a new one, which goes to a live backend).
func splice(a, b net.Conn) {
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(a, b); done <- struct{}{} }()
	go func() { _, _ = io.Copy(b, a); done <- struct{}{} }()
	<-done
	a.Close()
	b.Close()
	<-done
}

func (rr *RoundRobin) track(c net.Conn) bool {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if rr.closed {
		return false
	}
	rr.open[c] = struct{}{}
	return true
}

func (rr *RoundRobin) untrack(c net.Conn) {
	c.Close()
	rr.mu.Lock()
	delete(rr.open, c)
	rr.mu.Unlock()
}

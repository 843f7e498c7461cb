package registry_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// forwarder forwards TCP connections to a target and counts them. With a
// rate, each direction is a link of that many bytes per second shared by
// all connections, as a network between a client and a registry is.
type forwarder struct {
	addr     string
	accepted atomic.Int64
}

// startForwarder forwards to target; bytesPerSecond 0 means no limit.
func startForwarder(tb testing.TB, target string, bytesPerSecond float64) *forwarder {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f := &forwarder{addr: ln.Addr().String()}
	up, down := &pacer{rate: bytesPerSecond}, &pacer{rate: bytesPerSecond}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	pipe := func(dst, src net.Conn, p *pacer) {
		defer wg.Done()
		defer dst.Close()
		defer src.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.wait(n)
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepted.Add(1)
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Add(2)
			go pipe(out, in, up)
			go pipe(in, out, down)
		}
	}()
	return f
}

// pacer spaces transfers out to a rate. Up to maxLag of lateness (a sleep
// that overslept) is made up; idle time beyond that is not saved up, as a
// link does not send faster after a pause.
type pacer struct {
	rate float64 // bytes per second; 0 means no limit
	mu   sync.Mutex
	next time.Time
}

func (p *pacer) wait(n int) {
	if p.rate <= 0 {
		return
	}
	p.mu.Lock()
	now := time.Now()
	const maxLag = 20 * time.Millisecond
	if now.Sub(p.next) > maxLag {
		p.next = now.Add(-maxLag)
	}
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	ahead := p.next.Sub(now)
	p.mu.Unlock()
	// Short sleeps overshoot by more than they last: run up to a couple of
	// milliseconds ahead instead.
	if ahead > 2*time.Millisecond {
		time.Sleep(ahead)
	}
}

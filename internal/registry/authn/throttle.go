package authn

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrThrottled is wrapped by every ThrottledError.
var ErrThrottled = errors.New("too many login attempts")

// ThrottledError refuses a login before its password is checked.
type ThrottledError struct {
	// RetryAfter is when the caller may try again.
	RetryAfter time.Duration
	// Reason says which limit was hit, for the caller.
	Reason string
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%s; try again in %s", e.Reason, e.RetryAfter.Round(time.Second))
}

func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// Throttle limits password guessing. Each user name and each client address
// (an IPv6 client by its /64) may fail a few logins freely; after that each
// further failure doubles the time the name or address must wait before it
// may try again, up to MaxBackoff. A waiting caller is refused before any
// password is checked, with the same answer whether or not the name exists.
// A success forgives the name's failures. Failures are forgotten after a
// quiet time.
//
// Password checks (bcrypt) run at most Checks at once, with at most Queue
// callers waiting for a turn; others are refused at once. So a flood of
// guesses costs the gateway a bounded share of its CPU, and logins answered
// from the login cache never wait for it.
//
// Memory is bounded: at most MaxKeys names and MaxKeys addresses are
// tracked (names by their SHA-256). When a table is full, keys not in it
// share one record, so a flood of new names or addresses throttles itself
// without freeing the records of the names it guessed before.
//
// The zero value uses the defaults.
type Throttle struct {
	// NameFailures and AddrFailures are the failures after which the
	// backoff starts (defaults 5 and 20).
	NameFailures, AddrFailures int
	// Backoff is the first wait (1s); each further failure doubles it, up to
	// MaxBackoff (5m).
	Backoff, MaxBackoff time.Duration
	// Forget is the quiet time after which failures are forgotten (15m).
	Forget time.Duration
	// MaxKeys bounds each table (10 000).
	MaxKeys int
	// Checks is the number of password checks at once (default half the
	// CPUs, at least one); Queue the callers that may wait for one (16 per
	// check).
	Checks, Queue int
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	once    sync.Once
	mu      sync.Mutex
	names   failureTable
	addrs   failureTable
	slots   chan struct{}
	waiting atomic.Int64
}

func (t *Throttle) init() {
	t.once.Do(func() {
		if t.NameFailures <= 0 {
			t.NameFailures = 5
		}
		if t.AddrFailures <= 0 {
			t.AddrFailures = 20
		}
		if t.Backoff <= 0 {
			t.Backoff = time.Second
		}
		if t.MaxBackoff <= 0 {
			t.MaxBackoff = 5 * time.Minute
		}
		if t.Forget <= 0 {
			t.Forget = 15 * time.Minute
		}
		if t.MaxKeys <= 0 {
			t.MaxKeys = 10000
		}
		if t.Checks <= 0 {
			t.Checks = max(1, runtime.GOMAXPROCS(0)/2)
		}
		if t.Queue <= 0 {
			t.Queue = 16 * t.Checks
		}
		t.names = failureTable{free: t.NameFailures, m: map[string]*failureRecord{}}
		t.addrs = failureTable{free: t.AddrFailures, m: map[string]*failureRecord{}}
		t.slots = make(chan struct{}, t.Checks)
	})
}

func (t *Throttle) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// begin counts an attempt as a failure before it is checked, so parallel
// guesses are throttled as they arrive, not when bcrypt is done with them.
// done gets the outcome: a success forgives the name and takes the
// address's failure back; only wrong credentials stay counted (an attempt
// without a turn for bcrypt, or that TokenReview could not answer, is
// taken back).
func (t *Throttle) begin(username, client string) (done func(result error), err error) {
	if t == nil {
		return func(error) {}, nil
	}
	t.init()
	nameKey := string(hashName(username))
	addrKey := clientKey(client)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.names.get(nameKey, now, t)
	a := t.addrs.get(addrKey, now, t)
	if wait := n.until.Sub(now); wait > 0 {
		return nil, &ThrottledError{RetryAfter: wait, Reason: "too many failed logins for this user name"}
	}
	if wait := a.until.Sub(now); wait > 0 {
		return nil, &ThrottledError{RetryAfter: wait, Reason: "too many failed logins from this address"}
	}
	n.fail(now, t.names.free, t)
	a.fail(now, t.addrs.free, t)
	return func(result error) {
		if errors.Is(result, ErrInvalidCredentials) {
			return
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if result == nil {
			t.names.forgive(nameKey)
		} else {
			t.names.undo(nameKey)
		}
		t.addrs.undo(addrKey)
	}, nil
}

// check runs one password check when a turn is free.
func (t *Throttle) check(ctx context.Context, f func()) error {
	if t == nil {
		f()
		return nil
	}
	t.init()
	select {
	case t.slots <- struct{}{}:
	default:
		if t.waiting.Add(1) > int64(t.Queue) {
			t.waiting.Add(-1)
			return &ThrottledError{RetryAfter: time.Second, Reason: "too many logins are being checked at once"}
		}
		select {
		case t.slots <- struct{}{}:
			t.waiting.Add(-1)
		case <-ctx.Done():
			t.waiting.Add(-1)
			return ctx.Err()
		}
	}
	defer func() { <-t.slots }()
	f()
	return nil
}

// failureTable holds the failures of one kind of key.
type failureTable struct {
	free      int
	m         map[string]*failureRecord
	overflow  failureRecord // every key not in m when m is full
	lastSweep time.Time
}

type failureRecord struct {
	failures int
	last     time.Time // of the last failure
	until    time.Time // no attempt before
}

func (ft *failureTable) get(key string, now time.Time, t *Throttle) *failureRecord {
	if r, ok := ft.m[key]; ok {
		if r.forgotten(now, t) {
			*r = failureRecord{}
		}
		return r
	}
	if len(ft.m) >= t.MaxKeys && now.Sub(ft.lastSweep) > time.Second {
		ft.lastSweep = now
		for k, r := range ft.m {
			if r.forgotten(now, t) {
				delete(ft.m, k)
			}
		}
	}
	if len(ft.m) >= t.MaxKeys {
		if ft.overflow.forgotten(now, t) {
			ft.overflow = failureRecord{}
		}
		return &ft.overflow
	}
	r := &failureRecord{}
	ft.m[key] = r
	return r
}

func (ft *failureTable) forgive(key string) { delete(ft.m, key) }

func (ft *failureTable) undo(key string) {
	if r, ok := ft.m[key]; ok && r.failures > 0 {
		r.failures--
		if r.failures < ft.free {
			r.until = time.Time{}
		}
	}
}

func (r *failureRecord) forgotten(now time.Time, t *Throttle) bool {
	return !now.Before(r.until) && now.Sub(r.last) > t.Forget
}

func (r *failureRecord) fail(now time.Time, free int, t *Throttle) {
	r.failures++
	r.last = now
	if over := r.failures - free + 1; over > 0 {
		wait := t.MaxBackoff
		if over <= 30 {
			wait = min(t.Backoff<<(over-1), t.MaxBackoff)
		}
		r.until = now.Add(wait)
	}
}

func hashName(name string) []byte {
	h := sha256.Sum256([]byte(name))
	return h[:]
}

// clientKey is the address a client is limited by: its IP, or for IPv6 its
// /64 (one host usually holds a whole /64).
func clientKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

package authn

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestUnknownNameCostsAsMuch: a name no robot has is checked against a
// hash of the highest cost among the robots, so refusing it takes the same
// bcrypt work as refusing a robot's wrong password.
func TestUnknownNameCostsAsMuch(t *testing.T) {
	// Low costs: bcrypt is slow under the race detector.
	for _, costs := range [][]int{{10, 11}} {
		var text string
		top := 0
		for i, c := range costs {
			text += fmt.Sprintf("- {name: r%d, tenant: t, passwordHash: %q}\n", i, hash(t, "secret", c))
			top = max(top, c)
		}
		rs, err := ParseRobots([]byte("robots:\n" + text))
		if err != nil {
			t.Fatal(err)
		}
		_, h, known := rs.hashFor("nobody")
		if known {
			t.Fatal("nobody is known")
		}
		if cost, err := bcrypt.Cost(h); err != nil || cost != top {
			t.Errorf("robots of costs %v: an unknown name is checked at cost %d (%v), want %d", costs, cost, err, top)
		}
		// And it is checked: one bcrypt comparison, as for a known name.
		c := &Chain{Robots: func() *Robots { return rs }}
		for _, user := range []string{"nobody", "r0"} {
			before := c.checks.Load()
			if _, err := c.Authenticate(context.Background(), "192.0.2.1:1", user, "wrong"); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("%s: %v", user, err)
			}
			if n := c.checks.Load() - before; n != 1 {
				t.Errorf("%s: %d password checks, want 1", user, n)
			}
		}
	}
	var none *Robots
	if _, h, _ := none.hashFor("nobody"); len(h) == 0 {
		t.Error("no robots: no dummy hash")
	} else if cost, _ := bcrypt.Cost(h); cost != minBcryptCost {
		t.Errorf("no robots: dummy of cost %d", cost)
	}
	if _, err := ParseRobots([]byte(fmt.Sprintf("robots:\n- {name: a, tenant: t, passwordHash: %q}\n", "$2a$17$"+string(make([]byte, 53))))); err == nil {
		t.Error("a cost-17 hash was accepted")
	}
}

// TestThrottleChain: failed logins of a name and from an address are
// refused, before any password check, once they pass their allowance; the
// wait doubles; a success forgives the name; cached logins are never
// throttled.
func TestThrottleChain(t *testing.T) {
	// Built by hand at bcrypt's lowest cost (ParseRobots refuses it): this
	// test counts checks, and bcrypt is slow under the race detector.
	cheap := []byte(hash(t, "secret", bcrypt.MinCost))
	rs := &Robots{byName: map[string]robot{"ci": {tenant: "t", hash: cheap}, "puller": {tenant: "t", hash: cheap}}, dummy: cheap}
	var err error
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	th := &Throttle{NameFailures: 2, AddrFailures: 4, Now: clock}
	c := &Chain{Robots: func() *Robots { return rs }, Now: clock, Throttle: th}
	ctx := context.Background()
	login := func(client, user, password string) error {
		_, err := c.Authenticate(ctx, client, user, password)
		return err
	}
	const a, b = "192.0.2.1:1000", "192.0.2.2:1000"

	for i := 0; i < 2; i++ {
		if err := login(a, "ci", "wrong"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	checks := c.checks.Load()
	err = login(a, "ci", "secret")
	var te *ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, ErrThrottled) || te.RetryAfter != time.Second {
		t.Fatalf("third attempt: %v, want throttled for 1s", err)
	}
	if c.checks.Load() != checks {
		t.Error("a throttled login was checked with bcrypt")
	}
	// Other names from the same address still log in (the address has
	// failed twice of its four).
	if err := login(a, "puller", "secret"); err != nil {
		t.Fatalf("another name: %v", err)
	}
	// The wait over, the right password works and forgives the name.
	now = now.Add(time.Second)
	if err := login(a, "ci", "secret"); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
	// ... and is cached: a throttled name's cached login still works.
	for i := 0; i < 2; i++ {
		_ = login(b, "ci", "wrong")
	}
	if err := login(b, "ci", "secret"); err != nil {
		t.Errorf("cached login refused: %v", err)
	}
	// Backoff doubles: the name is waiting 1s; one more failure after it
	// makes it 2s.
	if err := login(b, "ci", "wrong-again"); !errors.As(err, &te) || te.RetryAfter != time.Second {
		t.Fatalf("waiting: %v", err)
	}
	now = now.Add(time.Second)
	if err := login(b, "ci", "wrong-again"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("after the wait: %v", err)
	}
	if err := login(b, "ci", "wrong-again"); !errors.As(err, &te) || te.RetryAfter != 2*time.Second {
		t.Fatalf("second backoff: %v, want 2s", err)
	}
	// The address: b has failed 3 times; one more failure with a new name
	// and it waits, whatever the name.
	if err := login(b, "someone", "x"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("fourth failure from b: %v", err)
	}
	if err := login(b, "puller", "not-cached"); !errors.As(err, &te) || te.Reason != "too many failed logins from this address" {
		t.Fatalf("from b after four failures: %v", err)
	}
	// Failures are forgotten after a quiet time.
	now = now.Add(th.Forget + th.MaxBackoff)
	if err := login(b, "puller", "secret"); err != nil {
		t.Errorf("after the quiet time: %v", err)
	}
}

func TestThrottleKeys(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"192.0.2.1:1", "192.0.2.1:2"},
		{"[2001:db8::1]:1", "[2001:db8::ffff:1]:2"},
		{"[::ffff:192.0.2.1]:1", "192.0.2.1:3"},
	} {
		if clientKey(tc.a) != clientKey(tc.b) {
			t.Errorf("%s and %s are limited apart", tc.a, tc.b)
		}
	}
	if clientKey("[2001:db8:0:1::1]:1") == clientKey("[2001:db8:0:2::1]:1") {
		t.Error("two /64s are limited together")
	}
}

// TestThrottleMemory: whatever names and addresses are sent, the tables
// stay bounded, and a name throttled before the flood stays throttled.
func TestThrottleMemory(t *testing.T) {
	now := time.Unix(1000, 0)
	th := &Throttle{NameFailures: 1, AddrFailures: 1000000, Backoff: time.Hour, MaxKeys: 100, Now: func() time.Time { return now }}
	fail := func(user, client string) error {
		done, err := th.begin(user, client)
		if err != nil {
			return err
		}
		done(ErrInvalidCredentials)
		return nil
	}
	if err := fail("target", "192.0.2.1:1"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10000; i++ {
		now = now.Add(time.Millisecond)
		_ = fail(fmt.Sprintf("guess-%d", i), fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255))
	}
	if len(th.names.m) > 100 || len(th.addrs.m) > 100 {
		t.Errorf("tables hold %d names and %d addresses, limit 100", len(th.names.m), len(th.addrs.m))
	}
	if err := fail("target", "192.0.2.9:1"); !errors.Is(err, ErrThrottled) {
		t.Errorf("the target's record was lost to the flood: %v", err)
	}
	if err := fail("new-name", "192.0.2.9:1"); !errors.Is(err, ErrThrottled) {
		t.Errorf("new names share the overflow record and are throttled with it: %v", err)
	}
}

// TestThrottleChecks: at most Checks password checks at once, Queue more
// wait, the rest are refused at once.
func TestThrottleChecks(t *testing.T) {
	th := &Throttle{Checks: 1, Queue: 1}
	ctx := context.Background()
	release := make(chan struct{})
	running := make(chan struct{})
	first := make(chan error, 1)
	go func() { first <- th.check(ctx, func() { close(running); <-release }) }()
	<-running
	second := make(chan error, 1)
	go func() { second <- th.check(ctx, func() {}) }()
	for th.waiting.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	if err := th.check(ctx, func() { t.Error("a third check ran") }); !errors.Is(err, ErrThrottled) {
		t.Errorf("third check: %v, want throttled", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Error(err)
	}
	if err := <-second; err != nil {
		t.Error(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	th2 := &Throttle{Checks: 1}
	th2.init()
	th2.slots <- struct{}{}
	if err := th2.check(cancelled, func() {}); !errors.Is(err, context.Canceled) {
		t.Errorf("a waiter whose caller left: %v", err)
	}
}

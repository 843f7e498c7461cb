package gateway

import (
	"context"
	"sort"
	"sync"
)

// Locker serializes the check-then-write of an immutable tag: between the
// HEAD that finds a tag absent and the PUT that creates it, no other push of
// the same tag may run its own check.
type Locker interface {
	// Lock waits for the key (or ctx) and returns the function that
	// releases it.
	Lock(ctx context.Context, key string) (unlock func(), err error)
}

// LocalLocker is a Locker inside one process. It closes the race between
// pushes that reach the same gateway replica; see docs/registry.md for what
// it does not close across replicas.
type LocalLocker struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds one token while locked
	refs int
}

// Lock implements Locker.
func (l *LocalLocker) Lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*keyLock{}
	}
	k := l.locks[key]
	if k == nil {
		k = &keyLock{ch: make(chan struct{}, 1)}
		l.locks[key] = k
	}
	k.refs++
	l.mu.Unlock()

	release := func() {
		l.mu.Lock()
		if k.refs--; k.refs == 0 {
			delete(l.locks, key)
		}
		l.mu.Unlock()
	}
	select {
	case k.ch <- struct{}{}:
		var once sync.Once
		return func() {
			once.Do(func() {
				<-k.ch
				release()
			})
		}, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// lockAll takes the locks of several keys in a fixed order (no deadlock
// between two requests that lock the same keys).
func lockAll(ctx context.Context, l Locker, keys []string) (func(), error) {
	keys = append([]string(nil), keys...)
	sort.Strings(keys)
	var unlocks []func()
	unlockAll := func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
	for i, k := range keys {
		if i > 0 && keys[i-1] == k {
			continue
		}
		u, err := l.Lock(ctx, k)
		if err != nil {
			unlockAll()
			return nil, err
		}
		unlocks = append(unlocks, u)
	}
	return unlockAll, nil
}

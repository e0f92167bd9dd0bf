package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"
)

// SessionTTL is how long a UI login lasts: a working day. The expiry is
// absolute (use does not extend it); logging out ends a session at once,
// and so does a restart of tinderbox, which keeps sessions in memory only.
const SessionTTL = 12 * time.Hour

// maxSessions bounds the sessions kept (only a holder of the token can
// start one); beyond it the session closest to expiry is dropped.
const maxSessions = 1024

// sessionBytes is a session id's length: 256 random bits, far beyond
// guessing at the throttled rate or any other.
const sessionBytes = 32

// sessions are the UI's logins, in memory. Ids are kept only as their
// SHA-256, so a lookup's timing says nothing of the ids held. It is safe
// for concurrent use.
type sessions struct {
	mu      sync.Mutex
	now     func() time.Time
	expires map[[sha256.Size]byte]time.Time
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, expires: map[[sha256.Size]byte]time.Time{}}
}

// start begins a session and returns its id (URL-safe base64) and expiry.
func (s *sessions) start() (string, time.Time) {
	b := make([]byte, sessionBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24 and later)
	id := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.expires) >= maxSessions {
		var soonest [sha256.Size]byte
		var at time.Time
		for k, exp := range s.expires {
			if !exp.After(now) {
				delete(s.expires, k)
			} else if at.IsZero() || exp.Before(at) {
				soonest, at = k, exp
			}
		}
		if len(s.expires) >= maxSessions {
			delete(s.expires, soonest)
		}
	}
	exp := now.Add(SessionTTL)
	s.expires[sha256.Sum256([]byte(id))] = exp
	return id, exp
}

// valid says whether id names a session that has not expired; an expired
// one is forgotten.
func (s *sessions) valid(id string) bool {
	if id == "" {
		return false
	}
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.expires[k]
	if ok && !exp.After(s.now()) {
		delete(s.expires, k)
		return false
	}
	return ok
}

// end forgets the session id, if any.
func (s *sessions) end(id string) {
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.expires, k)
}

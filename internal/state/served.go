package state

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// servedBucket holds, under each MAC, the config last served to the
// machine (a Served, JSON), apart from its summary and events so that
// neither a list nor a record read loads it.
var servedBucket = []byte("served")

// Served is what the store keeps of the config last served to a machine
// at /config/{mac}.
type Served struct {
	// At is when it was served.
	At time.Time `json:"at"`
	// Hash is the hex SHA-256 of the bytes served, secrets included.
	Hash string `json:"hash"`
	// Size is the number of bytes served.
	Size int `json:"size"`
	// Config is the config with its secrets masked (package served),
	// kept as text so the database holds it readably; empty when Note
	// says why it is not kept.
	Config string `json:"config,omitempty"`
	Note   string `json:"note,omitempty"`
	// ProfileSet is the hash of the profile set the config was rendered
	// from (profiles.Set.Hash); empty for a config served before it was
	// kept.
	ProfileSet string `json:"profileSet,omitempty"`
}

// PutServed stores what was served to mac, replacing what was kept
// before. A machine without a record (forgotten since) keeps nothing:
// ok is false then.
func (s *Store) PutServed(mac machine.MAC, sv Served) (ok bool, err error) {
	key := []byte(mac.String())
	v, err := json.Marshal(sv)
	if err != nil {
		return false, fmt.Errorf("state: keep served config of %s: %w", key, err)
	}
	if err := s.lock("keep served config of " + string(key)); err != nil {
		return false, err
	}
	defer s.unlock()
	err = s.update("put served", func(tx *bolt.Tx) error {
		if tx.Bucket(machinesBucket).Get(key) == nil {
			return nil
		}
		ok = true
		return tx.Bucket(servedBucket).Put(key, v)
	})
	if err != nil {
		return false, fmt.Errorf("state: keep served config of %s: %w", key, err)
	}
	return ok, nil
}

// Served returns what was kept of the config last served to mac; ok is
// false when none was.
func (s *Store) Served(mac machine.MAC) (sv Served, ok bool, err error) {
	key := []byte(mac.String())
	err = s.view("served", func(tx *bolt.Tx) error {
		v := tx.Bucket(servedBucket).Get(key)
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &sv)
	})
	if err != nil {
		return Served{}, false, fmt.Errorf("state: served config of %s: %w", key, err)
	}
	return sv, ok, nil
}

// MaskTag returns a short tag of a secret value for the masked configs
// the store keeps: 32 bits of an HMAC-SHA256 under a key derived from the
// store's secret, so equal values get equal tags and a changed secret a
// changed one, while a tag alone, without token.key, says nothing of the
// value.
func (s *Store) MaskTag(value string) string { return maskTag(s.secret, value) }

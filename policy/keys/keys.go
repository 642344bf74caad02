// Package keys authenticates gateway keys.
//
// The gateway never stores or compares key material: it keeps SHA-256 hashes
// and looks a presented key up by its hash. Refusing an unknown key therefore
// costs one hash and one map miss whatever the key id space holds, and a key
// id is never derivable from a response.
package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Key is what the gateway knows about an authenticated caller. It never
// holds the key itself.
type Key struct {
	ID string
}

// Entry is one configured key: its id and the SHA-256 of the key.
type Entry struct {
	ID     string
	SHA256 string // lower-case hex
}

// Store finds keys by hash. It is immutable once built, so a config reload
// swaps whole stores and in-flight requests keep the one they started with.
type Store struct {
	byHash map[[sha256.Size]byte]*Key
}

// NewStore builds a store; it fails on malformed or duplicate hashes.
func NewStore(entries []Entry) (*Store, error) {
	s := &Store{byHash: make(map[[sha256.Size]byte]*Key, len(entries))}
	for _, e := range entries {
		var h [sha256.Size]byte
		n, err := hex.Decode(h[:], []byte(e.SHA256))
		if err != nil || n != sha256.Size || len(e.SHA256) != 2*sha256.Size {
			return nil, fmt.Errorf("key %q: sha256 must be %d hex characters", e.ID, 2*sha256.Size)
		}
		if _, dup := s.byHash[h]; dup {
			return nil, fmt.Errorf("key %q: duplicate sha256", e.ID)
		}
		s.byHash[h] = &Key{ID: e.ID}
	}
	return s, nil
}

// Authenticate returns the key whose hash matches presented.
func (s *Store) Authenticate(presented string) (*Key, bool) {
	if s == nil || presented == "" {
		return nil, false
	}
	k, ok := s.byHash[sha256.Sum256([]byte(presented))]
	return k, ok
}

// Hash returns the lower-case hex SHA-256 of a key, as configured.
func Hash(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

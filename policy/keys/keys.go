// Package keys authenticates gateway keys.
//
// The gateway never stores or compares key material: it keeps SHA-256 hashes
// and looks a presented key up by its hash. Refusing an unknown key therefore
// costs one hash and one map miss whatever the key id space holds, and a key
// id is never derivable from a response.
package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"time"

	"github.com/tollgate-ai/tollgate/policy/allow"
)

// Key is what the gateway knows about an authenticated caller. It never
// holds the key itself.
type Key struct {
	ID             string
	Tenant         string
	App            string // set for an app-scoped key
	Tier           string
	Models         allow.List
	Expires        time.Time // zero: never
	RequireAgentID bool
	Labels         map[string]string
}

// Entry is one configured key: the key's fields and the SHA-256 of the key.
type Entry struct {
	Key
	SHA256   string // lower-case hex
	Disabled bool
}

// Store finds keys by hash. It is immutable once built, so a config reload
// swaps whole stores and in-flight requests keep the one they started with.
type Store struct {
	byHash map[[sha256.Size]byte]*Key
}

// NewStore builds a store; it fails on malformed or duplicate hashes.
// Disabled keys are left out: they are refused exactly like unknown ones.
func NewStore(entries []Entry) (*Store, error) {
	s := &Store{byHash: make(map[[sha256.Size]byte]*Key, len(entries))}
	seen := make(map[[sha256.Size]byte]bool, len(entries))
	for _, e := range entries {
		var h [sha256.Size]byte
		n, err := hex.Decode(h[:], []byte(e.SHA256))
		if err != nil || n != sha256.Size || len(e.SHA256) != 2*sha256.Size {
			return nil, fmt.Errorf("key %q: sha256 must be %d hex characters", e.ID, 2*sha256.Size)
		}
		if seen[h] {
			return nil, fmt.Errorf("key %q: duplicate sha256", e.ID)
		}
		seen[h] = true
		if e.Disabled {
			continue
		}
		k := e.Key
		s.byHash[h] = &k
	}
	return s, nil
}

// Authenticate returns the key whose hash matches presented, unless it has
// expired at now. Unknown, disabled and expired keys are indistinguishable
// to the caller.
func (s *Store) Authenticate(presented string, now time.Time) (*Key, bool) {
	if s == nil || presented == "" {
		return nil, false
	}
	k, ok := s.byHash[sha256.Sum256([]byte(presented))]
	if !ok || (!k.Expires.IsZero() && !now.Before(k.Expires)) {
		return nil, false
	}
	return k, true
}

// Hash returns the lower-case hex SHA-256 of a key, as configured.
func Hash(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// Prefix starts every key Generate makes, so leaked keys are easy to find
// with secret scanners.
const Prefix = "tg_"

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Generate returns a new key: Prefix and 32 bytes from crypto/rand in base62
// (43 characters).
func Generate() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	n := new(big.Int).SetBytes(b[:])
	// 62^43 > 2^256, so 43 digits hold any 32 bytes; pad so every key has the
	// same length.
	out := make([]byte, 43)
	base := big.NewInt(62)
	mod := new(big.Int)
	for i := len(out) - 1; i >= 0; i-- {
		n.DivMod(n, base, mod)
		out[i] = base62[mod.Int64()]
	}
	return Prefix + string(out), nil
}

package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/hub/store"
)

// Role is what a key may do.
type Role string

// Roles, from most to least powerful. Agent is not "below" supervisor in a
// line: it may act, but only on the conversations assigned to it.
const (
	RoleAdmin      Role = "admin"      // everything
	RoleSupervisor Role = "supervisor" // all conversations, agents, rules read and test
	RoleAgent      Role = "agent"      // the conversations assigned to its agent, and its own status
	RoleViewer     Role = "viewer"     // read only
)

// Roles lists every role.
var Roles = []Role{RoleAdmin, RoleSupervisor, RoleAgent, RoleViewer}

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("role %q must be admin, supervisor, agent or viewer", s)
}

// NSKeys is the KV namespace of API keys (by public id).
const NSKeys = "adminkey"

// KeyPrefix starts every key the hub issues, so a leaked key is easy to
// recognise (secret scanners) and to tell from other tokens.
const KeyPrefix = "sb_"

// BootstrapID is the key id the bootstrap key from the environment acts as.
const BootstrapID = "bootstrap"

// Key is a stored API key: never the key itself, only its hash.
type Key struct {
	ID        string    `json:"id"` // public part, in the key and in the audit log
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Agent     string    `json:"agent,omitempty"` // the agent an agent key acts as
	Hash      string    `json:"hash,omitempty"`  // hex SHA-256 of the whole key
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	RevokedBy string    `json:"revoked_by,omitempty"`
}

// Public is the key without its hash, for listing.
func (k Key) Public() Key {
	k.Hash = ""
	return k
}

// Active reports whether the key may be used at now.
func (k Key) Active(now time.Time) bool {
	return k.RevokedAt.IsZero() && (k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt))
}

// NewKey is what CreateKey needs.
type NewKey struct {
	Name      string
	Role      Role
	Agent     string
	ExpiresIn time.Duration // 0: never expires
	CreatedBy string
}

var (
	keyName = regexp.MustCompile(`^[\p{L}\p{N} ._@'()-]{1,64}$`)
	agentID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	b32     = base32.StdEncoding.WithPadding(base32.NoPadding)
)

// FieldError is a validation problem with the field it is about.
type FieldError struct {
	Field string `json:"field"`
	Msg   string `json:"message"`
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Check validates a key request; errors name the field.
func (n NewKey) Check() error {
	if _, err := ParseRole(string(n.Role)); err != nil {
		return &FieldError{"role", err.Error()}
	}
	if !keyName.MatchString(n.Name) {
		return &FieldError{"name", "a name of 1 to 64 letters, digits, spaces or ._@'()- is required"}
	}
	switch {
	case n.Role == RoleAgent && n.Agent == "":
		return &FieldError{"agent", "an agent key needs the id of the agent it acts as"}
	case n.Role != RoleAgent && n.Agent != "":
		return &FieldError{"agent", "only agent keys are bound to an agent"}
	case n.Agent != "" && !agentID.MatchString(n.Agent):
		return &FieldError{"agent", fmt.Sprintf("agent id %q is not a valid id", n.Agent)}
	}
	if n.ExpiresIn < 0 {
		return &FieldError{"expires_in", "must not be negative"}
	}
	return nil
}

// HashKey is how keys are stored. The keys carry 160 random bits, so a
// fast hash is enough: nobody brute-forces that space, and a slow KDF would
// cost every request.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// CreateKey makes a random key, stores its hash and returns the key: the
// only time it is ever seen.
func CreateKey(ctx context.Context, s store.KV, n NewKey, now time.Time) (string, Key, error) {
	if err := n.Check(); err != nil {
		return "", Key{}, err
	}
	for attempt := 0; attempt < 5; attempt++ {
		idb, secret := make([]byte, 5), make([]byte, 20)
		if _, err := rand.Read(idb); err != nil {
			return "", Key{}, fmt.Errorf("random key: %w", err)
		}
		if _, err := rand.Read(secret); err != nil {
			return "", Key{}, fmt.Errorf("random key: %w", err)
		}
		id := strings.ToLower(b32.EncodeToString(idb))
		full := KeyPrefix + id + "_" + strings.ToLower(b32.EncodeToString(secret))
		k := Key{ID: id, Name: n.Name, Role: n.Role, Agent: n.Agent, Hash: HashKey(full), CreatedAt: now.UTC(), CreatedBy: n.CreatedBy}
		if n.ExpiresIn > 0 {
			k.ExpiresAt = now.Add(n.ExpiresIn).UTC()
		}
		b, _ := json.Marshal(k)
		// Version 0: the id must be new; a collision (40 random bits) draws again.
		_, err := s.CompareAndSwap(ctx, NSKeys, id, 0, b, 0)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return "", Key{}, fmt.Errorf("store key: %w", err)
		}
		return full, k, nil
	}
	return "", Key{}, errors.New("could not draw an unused key id")
}

// GetKey returns a stored key by id (store.ErrNotFound).
func GetKey(ctx context.Context, s store.KV, id string) (Key, int64, error) {
	b, ver, err := s.Get(ctx, NSKeys, id)
	if err != nil {
		return Key{}, 0, err
	}
	var k Key
	if err := json.Unmarshal(b, &k); err != nil {
		return Key{}, 0, fmt.Errorf("key %s: %w", id, err)
	}
	return k, ver, nil
}

// ListKeys pages through the stored keys, without their hashes.
func ListKeys(ctx context.Context, s store.KV, cursor string, limit int) ([]Key, string, error) {
	items, next, err := s.List(ctx, NSKeys, "", cursor, limit)
	if err != nil {
		return nil, "", err
	}
	out := make([]Key, 0, len(items))
	for _, it := range items {
		var k Key
		if json.Unmarshal(it.Value, &k) == nil {
			out = append(out, k.Public())
		}
	}
	return out, next, nil
}

// RevokeKey marks a key revoked; it stays listed (revoked) so the audit
// log's key ids keep a name. Revoking twice keeps the first time.
func RevokeKey(ctx context.Context, s store.KV, id, by string, now time.Time) (Key, error) {
	for attempt := 0; attempt < 20; attempt++ {
		k, ver, err := GetKey(ctx, s, id)
		if err != nil {
			return Key{}, err
		}
		if !k.RevokedAt.IsZero() {
			return k.Public(), nil
		}
		k.RevokedAt, k.RevokedBy = now.UTC(), by
		b, _ := json.Marshal(k)
		_, err = s.CompareAndSwap(ctx, NSKeys, id, ver, b, 0)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return Key{}, fmt.Errorf("revoke key %s: %w", id, err)
		}
		return k.Public(), nil
	}
	return Key{}, fmt.Errorf("revoke key %s: too many concurrent updates", id)
}

// Principal is who is calling.
type Principal struct {
	KeyID string `json:"key_id"`
	Name  string `json:"name"`
	Role  Role   `json:"role"`
	Agent string `json:"agent,omitempty"`
}

// Actor is the principal as the audit trail of a conversation names it.
func (p *Principal) Actor() string { return "admin:" + p.KeyID }

var (
	errNoKey  = errors.New("no API key")
	errBadKey = errors.New("invalid, expired or revoked API key")
)

// keyID extracts the public id of a hub-issued key.
func keyID(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, KeyPrefix)
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "_")
	return id, ok && id != ""
}

// Authenticate finds who key belongs to. bootstrapHash is the hash of the
// bootstrap key ("" when there is none). It returns errBadKey for any key
// it does not accept, without saying why: a caller probing keys learns
// nothing.
func Authenticate(ctx context.Context, s store.KV, key, bootstrapHash string, now time.Time) (*Principal, error) {
	if key == "" {
		return nil, errNoKey
	}
	h := HashKey(key)
	if bootstrapHash != "" && subtle.ConstantTimeCompare([]byte(h), []byte(bootstrapHash)) == 1 {
		return &Principal{KeyID: BootstrapID, Name: "bootstrap key", Role: RoleAdmin}, nil
	}
	id, ok := keyID(key)
	if !ok {
		return nil, errBadKey
	}
	k, _, err := GetKey(ctx, s, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errBadKey
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(h), []byte(k.Hash)) != 1 || !k.Active(now) {
		return nil, errBadKey
	}
	return &Principal{KeyID: k.ID, Name: k.Name, Role: k.Role, Agent: k.Agent}, nil
}

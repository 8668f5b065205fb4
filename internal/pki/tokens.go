package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
)

// tokenPrefix starts every bearer token, so that one found in a log or a
// repository is recognisable (as GitHub's ghp_ tokens are).
const tokenPrefix = "cwt_"

// tokenEntry is one line of tokens.json: the SHA-256 of the token, never
// the token itself. Tokens are 256 random bits, so a fast hash is enough:
// there is nothing to guess from it.
type tokenEntry struct {
	Name   string `json:"name"`
	Role   Role   `json:"role"`
	SHA256 string `json:"sha256"`
}

// CreateToken adds a token for client name with role to dir's tokens.json
// and returns the token, which is shown once and stored nowhere. A second
// token for a name adds to the first (rotation: create, switch, revoke).
func CreateToken(o Options, name string, role Role) (string, error) {
	if !clientName.MatchString(name) {
		return "", fmt.Errorf("%w: client name %q: letters, digits, '.', '_' and '-'", ErrInvalid, name)
	}
	if _, err := ParseRole(string(role)); err != nil {
		return "", err
	}
	entries, err := readTokens(filepath.Join(o.Dir, TokensFile))
	if err != nil {
		return "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	entries = append(entries, tokenEntry{Name: name, Role: role, SHA256: hashToken(token)})
	data, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		return "", err
	}
	return token, o.write(TokensFile, append(data, '\n'), 0o600)
}

// RevokeTokens removes every token of name; it reports how many.
func RevokeTokens(o Options, name string) (int, error) {
	entries, err := readTokens(filepath.Join(o.Dir, TokensFile))
	if err != nil {
		return 0, err
	}
	kept := entries[:0]
	for _, e := range entries {
		if e.Name != name {
			kept = append(kept, e)
		}
	}
	removed := len(entries) - len(kept)
	data, err := json.MarshalIndent(kept, "", "  ")
	if err != nil {
		return 0, err
	}
	return removed, o.write(TokensFile, append(data, '\n'), 0o600)
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func readTokens(path string) ([]tokenEntry, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var entries []tokenEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, path, err)
	}
	for i, e := range entries {
		if _, err := ParseRole(string(e.Role)); err != nil {
			return nil, fmt.Errorf("%s entry %d (%s): %w", path, i+1, e.Name, err)
		}
		if b, err := hex.DecodeString(e.SHA256); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("%w: %s entry %d (%s): sha256 is not a SHA-256 in hex", ErrInvalid, path, i+1, e.Name)
		}
	}
	return entries, nil
}

// Tokens authenticates bearer tokens against a tokens.json, reloadable
// like Certs.
type Tokens struct {
	path    string
	entries atomic.Pointer[[]tokenEntry]
}

// LoadTokens reads dir's tokens.json (none: no token is valid).
func LoadTokens(dir string) (*Tokens, error) {
	t := &Tokens{path: filepath.Join(dir, TokensFile)}
	return t, t.Reload()
}

// Reload reads the file again; on an error the tokens in use stay.
func (t *Tokens) Reload() error {
	entries, err := readTokens(t.path)
	if err != nil {
		return err
	}
	t.entries.Store(&entries)
	return nil
}

// ErrBadToken reports a bearer token that is not one of the cluster's.
var ErrBadToken = errors.New("bearer token not recognised")

// Authenticate returns the identity of token. Every entry is compared, in
// constant time, so the time taken says nothing about which nearly matched.
func (t *Tokens) Authenticate(token string) (Identity, error) {
	if !strings.HasPrefix(token, tokenPrefix) {
		return Identity{}, fmt.Errorf("%w: a Causeway token starts with %q", ErrBadToken, tokenPrefix)
	}
	want, _ := hex.DecodeString(hashToken(token))
	var found *tokenEntry
	for _, e := range *t.entries.Load() {
		have, _ := hex.DecodeString(e.SHA256)
		if subtle.ConstantTimeCompare(have, want) == 1 {
			found = &e
		}
	}
	if found == nil {
		return Identity{}, fmt.Errorf("%w: unknown or revoked (create one with `causeway token create`)", ErrBadToken)
	}
	return Identity{Role: found.Role, Name: found.Name}, nil
}

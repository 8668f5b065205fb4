package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// session is what the CLI remembers between commands: the causal token of
// the last response, so the next command depends on everything seen so far.
type session struct {
	path  string
	Token string    `json:"causal_token"`
	Addr  string    `json:"addr,omitempty"`
	Saved time.Time `json:"saved,omitempty"`
}

func defaultSessionPath() string {
	if p := os.Getenv("CAUSEWAY_SESSION"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".causeway-session.json"
	}
	return filepath.Join(home, ".causeway", "session.json")
}

// loadSession reads the session file; a missing file is an empty session.
// path "" means no session file at all.
func loadSession(path string) (*session, error) {
	s := &session{path: path}
	if path == "" {
		return s, nil
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read session file: %w", err)
	}
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("session file %s is not valid JSON (%v); delete it to start a new session", path, err)
	}
	return s, nil
}

// save writes the session atomically (temporary file, then rename), so an
// interrupted command never leaves a half-written token behind.
func (s *session) save(token, addr string) error {
	if s.path == "" || token == "" {
		return nil
	}
	s.Token, s.Addr, s.Saved = token, addr, time.Now().UTC()
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("create session directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".session-*")
	if err != nil {
		return fmt.Errorf("write session file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write session file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write session file: %w", err)
	}
	return os.Rename(tmp.Name(), s.path)
}

package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// AuditState is what an Auditor remembers between runs: the newest
// checkpoint it verified of each log, by origin. Its memory of old
// checkpoints is what proves that a log only grew, so keep it where the
// server cannot change it. It marshals to JSON: LoadAuditState and Save
// keep it in a file, and a program may keep it anywhere else.
type AuditState struct {
	Origins map[string]SeenCheckpoint `json:"origins"`
}

// A SeenCheckpoint is a checkpoint an Auditor verified, and when.
type SeenCheckpoint struct {
	Size int64     `json:"size"`
	Root tlog.Hash `json:"root"`
	Note string    `json:"note"` // the signed note, as evidence
	Seen time.Time `json:"seen"`
}

// LoadAuditState reads the state that Save wrote to path. A missing file
// is an empty state: nothing seen yet.
func LoadAuditState(path string) (*AuditState, error) {
	s := &AuditState{}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	} else if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("state file %s is corrupt (%v); move it away to start afresh, but know that its memory of old checkpoints is what proves the log only grew", path, err)
	}
	return s, nil
}

// Save writes the state to path, creating its directory, and replaces the
// old file only once the new one is written whole.
func (s *AuditState) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// seen returns the last checkpoint seen of origin.
func (s *AuditState) seen(origin string) (SeenCheckpoint, bool) {
	c, ok := s.Origins[origin]
	return c, ok
}

// remember makes c the last checkpoint seen of origin.
func (s *AuditState) remember(origin string, c SeenCheckpoint) {
	if s.Origins == nil {
		s.Origins = map[string]SeenCheckpoint{}
	}
	s.Origins[origin] = c
}

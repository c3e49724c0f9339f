package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics and that its errors keep their promises: every
// error is an *Errors with at least one problem, every problem names the file and has a
// line >= 1, except the file-level problem of a file with no YAML document (line 0).
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "example.yaml")); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data, testKinds)
		if err != nil {
			if s != nil {
				t.Fatalf("scenario returned with an error")
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, not *Errors: %v", err, err)
			}
			if len(errs.Problems) == 0 {
				t.Fatalf("*Errors with no problems")
			}
			last := 0
			for _, p := range errs.Problems {
				if p.File != "fuzz.yaml" {
					t.Errorf("problem names file %q: %v", p.File, p)
				}
				if p.Line < 0 || (p.Line == 0 && p.Msg != emptyFileMsg) {
					t.Errorf("problem without a line: %v", p)
				}
				if p.Line < last {
					t.Errorf("problems not sorted by line: %v", err)
				}
				last = p.Line
				if p.Msg == "" {
					t.Errorf("problem without a message at line %d", p.Line)
				}
			}
			_ = err.Error()
			return
		}
		if s == nil {
			t.Fatalf("no scenario and no error")
		}
		if !nameRe.MatchString(s.Name) || len(s.Groups) == 0 || s.Homes < 1 || s.Homes > MaxHomes ||
			int64(s.Homes)*int64(s.DevicesPerHome()) > MaxDevices {
			t.Fatalf("invalid scenario accepted: %+v", s)
		}
		for i := range s.Groups {
			g := &s.Groups[i]
			if g.Params == nil || g.Count < 1 || g.QoS > 2 || !(g.MaxRate > 0) {
				t.Fatalf("invalid group accepted: %+v", g)
			}
			cfg := s.DeviceConfig(g, s.Homes, g.Count)
			if checkName(cfg.Topic, true) != nil || checkName(cfg.Prefix, true) != nil {
				t.Fatalf("invalid topic accepted: %q (prefix %q)", cfg.Topic, cfg.Prefix)
			}
		}
	})
}

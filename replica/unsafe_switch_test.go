package replica

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestApplyUnsafeSwitches(t *testing.T) {
	for _, tc := range []struct {
		name     string
		value    string
		faults   bool
		wantOn   bool
		wantErr  string
		wantWarn bool
	}{
		{name: "unset", value: "", faults: true},
		{name: "zero", value: "0", faults: true},
		{name: "on with fault injection", value: "1", faults: true, wantOn: true, wantWarn: true},
		{name: "on without fault injection", value: "1", wantErr: "add --fault-injection"},
		{name: "typo", value: "yes", faults: true, wantErr: "set it to 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := Config{FaultInjection: tc.faults, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			err := cfg.ApplyUnsafeSwitches(func(name string) string {
				if name == UnsafeSkipDependenciesEnv {
					return tc.value
				}
				return ""
			})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("ApplyUnsafeSwitches: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("ApplyUnsafeSwitches = %v, want an error containing %q", err, tc.wantErr)
			}
			if cfg.UnsafeSkipDependencies != tc.wantOn {
				t.Errorf("UnsafeSkipDependencies = %v, want %v", cfg.UnsafeSkipDependencies, tc.wantOn)
			}
			if got := strings.Contains(logs.String(), UnsafeSkipDependenciesWarning); got != tc.wantWarn {
				t.Errorf("warning logged: %v, want %v (logs: %q)", got, tc.wantWarn, logs.String())
			}
		})
	}
}

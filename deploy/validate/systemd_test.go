package validate

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// deploy/systemd/padlock.service, checked by systemd's own tools where they are installed:
// `systemd-analyze verify` (which only warns, exit 0, on an unknown key, so its output must be
// empty) and `systemd-analyze security --offline`, whose exposure score must stay at 2.0 or
// less (the unit scores 1.4 with systemd 252).

const unit = "../systemd/padlock.service"

func analyze(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("systemd-analyze", args...).CombinedOutput()
	return string(out), err
}

// unitCopy writes the unit, changed by edit, as padlock.service in a temporary directory.
func unitCopy(t *testing.T, edit func(string) string) string {
	t.Helper()
	text, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "padlock.service")
	if err := os.WriteFile(path, []byte(edit(string(text))), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func needSystemdAnalyze(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed")
	}
}

func TestSystemdUnitVerifies(t *testing.T) {
	needSystemdAnalyze(t)
	same := func(s string) string { return s }
	if out, err := analyze(t, "verify", unitCopy(t, same)); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	misspelt := unitCopy(t, func(s string) string { return strings.Replace(s, "NoNewPrivileges=", "NoNewPrivilege=", 1) })
	if out, _ := analyze(t, "verify", misspelt); !strings.Contains(out, "Unknown key") {
		t.Fatalf("a misspelt key went unnoticed by verify: %q", out)
	}
}

func TestSystemdUnitIsHardened(t *testing.T) {
	needSystemdAnalyze(t)
	text, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"CapabilityBoundingSet=", "User=padlock", "UMask=0077", "LimitCORE=0", "SystemCallFilter=@system-service"} {
		if !strings.Contains(string(text), "\n"+line+"\n") {
			t.Errorf("the unit has no %s line", line)
		}
	}
	same := func(s string) string { return s }
	if out, err := analyze(t, "security", "--offline=true", "--threshold=20", unitCopy(t, same)); err != nil {
		t.Fatalf("exposure above 2.0: %v\n%s", err, out)
	}
	// The same unit without its sandboxing scores far worse, and the threshold catches it.
	bare := unitCopy(t, func(s string) string {
		return s[:strings.Index(s, "NoNewPrivileges=")] + s[strings.Index(s, "[Install]"):]
	})
	if _, err := analyze(t, "security", "--offline=true", "--threshold=20", bare); err == nil {
		t.Fatal("the unsandboxed unit passed the exposure threshold")
	}
}

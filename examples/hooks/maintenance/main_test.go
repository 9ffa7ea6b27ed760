package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/respawner/respawner/pkg/hooks"
)

func TestHoldsWhileFileExists(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "hold")
	c, err := hooks.InProcess(&maintenance{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	ctx := t.Context()

	_, opts, err := hooks.ParseSpec("maintenance:file=" + flag) // what --plugin turns into
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Configure(ctx, opts); err != nil {
		t.Fatal(err)
	}
	ev := hooks.Event{Kind: hooks.RestartPending, Instance: "web", Attempt: 1}

	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err := c.RestartPending(ctx, ev); err != nil || v.Decision != hooks.DecisionDeny {
		t.Errorf("flag present: %v, %v; want deny", v, err)
	}
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	if v, err := c.RestartPending(ctx, ev); err != nil || v.Decision != hooks.DecisionAllow {
		t.Errorf("flag gone: %v, %v; want allow", v, err)
	}
}

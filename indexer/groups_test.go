package indexer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoadGroups(t *testing.T) {
	tests := []struct {
		name, content string
		want          map[string][]string
		errHas        string
	}{
		{"yaml", "alice@example.com: [oidc:devs, oidc:auditors, oidc:devs]\nbob: [g]\n",
			map[string][]string{"alice@example.com": {"oidc:devs", "oidc:auditors"}, "bob": {"g"}}, ""},
		{"json", `{"https://idp.example.com#carol": ["ops"]}`, map[string][]string{"https://idp.example.com#carol": {"ops"}}, ""},
		{"empty file", "", map[string][]string{}, ""},
		{"not a map", "- alice\n- bob\n", nil, "want a map"},
		{"groups not a list", "alice: devs\n", nil, "want a map"},
		{"syntax error with line", "alice: [devs]\nbob: [ops\n", nil, "line"},
		{"empty group", "alice: ['']\n", nil, "empty group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "groups.yaml")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			users, err := LoadGroups(path)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) || !strings.Contains(err.Error(), path) {
					t.Fatalf("LoadGroups error = %v, want one naming %s and saying %q", err, path, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for _, u := range users {
				got[u.Name] = u.Groups
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("LoadGroups (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := LoadGroups(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("LoadGroups of a missing file succeeded")
	}
}

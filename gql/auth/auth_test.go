package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/kiem-io/kiem/internal/testutil"
)

// newLog returns a JSON logger at debug and the buffer it writes to.
func newLog() (*slog.Logger, *testutil.Buffer) {
	var b testutil.Buffer
	return slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:8080", true},
		{"127.3.4.5:8080", true},
		{"[::1]:80", true},
		{"localhost:8080", true},
		{"LocalHost:8080", true},
		{"127.0.0.1", true},
		{"::1", true},
		{"[::ffff:127.0.0.1]:80", true},
		{"0.0.0.0:8080", false},
		{":8080", false},
		{"[::]:8080", false},
		{"10.0.0.1:1", false},
		{"example.com:80", false},
		{"localhost.example.com:80", false},
		{"", false},
	} {
		if got := IsLoopback(tc.addr); got != tc.want {
			t.Errorf("IsLoopback(%q)=%v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestRole(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Role
		ok   bool
	}{
		{"viewer", RoleViewer, true},
		{"admin", RoleAdmin, true},
		{"Admin", RoleAdmin, true},
		{"editor", 0, false},
		{"", 0, false},
	} {
		got, err := ParseRole(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseRole(%q)=%v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && got.String() != strings.ToLower(tc.in) {
			t.Errorf("%v.String()=%q, want %q", got, got.String(), strings.ToLower(tc.in))
		}
	}
	if got := Role(0).String(); got != "none" {
		t.Errorf("Role(0).String()=%q, want none", got)
	}
}

func TestRequireAdmin(t *testing.T) {
	ctx := context.Background()
	if err := RequireAdmin(WithPrincipal(ctx, Principal{User: "a", Role: RoleAdmin})); err != nil {
		t.Errorf("admin: %v", err)
	}
	err := RequireAdmin(WithPrincipal(ctx, Principal{User: "v", Role: RoleViewer}))
	if !errors.Is(err, ErrForbidden) || err.Error() != "forbidden: mutations need the admin role; you are viewer" {
		t.Errorf("viewer: %v", err)
	}
	if err := RequireAdmin(ctx); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "not authenticated") {
		t.Errorf("no principal: %v", err)
	}
}

func TestStatic(t *testing.T) {
	s, err := NewStatic("s3cret", "demo", RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := s.Authenticate(ctx, "s3cret")
	if err != nil || p.User != "demo" || p.Role != RoleAdmin || p.Mode != ModeStatic {
		t.Errorf("right token: %+v, %v", p, err)
	}
	if _, err := s.Authenticate(ctx, "s3cret "); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("wrong token: %v, want ErrUnauthenticated", err)
	}
	if _, err := s.Authenticate(ctx, ""); !errors.Is(err, ErrNoToken) {
		t.Errorf("no token: %v, want ErrNoToken", err)
	}
	for _, bad := range []struct {
		token, user string
		role        Role
	}{{"", "u", RoleAdmin}, {"t", "", RoleAdmin}, {"t", "u", 0}} {
		if _, err := NewStatic(bad.token, bad.user, bad.role); err == nil {
			t.Errorf("NewStatic(%q, %q, %v) succeeded", bad.token, bad.user, bad.role)
		}
	}
}

func TestAnonymous(t *testing.T) {
	p, err := Anonymous{}.Authenticate(context.Background(), "")
	if err != nil || p.User != "anonymous" || p.Role != RoleAdmin {
		t.Errorf("Anonymous: %+v, %v", p, err)
	}
}

func TestGenerateToken(t *testing.T) {
	a, err := GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two tokens are equal")
	}
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 {
		t.Fatalf("token %q decodes to %d bytes, %v; want 32", a, len(raw), err)
	}
}

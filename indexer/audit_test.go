package indexer

import (
	"errors"
	"strings"
	"testing"
)

// A RoleBinding create as the apiserver's webhook backend sends it (RequestResponse level, impersonated), with
// the fields kiem reads and some it ignores.
const auditCreate = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse",
 "auditID":"6f8c2f1e-0d4e-4d3a-9a55-3f7f5e7c1a10","stage":"ResponseComplete",
 "requestURI":"/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings?fieldManager=kubectl-client-side-apply",
 "verb":"create","user":{"username":"admin","groups":["system:masters","system:authenticated"]},
 "impersonatedUser":{"username":"alice@example.com","groups":["devs","system:authenticated"]},
 "sourceIPs":["10.0.0.7"],"userAgent":"kubectl/v1.33.13 (linux/amd64) kubernetes/abc",
 "objectRef":{"resource":"rolebindings","namespace":"team","name":"readers","apiGroup":"rbac.authorization.k8s.io","apiVersion":"v1"},
 "responseStatus":{"metadata":{},"code":201},
 "responseObject":{"kind":"RoleBinding","metadata":{"name":"readers","namespace":"team","uid":"0c5d","resourceVersion":"4711"}},
 "requestReceivedTimestamp":"2026-11-24T10:00:00.000000Z","stageTimestamp":"2026-11-24T10:00:00.012345Z",
 "annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}`

func TestDecodeEventList(t *testing.T) {
	body := `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[` + auditCreate + `,
	 {"auditID":"x","stage":"ResponseComplete"},
	 "not an object",
	 {"auditID":"y","stage":"Sideways","verb":"get","user":{"username":"bob"},"stageTimestamp":"2026-11-24T10:00:01Z"}]}`
	events, malformed, err := DecodeEventList(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 {
		t.Fatalf("%d events, want 1", len(events))
	}
	e := events[0]
	if e.Key() != (AuditKey{"6f8c2f1e-0d4e-4d3a-9a55-3f7f5e7c1a10", "ResponseComplete"}) || e.Verb != "create" ||
		e.ObjectRef == nil || e.ObjectRef.Namespace != "team" || e.ResponseStatus.Code != 201 || e.UserAgent == "" {
		t.Errorf("event decoded as %+v", e)
	}
	if p := e.Principal(); p.Username != "alice@example.com" || len(p.Groups) != 2 {
		t.Errorf("principal %+v, want the impersonated alice", p)
	}
	wantBad := []string{"items[1]: no user.username", "items[2]: not an audit event", `items[3]: unknown stage "Sideways"`}
	if len(malformed) != len(wantBad) {
		t.Fatalf("malformed %v, want %v", malformed, wantBad)
	}
	for i, m := range malformed {
		if !strings.HasPrefix(m.Error(), wantBad[i]) {
			t.Errorf("malformed[%d] = %q, want %q…", i, m, wantBad[i])
		}
	}

	for _, tc := range []struct{ name, body, want string }{
		{"not JSON", `{"kind":`, "not JSON"},
		{"another kind", `{"kind":"PodList","apiVersion":"v1","items":[]}`, "want audit.k8s.io/v1 EventList"},
		{"older version", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1beta1","items":[]}`, "want audit.k8s.io/v1 EventList"},
		{"too large", `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":["` + strings.Repeat("x", maxAuditBatch) + `"]}`, "over 64 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events, malformed, err := DecodeEventList(strings.NewReader(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) || events != nil || malformed != nil {
				t.Errorf("DecodeEventList = %d events, %v, %v; want only an error with %q", len(events), malformed, err, tc.want)
			}
		})
	}
}

func TestReadEventLines(t *testing.T) {
	line := strings.ReplaceAll(auditCreate, "\n", "")
	log := line + "\n" + "\n" + "{garbage\n" + strings.Replace(line, "ResponseComplete", "RequestReceived", 1) + "\n" + `{"partial":`
	var got []AuditKey
	var bad []string
	n, err := ReadEventLines(strings.NewReader(log), 10, func(e AuditEvent) error {
		got = append(got, e.Key())
		return nil
	}, func(e *AuditError) { bad = append(bad, e.Error()) })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Stage != "ResponseComplete" || got[1].Stage != "RequestReceived" {
		t.Errorf("events %v", got)
	}
	if len(bad) != 1 || !strings.HasPrefix(bad[0], "line 12: not an audit event") {
		t.Errorf("malformed %v, want line 12", bad)
	}
	// The partial last line is not consumed: a follower reads it again once it is complete.
	if want := int64(len(log) - len(`{"partial":`)); n != want {
		t.Errorf("consumed %d bytes, want %d", n, want)
	}

	stop := errors.New("stop")
	n, err = ReadEventLines(strings.NewReader(log), 1, func(AuditEvent) error { return stop }, func(*AuditError) {})
	if !errors.Is(err, stop) || n != int64(len(line)+1) {
		t.Errorf("ReadEventLines stopping at the first event = %d, %v; want %d, stop", n, err, len(line)+1)
	}
}

package gql

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/kiem-io/kiem/graph"
)

func TestRevisionsNewestFirstAcrossPages(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	type page struct {
		Revisions struct {
			Revision uint64
			PageInfo struct {
				HasNextPage bool
				EndCursor   string
			}
			Nodes []struct {
				Revision uint64
				Source   string
				Changes  int
				Summary  []struct {
					Kind                    string
					Added, Updated, Deleted int
				}
			}
		}
	}
	var got []uint64
	var after any
	for i := 0; ; i++ {
		var p page
		a.query(`query($after: String) { revisions(first: 3, after: $after) { revision pageInfo { hasNextPage endCursor } nodes { revision source changes summary { kind added updated deleted } } } }`,
			map[string]any{"after": after}, &p)
		for _, n := range p.Revisions.Nodes {
			got = append(got, n.Revision)
			total := 0
			for _, s := range n.Summary {
				total += s.Added + s.Updated + s.Deleted
			}
			if total != n.Changes || n.Source == "" {
				t.Errorf("revision %d: summary adds up to %d, changes %d, source %q", n.Revision, total, n.Changes, n.Source)
			}
		}
		if !p.Revisions.PageInfo.HasNextPage {
			break
		}
		after = p.Revisions.PageInfo.EndCursor
		if i > 10 {
			t.Fatal("pagination does not end")
		}
	}
	want := slices.Clone(a.revs)
	slices.Reverse(want)
	if len(got) != len(want) {
		t.Fatalf("revisions %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != uint64(want[i]) {
			t.Fatalf("revisions %v, want %v", got, want)
		}
	}
	var one struct{ Revision *struct{ Source string } }
	a.query(`query($r: Revision!) { revision(revision: $r) { source } }`, map[string]any{"r": a.revs[2]}, &one)
	if one.Revision == nil || one.Revision.Source != demoOnce.steps[2].Name {
		t.Errorf("revision(%d) = %+v, want source %q", a.revs[2], one.Revision, demoOnce.steps[2].Name)
	}
}

func TestChangesPageThroughRevisions(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	type change struct {
		Op, Kind, Namespace, Name, ID string
		Seq                           int
		Revision                      struct {
			Revision uint64
			Source   string
		}
		Before, After json.RawMessage
	}
	from, to := a.revs[4], a.revs[6]
	var all struct{ Changes struct{ Nodes []change } }
	a.query(`query($f: Revision!, $t: Revision) { changes(from: $f, to: $t, first: 1000) { nodes { op kind namespace name id seq revision { revision source } before after } } }`,
		map[string]any{"f": from, "t": to}, &all)
	var want []graph.ChangeRecord
	_ = a.live.Store().Changes(context.Background(), from, to, func(c graph.ChangeRecord) bool { want = append(want, c); return true })
	if len(all.Changes.Nodes) != len(want) || len(want) == 0 {
		t.Fatalf("%d changes, store has %d", len(all.Changes.Nodes), len(want))
	}
	var added bool
	for i, c := range all.Changes.Nodes {
		if c.Name != want[i].Ref.Name || c.Revision.Revision != uint64(want[i].Revision) || c.Seq != want[i].Seq || c.Revision.Source == "" {
			t.Errorf("change %d = %+v, store has %+v", i, c, want[i])
		}
		if c.Name == "anonymous-pod-lister" && c.Kind == "CLUSTER_ROLE_BINDING" && c.Op == "ADD" {
			added = true
			if string(c.Before) != "null" || len(c.After) < 10 {
				t.Errorf("added binding: before %s, after %s", c.Before, c.After)
			}
		}
	}
	if !added {
		t.Error("the anonymous-pod-lister binding's addition is missing")
	}
	// One at a time, the same changes.
	var paged []change
	var after any
	for range len(want) + 1 {
		var p struct {
			Changes struct {
				Nodes    []change
				PageInfo struct {
					HasNextPage bool
					EndCursor   string
				}
			}
		}
		a.query(`query($f: Revision!, $t: Revision, $a: String) { changes(from: $f, to: $t, first: 1, after: $a) { pageInfo { hasNextPage endCursor } nodes { name seq revision { revision } } } }`,
			map[string]any{"f": from, "t": to, "a": after}, &p)
		paged = append(paged, p.Changes.Nodes...)
		if !p.Changes.PageInfo.HasNextPage {
			break
		}
		after = p.Changes.PageInfo.EndCursor
	}
	if len(paged) != len(want) {
		t.Fatalf("paged %d changes, want %d", len(paged), len(want))
	}
	for i := range paged {
		if paged[i].Name != want[i].Ref.Name || paged[i].Seq != want[i].Seq {
			t.Errorf("page %d = %+v, want %v seq %d", i, paged[i], want[i].Ref, want[i].Seq)
		}
	}
}

func TestDiffObjectsAndGrants(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	var out struct {
		Diff struct {
			From, To uint64
			Objects  struct {
				TotalCount int
				Nodes      []struct {
					Op, Kind, Name string
					Node           *struct{ Name string }
					Before, After  json.RawMessage
				}
			}
			Subjects struct {
				Nodes []struct {
					Subject struct {
						Typename string `json:"__typename"`
						Name     string
					}
					Gained, Lost []struct {
						Namespace *string
						Grant     struct {
							Binding struct{ Name string }
							Role    struct{ Name string }
							Rule    struct{ Resources []string }
						}
					}
				}
			}
		}
	}
	a.query(`query($f: Revision!, $t: Revision) { diff(from: $f, to: $t) { from to
	  objects { totalCount nodes { op kind name node { name } before after } }
	  subjects { nodes { subject { __typename name } gained { namespace grant { binding { name } role { name } rule { resources } } } lost { namespace grant { binding { name } role { name } rule { resources } } } } } } }`,
		map[string]any{"f": a.revs[5], "t": a.revs[6]}, &out)
	d := out.Diff
	if d.From != uint64(a.revs[5]) || d.To != uint64(a.revs[6]) {
		t.Errorf("diff %d..%d, asked %d..%d", d.From, d.To, a.revs[5], a.revs[6])
	}
	var deleted bool
	for _, o := range d.Objects.Nodes {
		if o.Name == "anonymous-pod-lister" && o.Kind == "CLUSTER_ROLE_BINDING" {
			deleted = o.Op == "DELETE" && o.Node == nil && string(o.After) == "null" && len(o.Before) > 10
		}
	}
	if !deleted {
		t.Errorf("objects %+v: want anonymous-pod-lister deleted, with its before and no node", d.Objects.Nodes)
	}
	var lost bool
	for _, s := range d.Subjects.Nodes {
		if s.Subject.Name == "system:unauthenticated" {
			for _, l := range s.Lost {
				// A lost grant's binding no longer exists at to: it is read at from.
				lost = lost || l.Grant.Binding.Name == "anonymous-pod-lister" && l.Grant.Role.Name == "pod-lister" && slices.Contains(l.Grant.Rule.Resources, "pods")
			}
		}
	}
	if !lost {
		t.Errorf("subjects %+v: want system:unauthenticated losing pods through anonymous-pod-lister", d.Subjects.Nodes)
	}
	msg := a.queryError(`query($f: Revision!, $t: Revision) { diff(from: $f, to: $t) { from } }`, map[string]any{"f": a.revs[6], "t": a.revs[5]})
	contains(t, "reversed diff", msg, "after")
}

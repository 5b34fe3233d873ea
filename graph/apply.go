package graph

import (
	"maps"
	"slices"
	"strings"
)

// Apply returns the snapshot that results from applying changes in order, sharing every shard the changes do not
// touch with s, which is not modified. Only an object's After counts: an OpDelete removes the object, any other
// change puts After in place, so applying a change twice is harmless.
func (s *Snapshot) Apply(changes []Change) *Snapshot {
	if len(changes) == 0 {
		return s
	}
	// Edits by shard, then by name; the last change to an object wins. A nil value deletes.
	var crs, crbs, nsObjs, nodes, users map[string]Object
	byNs := map[string]map[ObjectRef]Object{}
	put := func(m *map[string]Object, name string, o Object) {
		if *m == nil {
			*m = map[string]Object{}
		}
		(*m)[name] = o
	}
	for _, c := range changes {
		var after Object
		if c.Op != OpDelete {
			after = c.After
		}
		switch c.Ref.Kind {
		case KindClusterRole:
			put(&crs, c.Ref.Name, after)
		case KindClusterRoleBinding:
			put(&crbs, c.Ref.Name, after)
		case KindNamespace:
			put(&nsObjs, c.Ref.Name, after)
		case KindNode:
			put(&nodes, c.Ref.Name, after)
		case KindUser:
			put(&users, c.Ref.Name, after)
		default:
			if byNs[c.Ref.Namespace] == nil {
				byNs[c.Ref.Namespace] = map[ObjectRef]Object{}
			}
			byNs[c.Ref.Namespace][c.Ref] = after
		}
	}

	n := &Snapshot{opts: s.opts, cr: s.cr, crb: s.crb, inv: s.inv, nss: s.nss, table: s.table}
	n.table.mu.Lock()
	defer n.table.mu.Unlock()
	if crs != nil {
		n.cr = s.cr.withEdits(crs, s.opts)
	}
	if crbs != nil {
		n.crb = buildCRBShard(edit(s.crb.bindings, crbs), s.table)
	}
	if nsObjs != nil || nodes != nil || users != nil {
		n.inv = buildInventoryShard(edit(s.inv.namespaces, nsObjs), edit(s.inv.nodes, nodes), edit(s.inv.users, users))
	}
	if len(byNs) > 0 {
		n.nss = maps.Clone(s.nss)
		for ns, edits := range byNs {
			old := s.nss[ns]
			if old == nil {
				old = &nsShard{}
			}
			split := func(k Kind) map[string]Object {
				var m map[string]Object
				for ref, o := range edits {
					if ref.Kind == k {
						put(&m, ref.Name, o)
					}
				}
				return m
			}
			sh := buildNsShard(ns, edit(old.srcRoles, split(KindRole)), edit(old.bindings, split(KindRoleBinding)),
				edit(old.serviceAccounts, split(KindServiceAccount)), edit(old.pods, split(KindPod)), edit(old.secrets, split(KindSecret)), s.table)
			if len(sh.roles)+len(sh.bindings)+len(sh.serviceAccounts)+len(sh.pods)+len(sh.secrets) == 0 {
				delete(n.nss, ns)
			} else {
				n.nss[ns] = sh
			}
		}
	}
	n.finish(s)
	var changed []string
	if crbs != nil {
		changed = append(changed, "")
	}
	for ns := range byNs {
		changed = append(changed, ns)
	}
	n.deriveBound(s, changed)
	return n
}

// edit returns a copy of items, sorted by name, with the objects of edits put in place (nil values removed).
func edit[T named](items []T, edits map[string]Object) []T {
	if edits == nil {
		return items
	}
	out := make([]T, 0, len(items)+len(edits))
	for i := range items {
		if _, edited := edits[nameKey(&items[i])]; !edited {
			out = append(out, items[i])
		}
	}
	for _, o := range edits {
		if v, ok := any(o).(*T); ok && v != nil {
			out = append(out, *v)
		}
	}
	slices.SortFunc(out, func(a, b T) int { return strings.Compare(nameKey(&a), nameKey(&b)) })
	return out
}

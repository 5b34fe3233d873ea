package graph

import (
	"cmp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	rbacv1 "k8s.io/api/rbac/v1"
)

// termIndex indexes the objects of one shard for Search. Terms are the distinct field values, lower-cased and
// sorted, so that exact and prefix matches are a binary search; they are also laid end to end in one string,
// each followed by a NUL, so that a substring search is one strings.Index loop over the whole shard. Objects are
// numbered in kind order and by name within a kind, which is the order of hits of equal rank and field.
//
//	buf:   \0 term0 \0 term1 \0 … termN-1 \0
//	starts[i] is where term i begins in buf; starts[N] = len(buf)
//	posts[postStart[i]:postStart[i+1]] are term i's postings: object << 4 | field
//
// Two filters keep the weaker tiers from reading every shard's terms: a Bloom filter of the trigrams in the
// terms, which most shards fail for a text that occurs in few places, and the terms ordered by length, since a
// fuzzy match is within a few bytes of the text's length.
type termIndex struct {
	ns        string // the namespace of every object when the index is a namespace's; else ""
	nsLower   string
	refs      []ObjectRef
	kinds     []uint8 // kindOrder per object
	kindMask  uint16  // the kinds the index holds
	buf       string
	starts    []int32
	orig      map[int32]string // terms whose stored text differs from the lower-cased one (by term)
	postStart []int32
	posts     []uint32
	// keys[i] is the first 8 bytes of term i, zero-padded and big-endian: binary searches compare integers.
	keys []uint64
	// byLen lists the terms by byte length; lenStart[n] is where those of length n begin (len(lenStart) is one
	// more than the longest length); lenMasks[j] is the byteMask of term byLen[j], which rules out most terms
	// before an edit distance is computed. wide lists (as positions in byLen) the terms with
	// multi-byte runes, whose byte length exceeds their length in runes.
	byLen    []int32
	lenStart []int32
	lenMasks []uint64
	wide     []int32
	trigrams bloom
}

// bloom is a Bloom filter of trigrams with one hash function: a shard's terms fill about a quarter of its bits.
type bloom []uint64

func trigramHash(a, b, c byte) uint32 {
	return (uint32(a)<<16 | uint32(b)<<8 | uint32(c)) * 0x9E3779B1
}

func newBloom(text string) bloom {
	bits := 512
	for bits < 4*len(text) && bits < 1<<20 {
		bits <<= 1
	}
	f := make(bloom, bits/64)
	shift := 32 - uint(log2(bits))
	for i := 0; i+2 < len(text); i++ {
		if text[i+1] == 0 {
			i++ // no trigram spans a separator; the text holds none
			continue
		}
		if text[i] == 0 || text[i+2] == 0 {
			continue
		}
		h := trigramHash(text[i], text[i+1], text[i+2]) >> shift
		f[h/64] |= 1 << (h % 64)
	}
	return f
}

// trigramHashes returns the hashes of q's trigrams, by position.
func trigramHashes(q string) []uint32 {
	var hs []uint32
	for i := 0; i+2 < len(q); i++ {
		hs = append(hs, trigramHash(q[i], q[i+1], q[i+2]))
	}
	return hs
}

// holds reports whether the filter may hold at least need of the trigrams hs (hashes by position).
func (f bloom) holds(hs []uint32, need int) bool {
	shift := 32 - uint(log2(len(f)*64))
	missing := 0
	for _, h := range hs {
		if h >>= shift; f[h/64]&(1<<(h%64)) == 0 {
			if missing++; len(hs)-missing < need {
				return false
			}
		}
	}
	return true
}

func log2(n int) int {
	l := 0
	for ; n > 1; n >>= 1 {
		l++
	}
	return l
}

func (ix *termIndex) terms() int { return len(ix.starts) - 1 }

// firstOf returns the number of the first object of kind k, or of the kind after it.
func (ix *termIndex) firstOf(k Kind) int32 {
	o, _ := kindOrder(k)
	i, _ := slices.BinarySearch(ix.kinds, o)
	return int32(i)
}

func (ix *termIndex) term(i int) string { return ix.buf[ix.starts[i] : ix.starts[i+1]-1] }

// value is term i as stored.
func (ix *termIndex) value(i int) string {
	if o, ok := ix.orig[int32(i)]; ok {
		return o
	}
	return ix.term(i)
}

// prefixKey returns the first 8 bytes of s as termIndex.keys holds them.
func prefixKey(s string) uint64 {
	var k uint64
	for i := range 8 {
		k <<= 8
		if i < len(s) {
			k |= uint64(s[i])
		}
	}
	return k
}

// lowerBound returns the first term not less than q. Keys order terms as their text does, only with ties among
// terms that share 8 bytes, which strings break.
func (ix *termIndex) lowerBound(q string, qKey uint64) int {
	lo, _ := slices.BinarySearch(ix.keys, qKey)
	hi := lo
	for hi < len(ix.keys) && ix.keys[hi] == qKey && hi-lo < 8 {
		hi++
	}
	if hi < len(ix.keys) && ix.keys[hi] == qKey {
		hi += sort.Search(len(ix.keys)-hi, func(i int) bool { return ix.keys[hi+i] != qKey })
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ix.term(m) < q {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// termAt returns the term that byte pos of buf belongs to.
func (ix *termIndex) termAt(pos int) int {
	i, found := slices.BinarySearch(ix.starts, int32(pos))
	if !found {
		i--
	}
	return i
}

// lazyIndex is a shard's search index, built by the first search that needs it. Shards are shared by the
// snapshots applied from one another, and so are their indexes.
type lazyIndex struct {
	once sync.Once
	ix   atomic.Pointer[termIndex]
}

// indexed is a shard that can index its objects.
type indexed interface {
	buildSearch() *termIndex
}

func (l *lazyIndex) get(src indexed) *termIndex {
	if ix := l.ix.Load(); ix != nil {
		return ix
	}
	l.once.Do(func() { l.ix.Store(src.buildSearch()) })
	return l.ix.Load()
}

// byteMask returns the set of byte classes of s: one bit per letter and digit, one for the bytes of every
// multi-byte rune, the other bytes folded onto the remaining bits. Every rune thus has one class, and an edit adds
// at most one class and removes at most one: two strings k edits apart differ by at most k classes each way.
func byteMask(s string) uint64 {
	var m uint64
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z':
			m |= 1 << (c - 'a')
		case c >= '0' && c <= '9':
			m |= 1 << (26 + c - '0')
		case c >= utf8.RuneSelf:
			m |= 1 << nonASCII
		default:
			m |= 1 << (36 + c%27)
		}
	}
	return m
}

// nonASCII is the byte class of every byte of a multi-byte rune.
const nonASCII = 63

// indexBuilder collects the fields of a shard's objects, which must be added in kind order and by name.
type indexBuilder struct {
	ns    string
	ids   map[string]int32 // stored text → term
	texts []string
	raw   []rawPosting
	refs  []ObjectRef
	kinds []uint8
}

type rawPosting struct {
	term, obj int32
	field     field
}

func newIndexBuilder(ns string, objects int) *indexBuilder {
	return &indexBuilder{ns: ns, ids: make(map[string]int32, 2*objects), refs: make([]ObjectRef, 0, objects),
		kinds: make([]uint8, 0, objects), raw: make([]rawPosting, 0, 4*objects)}
}

// object adds an object named by ref and its name, and returns its number.
func (b *indexBuilder) object(ref ObjectRef) int32 {
	obj := int32(len(b.refs))
	k, _ := kindOrder(ref.Kind)
	b.refs = append(b.refs, ref)
	b.kinds = append(b.kinds, k)
	b.add(obj, fieldName, ref.Name)
	return obj
}

func (b *indexBuilder) add(obj int32, f field, text string) {
	if text == "" {
		return
	}
	id, ok := b.ids[text]
	if !ok {
		id = int32(len(b.texts))
		b.ids[text] = id
		b.texts = append(b.texts, text)
	}
	b.raw = append(b.raw, rawPosting{id, obj, f})
}

func (b *indexBuilder) labels(obj int32, m map[string]string) {
	for k, v := range m {
		b.add(obj, fieldLabel, k)
		b.add(obj, fieldLabel, v)
		b.add(obj, fieldLabel, k+"="+v)
	}
}

func (b *indexBuilder) rules(obj int32, rules []rbacv1.PolicyRule) {
	for i := range rules {
		r := &rules[i]
		for _, s := range r.Resources {
			b.add(obj, fieldRule, s)
		}
		for _, s := range r.ResourceNames {
			b.add(obj, fieldRule, s)
		}
		for _, s := range r.NonResourceURLs {
			b.add(obj, fieldRule, s)
		}
		for _, g := range r.APIGroups {
			if g != "" && g != "*" {
				b.add(obj, fieldRule, g)
			}
		}
	}
}

// binding adds a binding's fields; scope is the namespace a ServiceAccount subject without one stands in.
func (b *indexBuilder) binding(bd *Binding, scope string) {
	obj := b.object(bd.Ref())
	b.labels(obj, bd.Labels)
	b.add(obj, fieldRoleRef, bd.RoleRef.Name)
	for _, subj := range bd.Subjects {
		b.add(obj, fieldSubject, subj.Name)
		if ns := cmp.Or(subj.Namespace, scope); subj.Kind == rbacv1.ServiceAccountKind && ns != "" {
			b.add(obj, fieldSubject, ns+"/"+subj.Name)
			b.add(obj, fieldSubject, ServiceAccountUsername(ns, subj.Name))
		}
	}
}

func (b *indexBuilder) build() *termIndex {
	ix := &termIndex{ns: b.ns, nsLower: strings.ToLower(b.ns), refs: b.refs, kinds: b.kinds}
	for _, k := range b.kinds {
		ix.kindMask |= 1 << k
	}
	n := len(b.texts)
	lower := make([]string, n)
	size := 1
	for i, t := range b.texts {
		lower[i] = strings.ToLower(t)
		size += len(lower[i]) + 1
	}
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(x, y int32) int {
		return cmp.Or(strings.Compare(lower[x], lower[y]), strings.Compare(b.texts[x], b.texts[y]))
	})
	rank := make([]int32, n)
	var sb strings.Builder
	sb.Grow(size)
	sb.WriteByte(0)
	ix.starts = make([]int32, n+1)
	ix.keys = make([]uint64, n)
	for r, id := range order {
		rank[id] = int32(r)
		ix.starts[r] = int32(sb.Len())
		sb.WriteString(lower[id])
		sb.WriteByte(0)
		ix.keys[r] = prefixKey(lower[id])
		if lower[id] != b.texts[id] {
			if ix.orig == nil {
				ix.orig = make(map[int32]string)
			}
			ix.orig[int32(r)] = b.texts[id]
		}
	}
	ix.starts[n] = int32(sb.Len())
	ix.buf = sb.String()
	ix.trigrams = newBloom(ix.buf)
	lengthOrder(ix)

	// Postings grouped by term in one array (a counting sort); within a term they stay in object order.
	ix.postStart = make([]int32, n+1)
	for _, p := range b.raw {
		ix.postStart[rank[p.term]+1]++
	}
	for i := range n {
		ix.postStart[i+1] += ix.postStart[i]
	}
	fill := slices.Clone(ix.postStart[:n])
	ix.posts = make([]uint32, len(b.raw))
	for _, p := range b.raw {
		r := rank[p.term]
		ix.posts[fill[r]] = uint32(p.obj)<<4 | uint32(p.field)
		fill[r]++
	}
	return ix
}

// lengthOrder orders the terms of ix by byte length (a counting sort), with their byte classes.
func lengthOrder(ix *termIndex) {
	longest := 0
	for i := range ix.terms() {
		longest = max(longest, len(ix.term(i)))
	}
	ix.lenStart = make([]int32, longest+2)
	for i := range ix.terms() {
		ix.lenStart[len(ix.term(i))+1]++
	}
	for n := range longest + 1 {
		ix.lenStart[n+1] += ix.lenStart[n]
	}
	fill := slices.Clone(ix.lenStart)
	ix.byLen = make([]int32, ix.terms())
	ix.lenMasks = make([]uint64, ix.terms())
	for i := range ix.terms() {
		term := ix.term(i)
		j := fill[len(term)]
		fill[len(term)]++
		ix.byLen[j] = int32(i)
		ix.lenMasks[j] = byteMask(term)
		if ix.lenMasks[j]&(1<<nonASCII) != 0 {
			ix.wide = append(ix.wide, j)
		}
	}
}

func (sh *nsShard) buildSearch() *termIndex {
	b := newIndexBuilder(sh.ns, len(sh.serviceAccounts)+len(sh.roles)+2*len(sh.bindings)+len(sh.pods)+len(sh.secrets))
	b.subjects(sh.entries)
	for i := range sh.serviceAccounts {
		a := &sh.serviceAccounts[i]
		b.labels(b.object(a.Ref()), a.Labels)
	}
	for _, e := range sh.roles {
		obj := b.object(e.src.Ref())
		b.labels(obj, e.src.Labels)
		b.rules(obj, e.src.Rules)
	}
	for i := range sh.bindings {
		b.binding(&sh.bindings[i], sh.ns)
	}
	for i := range sh.pods {
		p := &sh.pods[i]
		obj := b.object(p.Ref())
		b.labels(obj, p.Labels)
		b.add(obj, fieldServiceAccount, p.ServiceAccount)
		b.add(obj, fieldNode, p.NodeName)
	}
	for i := range sh.secrets {
		sec := &sh.secrets[i]
		obj := b.object(sec.Ref())
		b.labels(obj, sec.Labels)
		b.add(obj, fieldServiceAccount, sec.ServiceAccount)
	}
	return b.build()
}

func (sh *crShard) buildSearch() *termIndex {
	b := newIndexBuilder("", len(sh.roles))
	for _, e := range sh.roles {
		obj := b.object(e.r.Ref())
		b.labels(obj, e.r.Labels)
		b.rules(obj, e.r.Rules)
	}
	return b.build()
}

func (sh *crbShard) buildSearch() *termIndex {
	b := newIndexBuilder("", 2*len(sh.bindings))
	b.subjects(sh.entries)
	for i := range sh.bindings {
		b.binding(&sh.bindings[i], "")
	}
	return b.build()
}

// buildSearch indexes the declared Users (with their groups) and the groups they list, Namespaces and Nodes.
func (sh *inventoryShard) buildSearch() *termIndex {
	var groups []string
	for i := range sh.users {
		groups = append(groups, sh.users[i].Membership()...)
	}
	slices.Sort(groups)
	groups = slices.Compact(groups)
	b := newIndexBuilder("", len(sh.users)+len(groups)+len(sh.namespaces)+len(sh.nodes))
	for i := range sh.users {
		u := &sh.users[i]
		obj := b.object(u.Ref())
		b.labels(obj, u.Labels)
		for _, g := range u.Membership() {
			b.add(obj, fieldGroup, g)
		}
	}
	for _, g := range groups {
		b.object(ObjectRef{Kind: KindGroup, Name: g})
	}
	for i := range sh.namespaces {
		n := &sh.namespaces[i]
		b.labels(b.object(n.Ref()), n.Labels)
	}
	for i := range sh.nodes {
		n := &sh.nodes[i]
		b.labels(b.object(n.Ref()), n.Labels)
	}
	return b.build()
}

// subjects adds, as objects, the users and groups the bindings' subjects name, so that a search finds them in
// the shard of their bindings and a change re-indexes no more than that shard. A user name that is a
// ServiceAccount's is that ServiceAccount, as in Subjects.
func (b *indexBuilder) subjects(entries []bindingEntry) {
	var users, groups []string
	for i := range entries {
		e := &entries[i]
		for si, p := range e.subjects {
			switch {
			case p.kind == matchesGroup:
				groups = append(groups, p.name)
			case p.kind != matchesUser || e.b.Subjects[si].Kind == rbacv1.ServiceAccountKind:
			case strings.HasPrefix(p.name, serviceAccountPrefix) && p.ref().Kind == KindServiceAccount:
			default:
				users = append(users, p.name)
			}
		}
	}
	for _, names := range [][]string{users, groups} {
		slices.Sort(names)
	}
	for _, u := range slices.Compact(users) {
		b.object(ObjectRef{Kind: KindUser, Name: u})
	}
	for _, g := range slices.Compact(groups) {
		b.object(ObjectRef{Kind: KindGroup, Name: g})
	}
}

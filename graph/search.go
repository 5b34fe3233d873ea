package graph

import (
	"cmp"
	"context"
	"math/bits"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// MatchRank says how well a search hit matches; lower is better.
type MatchRank uint8

// Match ranks, best first.
const (
	RankExact     MatchRank = iota // the whole field equals the text
	RankPrefix                     // the field starts with the text
	RankSubstring                  // the field contains the text
	RankFuzzy                      // the whole field is a few edits away from the text (see Search)
)

func (r MatchRank) String() string {
	switch r {
	case RankExact:
		return "exact"
	case RankPrefix:
		return "prefix"
	case RankSubstring:
		return "substring"
	case RankFuzzy:
		return "fuzzy"
	}
	return "unknown"
}

// SearchQuery is what Search looks for.
type SearchQuery struct {
	// Text is matched case-insensitively, without surrounding white space.
	Text string
	// Kinds restricts the hits to these kinds; empty means every kind: User, Group, ServiceAccount, Role,
	// ClusterRole, RoleBinding, ClusterRoleBinding, Namespace, Pod, Node, Secret.
	Kinds []Kind
	// Namespace restricts the hits to the objects of one namespace and its Namespace object; "" searches
	// everywhere.
	Namespace string
	// Limit is the most hits returned; 50 when not positive.
	Limit int
}

// SearchHit is one object Search found, with the best of its matches.
type SearchHit struct {
	Ref ObjectRef
	// Field is what matched: "name", "subject", "roleRef", "rule", "serviceAccount", "node", "group", "label" or
	// "namespace".
	Field string
	// Value is the matched text as stored, e.g. "pods/exec", "app.kubernetes.io/name=argocd",
	// "system:serviceaccount:ns:name".
	Value string
	Rank  MatchRank
}

// DefaultSearchLimit is the number of hits Search returns when the query sets no limit.
const DefaultSearchLimit = 50

// Search finds the objects, and the users and groups of Subjects, with a field that matches q.Text, best first:
// by rank, then by field in the order of SearchHit.Field (a name beats any other field of the same rank, and the
// namespace an object is in is the weakest evidence), then by kind in the order SearchQuery.Kinds lists them,
// namespace and name. Each object is one hit, its best match.
//
// What is searched: every name, and for namespaced objects their namespace; labels as "key", "value" and
// "key=value"; binding subjects by name (ServiceAccount subjects also as "ns/name" and
// "system:serviceaccount:ns:name") and roleRef names; the rules of Roles and ClusterRoles (the rules the snapshot
// uses, so aggregated ClusterRoles by their computed rules): resources as written ("secrets", "pods/exec", "*"),
// resourceNames, nonResourceURLs, and API groups but "" and "*" (verbs alone would match nearly every role);
// the ServiceAccount and node of pods and the ServiceAccount of token secrets; the declared groups of users.
//
// Ranks are tried in order and a weaker one only while fewer than q.Limit objects matched: exact, prefix,
// substring, then fuzzy, which matches whole fields within a Levenshtein distance (counted in runes) of 1 for a
// text of 4 to 7 runes and of 2 from 8 runes on, so that "clusteradmn" finds cluster-admin; shorter texts are
// never matched fuzzily, as nearly everything is a couple of edits from them.
//
// Each shard of the snapshot indexes its objects on the first search that needs them, and the snapshots applied
// from it share the index of every shard a change leaves alone: after Apply, a search indexes again only the
// shards that changed (users and groups are indexed in the shards of the bindings that name them, so none is
// snapshot-wide). The first search after NewSnapshot indexes every shard, in parallel. An empty text matches
// nothing. Returns ctx's error if it ends first.
func (s *Snapshot) Search(ctx context.Context, q SearchQuery) ([]SearchHit, error) {
	text := strings.ToLower(strings.TrimSpace(q.Text))
	// No stored field holds a NUL byte, and the index separates its terms with one.
	if text == "" || strings.IndexByte(text, 0) >= 0 {
		return nil, nil
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultSearchLimit
	}
	var mask uint16
	for _, k := range q.Kinds {
		if o, ok := kindOrder(k); ok {
			mask |= 1 << o
		}
	}
	if len(q.Kinds) == 0 {
		mask = allKinds
	}
	if q.Namespace != "" {
		mask &^= 1<<kindUser | 1<<kindGroup // users and groups are in no namespace
	}
	targets, err := s.searchTargets(ctx, mask, q.Namespace)
	if err != nil {
		return nil, err
	}
	sr := newSearcher(text, mask, limit, targets)
	for tier := RankExact; tier <= RankFuzzy; tier++ {
		if tier == RankFuzzy && sr.edits == 0 {
			break
		}
		for i, t := range targets {
			if i%64 == 0 {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			sr.scan(i, t, tier)
		}
		if sr.endTier() {
			break
		}
	}
	return sr.result(), nil
}

// Fields of a search hit, in the order hits of one rank are ranked; see SearchHit.Field.
type field uint8

const (
	fieldName field = iota
	fieldSubject
	fieldRoleRef
	fieldRule
	fieldServiceAccount
	fieldNode
	fieldGroup
	fieldLabel
	fieldNamespace
)

var fieldNames = [...]string{"name", "subject", "roleRef", "rule", "serviceAccount", "node", "group", "label", "namespace"}

// searchKinds orders kinds in hits of the same rank and field.
var searchKinds = [...]Kind{KindUser, KindGroup, KindServiceAccount, KindRole, KindClusterRole, KindRoleBinding,
	KindClusterRoleBinding, KindNamespace, KindPod, KindNode, KindSecret}

const (
	allKinds  = 1<<len(searchKinds) - 1
	kindUser  = 0 // kindOrder(KindUser)
	kindGroup = 1
)

func kindOrder(k Kind) (uint8, bool) {
	i := slices.Index(searchKinds[:], k)
	return uint8(i), i >= 0
}

// searchTarget is one index a search scans; only, when not negative, is the one object of it that may match.
type searchTarget struct {
	ix   *termIndex
	only int32
}

// searchTargets returns the indexes that can hold objects of the kinds in mask within namespace ns, building
// those not built yet.
func (s *Snapshot) searchTargets(ctx context.Context, mask uint16, ns string) ([]searchTarget, error) {
	type source struct {
		lazy *lazyIndex
		src  indexed
	}
	if all := s.search.all.Load(); all != nil && ns == "" {
		return *all, nil // scan skips the indexes that hold none of the kinds asked for
	}
	// After a full build every shard needs indexing: spread that over the CPUs. After Apply, a few do.
	var cold []source
	n := 0
	s.searchSources(mask, ns, func(l *lazyIndex, src indexed, _ int32) {
		n++
		if l.ix.Load() == nil {
			cold = append(cold, source{l, src})
		}
	})
	if workers := min(runtime.GOMAXPROCS(0), len(cold)/8); workers > 1 {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < len(cold) && ctx.Err() == nil; i = int(next.Add(1) - 1) {
					cold[i].lazy.get(cold[i].src)
				}
			})
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]searchTarget, 0, n)
	s.searchSources(mask, ns, func(l *lazyIndex, src indexed, only int32) {
		out = append(out, searchTarget{l.get(src), only})
	})
	if ns == "" && mask == allKinds {
		s.search.all.Store(&out)
	}
	return out, nil
}

// snapshotSearch holds what Search keeps per snapshot.
type snapshotSearch struct {
	// all lists every index, for the searches of every kind everywhere (most of them): the shards' indexes are
	// built once the list is, so it does not change.
	all atomic.Pointer[[]searchTarget]
}

// searchSources calls fn with the lazy index of every shard that can hold objects of the kinds in mask within
// namespace ns, and the one object of it that may match (-1: any). Users and Groups are in every shard but the
// ClusterRoles': the declared ones in the inventory, the others in the shards of the bindings that name them.
func (s *Snapshot) searchSources(mask uint16, ns string, fn func(l *lazyIndex, src indexed, only int32)) {
	has := func(ks ...Kind) bool {
		for _, k := range ks {
			if o, _ := kindOrder(k); mask&(1<<o) != 0 {
				return true
			}
		}
		return false
	}
	subjects := has(KindUser, KindGroup)
	namespaced := has(KindServiceAccount, KindRole, KindRoleBinding, KindPod, KindSecret)
	if ns != "" {
		// Namespaces are numbered first in the inventory's index after users and groups, by name, as in the shard.
		if i, ok := s.inv.nsByName[ns]; ok && has(KindNamespace) {
			fn(&s.inv.search, s.inv, s.inv.search.get(s.inv).firstOf(KindNamespace)+i)
		}
		if sh := s.nss[ns]; sh != nil && namespaced {
			fn(&sh.search, sh, -1)
		}
		return
	}
	// The inventory comes first: of all the matches of one user or group in one tier, its is the best (see
	// searcher.flush).
	if subjects || has(KindNamespace, KindNode) {
		fn(&s.inv.search, s.inv, -1)
	}
	if has(KindClusterRole) {
		fn(&s.cr.search, s.cr, -1)
	}
	if subjects || has(KindClusterRoleBinding) {
		fn(&s.crb.search, s.crb, -1)
	}
	if subjects || namespaced {
		for _, name := range s.nsNames {
			sh := s.nss[name]
			fn(&sh.search, sh, -1)
		}
	}
}

// candidate is a match on its way to becoming a hit.
type candidate struct {
	ix    *termIndex
	obj   int32
	term  int32 // -1 for a namespace match
	rank  MatchRank
	field field
}

func compareCandidates(a, b *candidate) int {
	if c := cmp.Compare(a.rank, b.rank); c != 0 {
		return c
	}
	if c := cmp.Compare(a.field, b.field); c != 0 {
		return c
	}
	if c := cmp.Compare(a.ix.kinds[a.obj], b.ix.kinds[b.obj]); c != 0 {
		return c
	}
	if a.ix == b.ix {
		return cmp.Compare(a.obj, b.obj)
	}
	ra, rb := &a.ix.refs[a.obj], &b.ix.refs[b.obj]
	return cmp.Or(strings.Compare(ra.Namespace, rb.Namespace), strings.Compare(ra.Name, rb.Name))
}

type objKey struct {
	ix  *termIndex
	obj int32
}

// searcher runs one search: tier by tier, shard by shard, keeping each object's best match within a shard and
// the best limit candidates overall.
type searcher struct {
	q          string
	qMask      uint64
	qLen       int    // in runes
	qRunes     []rune // the text's runes when it is not ASCII; nil when it is
	qBytes     []byte
	qKey       uint64
	qTrigrams  []uint32
	asciiRunes []rune // the runes of an ASCII text, for terms that are not ASCII
	scratch    []byte
	runes      []rune
	edits      int // the fuzzy tier's distance; 0 disables it
	mask       uint16
	limit      int

	cands []candidate
	tier  []candidate // this tier's candidates, not yet known to be among the best
	seen  map[objKey]struct{}
	// subjectsSeen holds the users and groups matched so far (see flush).
	subjectsSeen map[ObjectRef]struct{}
	// cut, once hasCut, is the worst of the best candidates of the tier: see flush.
	cut    candidate
	hasCut bool
	// lowerBounds[i] is where the text would sort among target i's terms, found by the exact tier for the prefix
	// tier.
	lowerBounds []int32

	// Per shard scratch, indexed by object: the best match so far as bestMatch packs it (0: none). It grows to
	// the largest index matched and is cleared by flush.
	best    []uint32
	touched []int32
}

func newSearcher(q string, mask uint16, limit int, targets []searchTarget) *searcher {
	sr := &searcher{q: q, qMask: byteMask(q), qLen: utf8.RuneCountInString(q), mask: mask, limit: limit,
		lowerBounds: make([]int32, len(targets))}
	sr.qBytes, sr.qKey, sr.qTrigrams = []byte(q), prefixKey(q), trigramHashes(q)
	if sr.qLen != len(q) {
		sr.qRunes = []rune(q)
	}
	switch {
	case sr.qLen >= 8:
		sr.edits = 2
	case sr.qLen >= 4:
		sr.edits = 1
	}
	return sr
}

// scan adds the matches of tier in target ti.
func (sr *searcher) scan(ti int, t searchTarget, tier MatchRank) {
	ix := t.ix
	if ix.kindMask&sr.mask == 0 {
		return
	}
	q := sr.q
	switch tier {
	case RankExact:
		lb := ix.lowerBound(q, sr.qKey)
		sr.lowerBounds[ti] = int32(lb)
		for i := lb; i < ix.terms() && ix.term(i) == q; i++ {
			sr.postings(t, i)
		}
	case RankPrefix:
		for i := int(sr.lowerBounds[ti]); i < ix.terms(); i++ {
			term := ix.term(i)
			if !strings.HasPrefix(term, q) {
				break
			}
			if len(term) > len(q) {
				sr.postings(t, i)
			}
		}
	case RankSubstring:
		if !ix.trigrams.holds(sr.qTrigrams, len(sr.qTrigrams)) {
			break // some trigram of the text is in no term
		}
		for pos := 0; ; {
			j := strings.Index(ix.buf[pos:], q)
			if j < 0 {
				break
			}
			i := ix.termAt(pos + j)
			if int(ix.starts[i]) != pos+j { // a match at the start of the term was a prefix match
				sr.postings(t, i)
			}
			pos = int(ix.starts[i+1])
		}
	case RankFuzzy:
		// An edit changes at most three of the text's trigrams, so a term within k edits keeps at least
		// len-2-3k of them (for an ASCII text, whose runes are single bytes).
		if need := len(q) - 2 - 3*sr.edits; sr.qRunes == nil && need > 0 && !ix.trigrams.holds(sr.qTrigrams, need) {
			break
		}
		sr.fuzzy(t)
	}
	if ix.ns != "" && t.only < 0 && sr.matchesAt(ix.nsLower, tier) {
		sr.namespace(ix)
	}
	sr.flush(ix, tier)
}

// matchesAt reports whether s matches the text at exactly rank tier.
func (sr *searcher) matchesAt(s string, tier MatchRank) bool {
	q := sr.q
	switch tier {
	case RankExact:
		return s == q
	case RankPrefix:
		return len(s) > len(q) && strings.HasPrefix(s, q)
	case RankSubstring:
		return strings.Contains(s, q) && !strings.HasPrefix(s, q)
	case RankFuzzy:
		return sr.withinEdits(s, byteMask(s)&(1<<nonASCII) == 0)
	}
	return false
}

// bestMatch packs a match for searcher.best: the field in the top bits, so that a better field is a smaller
// value, and 1 + the term (0 for the namespace) below.
func bestMatch(f field, term int32) uint32 { return uint32(f)<<28 | uint32(term+1) }

// postings records the objects term i of t matches.
func (sr *searcher) postings(t searchTarget, i int) {
	ix := t.ix
	if len(sr.best) < len(ix.refs) {
		sr.best = make([]uint32, len(ix.refs)) // flush left the old one all zero
	}
	for _, p := range ix.posts[ix.postStart[i]:ix.postStart[i+1]] {
		obj, f := int32(p>>4), field(p&15)
		if t.only >= 0 && obj != t.only || sr.mask&(1<<ix.kinds[obj]) == 0 || sr.hasCut && !sr.beatsCut(ix, obj, f) {
			continue
		}
		m := bestMatch(f, int32(i))
		switch b := sr.best[obj]; {
		case b == 0:
			if sr.seen != nil {
				if _, ok := sr.seen[objKey{ix, obj}]; ok {
					continue // matched at a better rank
				}
			}
			sr.touched = append(sr.touched, obj)
		case b>>28 <= m>>28:
			continue
		}
		sr.best[obj] = m
	}
}

// namespace records the objects of a namespace's index whose namespace matched: not the users and groups its
// bindings name, which are in no namespace. Only the first limit in the index's order can rank: they share rank
// and field, and objects that matched in another field keep that match.
func (sr *searcher) namespace(ix *termIndex) {
	if len(sr.best) < len(ix.refs) {
		sr.best = make([]uint32, len(ix.refs))
	}
	n := 0
	for obj := ix.firstOf(KindServiceAccount); obj < int32(len(ix.refs)); obj++ {
		if n == sr.limit || sr.hasCut && !sr.beatsCut(ix, obj, fieldNamespace) {
			break // later objects rank after this one
		}
		if sr.best[obj] != 0 || sr.mask&(1<<ix.kinds[obj]) == 0 {
			continue
		}
		if sr.seen != nil {
			if _, ok := sr.seen[objKey{ix, obj}]; ok {
				continue
			}
		}
		sr.best[obj] = bestMatch(fieldNamespace, -1)
		sr.touched = append(sr.touched, obj)
		n++
	}
}

// flush turns the shard's best matches into candidates and clears the scratch.
func (sr *searcher) flush(ix *termIndex, tier MatchRank) {
	for _, obj := range sr.touched {
		b := sr.best[obj]
		sr.best[obj] = 0
		if k := ix.kinds[obj]; k == kindUser || k == kindGroup {
			// A user or group is an object of every shard that names it. Its matches in one tier are all by
			// name, the same text, except in the inventory, which comes first and may match better: the first
			// one found is its best.
			if sr.subjectsSeen == nil {
				sr.subjectsSeen = make(map[ObjectRef]struct{})
			}
			ref := ix.refs[obj]
			if _, dup := sr.subjectsSeen[ref]; dup {
				continue
			}
			sr.subjectsSeen[ref] = struct{}{}
		}
		sr.tier = append(sr.tier, candidate{ix: ix, obj: obj, term: int32(b&(1<<28-1)) - 1, rank: tier, field: field(b >> 28)})
	}
	sr.touched = sr.touched[:0]
	// When a text matches much, keep the best of the tier's candidates that can be returned, and from then on
	// only matches that beat the worst of them.
	if need := sr.limit - len(sr.cands); len(sr.tier) >= 2*need+64 {
		sr.keepBest(&sr.tier, need)
		sr.cut, sr.hasCut = sr.tier[need-1], true
	}
}

// beatsCut reports whether a match of object obj of ix in field f would rank before the cut, in the tier the cut
// is of.
func (sr *searcher) beatsCut(ix *termIndex, obj int32, f field) bool {
	c := &sr.cut
	if f != c.field {
		return f < c.field
	}
	if k := ix.kinds[obj]; k != c.ix.kinds[c.obj] {
		return k < c.ix.kinds[c.obj]
	}
	a, b := &ix.refs[obj], &c.ix.refs[c.obj]
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name)) < 0
}

func (sr *searcher) keepBest(c *[]candidate, n int) {
	slices.SortFunc(*c, func(a, b candidate) int { return compareCandidates(&a, &b) })
	*c = (*c)[:min(n, len(*c))]
}

// endTier moves the tier's candidates to the result and reports whether the search is done: with limit
// candidates, a weaker rank cannot place any.
func (sr *searcher) endTier() bool {
	if len(sr.cands)+len(sr.tier) >= sr.limit {
		sr.keepBest(&sr.tier, sr.limit-len(sr.cands))
		sr.cands = append(sr.cands, sr.tier...)
		return true
	}
	// Fewer than limit so far, so none was dropped: every object matched is here and a weaker tier skips it.
	if sr.seen == nil {
		sr.seen = make(map[objKey]struct{}, sr.limit)
	}
	for _, c := range sr.tier {
		sr.seen[objKey{c.ix, c.obj}] = struct{}{}
	}
	slices.SortFunc(sr.tier, func(a, b candidate) int { return compareCandidates(&a, &b) })
	sr.cands = append(sr.cands, sr.tier...)
	sr.tier = sr.tier[:0]
	return false
}

func (sr *searcher) result() []SearchHit {
	out := make([]SearchHit, len(sr.cands))
	for i, c := range sr.cands {
		h := SearchHit{Ref: c.ix.refs[c.obj], Field: fieldNames[c.field], Rank: c.rank}
		if c.term < 0 {
			h.Value = c.ix.ns
		} else {
			h.Value = c.ix.value(int(c.term))
		}
		out[i] = h
	}
	return out
}

// fuzzy records the terms of t within sr.edits of the text. Only terms of a length that allows it are visited,
// and byte classes rule out most of those before any distance is computed.
func (sr *searcher) fuzzy(t searchTarget) {
	ix := t.ix
	// A rune takes at least one byte: a term of fewer bytes than lo has too few runes, and only terms with
	// multi-byte runes (wide) can have more bytes than hi and still few enough runes.
	lo, hi := max(0, sr.qLen-sr.edits), min(sr.qLen+sr.edits, len(ix.lenStart)-2)
	if lo <= hi {
		for j := ix.lenStart[lo]; j < ix.lenStart[hi+1]; j++ {
			sr.fuzzyTerm(t, j)
		}
	}
	for _, j := range ix.wide {
		if len(ix.term(int(ix.byLen[j]))) > hi {
			sr.fuzzyTerm(t, j)
		}
	}
}

// fuzzyTerm matches the term at position j of t's byLen.
func (sr *searcher) fuzzyTerm(t searchTarget, j int32) {
	m := t.ix.lenMasks[j]
	if bits.OnesCount64(m&^sr.qMask) > sr.edits || bits.OnesCount64(sr.qMask&^m) > sr.edits {
		return
	}
	i := int(t.ix.byLen[j])
	if sr.withinEdits(t.ix.term(i), m&(1<<nonASCII) == 0) {
		sr.postings(t, i)
	}
}

// withinEdits reports whether s, which is ASCII if ascii, is within sr.edits edits of the text, and not equal to
// it.
func (sr *searcher) withinEdits(s string, ascii bool) bool {
	if s == sr.q {
		return false
	}
	if ascii && sr.qRunes == nil {
		sr.scratch = append(sr.scratch[:0], s...)
		return levenshteinWithin(sr.qBytes, sr.scratch, sr.edits)
	}
	if n := utf8.RuneCountInString(s); n < sr.qLen-sr.edits || n > sr.qLen+sr.edits {
		return false
	}
	q := sr.qRunes
	if q == nil {
		q = sr.qRunesScratch()
	}
	sr.runes = sr.runes[:0]
	for _, r := range s {
		sr.runes = append(sr.runes, r)
	}
	return levenshteinWithin(q, sr.runes, sr.edits)
}

// qRunesScratch returns the runes of an ASCII text, made once.
func (sr *searcher) qRunesScratch() []rune {
	if sr.asciiRunes == nil {
		sr.asciiRunes = []rune(sr.q)
	}
	return sr.asciiRunes
}

// levenshteinWithin reports whether a and b are at most k insertions, deletions and substitutions apart,
// stopping as soon as a row of the distance table exceeds k.
func levenshteinWithin[E byte | rune](a, b []E, k int) bool {
	if d := len(a) - len(b); d > k || -d > k {
		return false
	}
	var buf [2 * 64]int
	var prev, cur []int
	if len(b) < 64 {
		prev, cur = buf[:len(b)+1], buf[64:64+len(b)+1]
	} else {
		prev, cur = make([]int, len(b)+1), make([]int, len(b)+1)
	}
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := i
		for j := 1; j <= len(b); j++ {
			d := prev[j-1]
			if a[i-1] != b[j-1] {
				d = 1 + min(d, prev[j], cur[j-1])
			}
			cur[j] = d
			rowMin = min(rowMin, d)
		}
		if rowMin > k {
			return false
		}
		prev, cur = cur, prev
	}
	return prev[len(b)] <= k
}

package graph

import (
	"cmp"
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	rbacv1 "k8s.io/api/rbac/v1"
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
// namespace an object is in is the weakest evidence), then by kind in the order of SearchQuery.Kinds, namespace
// and name. Each object is one hit, its best match.
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
// Each shard of the snapshot indexes its objects on first search and keeps the index, so that after Apply only
// the shards that changed, and the snapshot-wide index of users and groups, are indexed again. An empty text
// matches nothing. Returns ctx's error if it ends first.
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
		mask = 1<<len(searchKinds) - 1
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

func kindOrder(k Kind) (uint8, bool) {
	i := slices.Index(searchKinds[:], k)
	return uint8(i), i >= 0
}

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
	// masks[i] is the set of byteClass values of term i, to rule out most terms before an edit distance.
	masks []uint64
	// byLen lists the terms by byte length; lenStart[n] is where those of length n begin (len(lenStart) is one
	// more than the longest length). wide lists the terms with multi-byte runes, whose byte length exceeds their
	// length in runes.
	byLen    []int32
	lenStart []int32
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

// trigrams counts how many of q's trigrams (by position) the filter may hold.
func (f bloom) trigrams(q string) int {
	shift := 32 - uint(log2(len(f)*64))
	n := 0
	for i := 0; i+2 < len(q); i++ {
		h := trigramHash(q[i], q[i+1], q[i+2]) >> shift
		if f[h/64]&(1<<(h%64)) != 0 {
			n++
		}
	}
	return n
}

func log2(n int) int {
	l := 0
	for ; n > 1; n >>= 1 {
		l++
	}
	return l
}

func (ix *termIndex) terms() int { return len(ix.starts) - 1 }

func (ix *termIndex) term(i int) string { return ix.buf[ix.starts[i] : ix.starts[i+1]-1] }

// value is term i as stored.
func (ix *termIndex) value(i int) string {
	if o, ok := ix.orig[int32(i)]; ok {
		return o
	}
	return ix.term(i)
}

// lowerBound returns the first term not less than q.
func (ix *termIndex) lowerBound(q string) int {
	lo, hi := 0, ix.terms()
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
		only int32
	}
	has := func(ks ...Kind) bool {
		for _, k := range ks {
			if o, _ := kindOrder(k); mask&(1<<o) != 0 {
				return true
			}
		}
		return false
	}
	var srcs []source
	if ns == "" {
		if has(KindUser, KindGroup) {
			srcs = append(srcs, source{&s.subjectSearch, subjectIndexer{s}, -1})
		}
		if has(KindNamespace, KindNode) {
			srcs = append(srcs, source{&s.inv.search, s.inv, -1})
		}
		if has(KindClusterRole) {
			srcs = append(srcs, source{&s.cr.search, s.cr, -1})
		}
		if has(KindClusterRoleBinding) {
			srcs = append(srcs, source{&s.crb.search, s.crb, -1})
		}
		if has(KindServiceAccount, KindRole, KindRoleBinding, KindPod, KindSecret) {
			for _, name := range s.nsNames {
				sh := s.nss[name]
				srcs = append(srcs, source{&sh.search, sh, -1})
			}
		}
	} else {
		// Namespaces are numbered first in the inventory's index, by name, as in the shard.
		if i, ok := s.inv.nsByName[ns]; ok && has(KindNamespace) {
			srcs = append(srcs, source{&s.inv.search, s.inv, i})
		}
		if sh := s.nss[ns]; sh != nil && has(KindServiceAccount, KindRole, KindRoleBinding, KindPod, KindSecret) {
			srcs = append(srcs, source{&sh.search, sh, -1})
		}
	}

	// After a full build every shard needs indexing: spread that over the CPUs. After Apply, a few do.
	var cold []source
	for _, src := range srcs {
		if src.lazy.ix.Load() == nil {
			cold = append(cold, src)
		}
	}
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
	out := make([]searchTarget, len(srcs))
	for i, src := range srcs {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		out[i] = searchTarget{src.lazy.get(src.src), src.only}
	}
	return out, nil
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
	q       string
	qMask   uint64
	qLen    int    // in runes
	qRunes  []rune // the text's runes when it is not ASCII; nil when it is
	qBytes  []byte
	scratch []byte
	edits   int // the fuzzy tier's distance; 0 disables it
	mask    uint16
	limit   int

	cands []candidate
	tier  []candidate // this tier's candidates, not yet known to be among the best
	seen  map[objKey]struct{}
	// lowerBounds[i] is where the text would sort among target i's terms, found by the exact tier for the prefix
	// tier.
	lowerBounds []int32

	// Per shard scratch, indexed by object: best[obj] is 1 + the best field matched so far (0: none).
	best    []uint8
	bestAt  []int32
	touched []int32
}

func newSearcher(q string, mask uint16, limit int, targets []searchTarget) *searcher {
	n := 0
	for _, t := range targets {
		n = max(n, len(t.ix.refs))
	}
	sr := &searcher{q: q, qMask: byteMask(q), qLen: utf8.RuneCountInString(q), mask: mask, limit: limit,
		best: make([]uint8, n), bestAt: make([]int32, n), lowerBounds: make([]int32, len(targets))}
	sr.qBytes = []byte(q)
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
		lb := ix.lowerBound(q)
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
		if len(q) >= 3 && ix.trigrams.trigrams(q) < len(q)-2 {
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
		if need := len(q) - 2 - 3*sr.edits; sr.qRunes == nil && need > 0 && ix.trigrams.trigrams(q) < need {
			break
		}
		sr.fuzzy(t)
	}
	if ix.ns != "" && t.only < 0 && matches(ix.nsLower, q, tier, sr) {
		sr.namespace(ix)
	}
	sr.flush(ix, tier)
}

// matches reports whether s matches q at exactly rank tier.
func matches(s, q string, tier MatchRank, sr *searcher) bool {
	switch tier {
	case RankExact:
		return s == q
	case RankPrefix:
		return len(s) > len(q) && strings.HasPrefix(s, q)
	case RankSubstring:
		return strings.Contains(s, q) && !strings.HasPrefix(s, q)
	case RankFuzzy:
		return sr.withinEdits(s, isASCII(s))
	}
	return false
}

// postings records the objects term i of t matches.
func (sr *searcher) postings(t searchTarget, i int) {
	ix := t.ix
	for _, p := range ix.posts[ix.postStart[i]:ix.postStart[i+1]] {
		obj, f := int32(p>>4), uint8(p&15)+1
		if t.only >= 0 && obj != t.only || sr.mask&(1<<ix.kinds[obj]) == 0 {
			continue
		}
		switch b := sr.best[obj]; {
		case b == 0:
			if sr.seen != nil {
				if _, ok := sr.seen[objKey{ix, obj}]; ok {
					continue // matched at a better rank
				}
			}
			sr.touched = append(sr.touched, obj)
		case b <= f:
			continue
		}
		sr.best[obj], sr.bestAt[obj] = f, int32(i)
	}
}

// namespace records the objects of a namespace's index whose namespace matched. Only the first limit in the
// index's order can rank: they share rank and field, and objects that matched in another field keep that match.
func (sr *searcher) namespace(ix *termIndex) {
	n := 0
	for obj := range int32(len(ix.refs)) {
		if n == sr.limit {
			break
		}
		if sr.best[obj] != 0 || sr.mask&(1<<ix.kinds[obj]) == 0 {
			continue
		}
		if sr.seen != nil {
			if _, ok := sr.seen[objKey{ix, obj}]; ok {
				continue
			}
		}
		sr.best[obj], sr.bestAt[obj] = uint8(fieldNamespace)+1, -1
		sr.touched = append(sr.touched, obj)
		n++
	}
}

// flush turns the shard's best matches into candidates and clears the scratch.
func (sr *searcher) flush(ix *termIndex, tier MatchRank) {
	for _, obj := range sr.touched {
		sr.tier = append(sr.tier, candidate{ix: ix, obj: obj, term: sr.bestAt[obj], rank: tier, field: field(sr.best[obj] - 1)})
		sr.best[obj] = 0
	}
	sr.touched = sr.touched[:0]
	// Keep the candidates bounded when a short text matches much: only the best limit of them can be returned.
	if len(sr.tier) >= max(4*sr.limit, 1024) {
		sr.keepBest(&sr.tier, sr.limit)
	}
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

// fuzzy records the terms of t within sr.edits of the text. Only terms of a length that allows it are visited;
// between ASCII strings, byte classes rule out most of those before any distance is computed.
func (sr *searcher) fuzzy(t searchTarget) {
	ix := t.ix
	k := sr.edits
	// A rune takes one to four bytes: the byte length of a match is at least its rune length.
	lo, hi := max(0, sr.qLen-k), sr.qLen+k
	if sr.qRunes != nil {
		hi = 4 * hi
	}
	hi = min(hi, len(ix.lenStart)-2)
	if lo > hi {
		return
	}
	for _, i := range ix.byLen[ix.lenStart[lo]:ix.lenStart[hi+1]] {
		sr.fuzzyTerm(t, int(i))
	}
	if sr.qRunes == nil {
		for _, i := range ix.wide {
			if len(ix.term(int(i))) > hi {
				sr.fuzzyTerm(t, int(i))
			}
		}
	}
}

func (sr *searcher) fuzzyTerm(t searchTarget, i int) {
	m := t.ix.masks[i]
	ascii := m&(1<<nonASCII) == 0
	if ascii && sr.qRunes == nil && (popcount(m&^sr.qMask) > sr.edits || popcount(sr.qMask&^m) > sr.edits) {
		return
	}
	if sr.withinEdits(t.ix.term(i), ascii) {
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
	q := sr.qRunes
	if q == nil {
		q = []rune(sr.q)
	}
	return levenshteinWithin(q, []rune(s), sr.edits)
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

func popcount(m uint64) int {
	n := 0
	for ; m != 0; m &= m - 1 {
		n++
	}
	return n
}

// byteMask returns the set of byte classes of s: one bit per letter and digit, one for the bytes of multi-byte
// runes, the other bytes folded onto the remaining bits. Between ASCII strings an edit adds at most one class and
// removes at most one, so two of them k edits apart differ by at most k classes each way.
func byteMask(s string) uint64 {
	var m uint64
	for i := 0; i < len(s); i++ {
		m |= 1 << byteClass[s[i]]
	}
	return m
}

var byteClass = func() (t [256]uint8) {
	for i := range t {
		switch c := byte(i); {
		case c >= 'a' && c <= 'z':
			t[i] = c - 'a'
		case c >= '0' && c <= '9':
			t[i] = 26 + c - '0'
		case c >= utf8.RuneSelf:
			t[i] = nonASCII
		default:
			t[i] = 36 + c%27
		}
	}
	return t
}()

// nonASCII is the byte class of every byte of a multi-byte rune.
const nonASCII = 63

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

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
	ix.masks = make([]uint64, n)
	for r, id := range order {
		rank[id] = int32(r)
		ix.starts[r] = int32(sb.Len())
		sb.WriteString(lower[id])
		sb.WriteByte(0)
		ix.masks[r] = byteMask(lower[id])
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
	ix.byLen, ix.lenStart, ix.wide = lengthOrder(ix)

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

// lengthOrder orders the terms of ix by byte length (a counting sort) and lists those with multi-byte runes.
func lengthOrder(ix *termIndex) (byLen, lenStart, wide []int32) {
	longest := 0
	for i := range ix.terms() {
		longest = max(longest, len(ix.term(i)))
		if ix.masks[i]&(1<<nonASCII) != 0 {
			wide = append(wide, int32(i))
		}
	}
	lenStart = make([]int32, longest+2)
	for i := range ix.terms() {
		lenStart[len(ix.term(i))+1]++
	}
	for n := range longest + 1 {
		lenStart[n+1] += lenStart[n]
	}
	fill := slices.Clone(lenStart)
	byLen = make([]int32, ix.terms())
	for i := range ix.terms() {
		n := len(ix.term(i))
		byLen[fill[n]] = int32(i)
		fill[n]++
	}
	return byLen, lenStart, wide
}

func (sh *nsShard) buildSearch() *termIndex {
	b := newIndexBuilder(sh.ns, len(sh.serviceAccounts)+len(sh.roles)+len(sh.bindings)+len(sh.pods)+len(sh.secrets))
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
	b := newIndexBuilder("", len(sh.bindings))
	for i := range sh.bindings {
		b.binding(&sh.bindings[i], "")
	}
	return b.build()
}

// buildSearch indexes Namespaces and Nodes; declared Users are indexed with every other user (subjectIndexer).
func (sh *inventoryShard) buildSearch() *termIndex {
	b := newIndexBuilder("", len(sh.namespaces)+len(sh.nodes))
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

// subjectIndexer indexes the users and groups of Subjects. They depend on every binding, so the index is the
// snapshot's own, rebuilt per snapshot; it holds a few thousand names even on large clusters.
type subjectIndexer struct{ s *Snapshot }

func (x subjectIndexer) buildSearch() *termIndex {
	s := x.s
	users, groups := s.Subjects(KindUser), s.Subjects(KindGroup)
	b := newIndexBuilder("", len(users)+len(groups))
	for _, name := range users {
		obj := b.object(ObjectRef{Kind: KindUser, Name: name})
		if i, ok := s.inv.userByName[name]; ok {
			u := &s.inv.users[i]
			b.labels(obj, u.Labels)
			for _, g := range u.Groups {
				b.add(obj, fieldGroup, g)
			}
		}
	}
	for _, name := range groups {
		b.object(ObjectRef{Kind: KindGroup, Name: name})
	}
	return b.build()
}

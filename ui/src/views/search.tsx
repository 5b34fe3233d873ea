// The full search results (/search?q=&kinds=), with kind filter chips and paging.
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { href, Link, navigate, useAt, useLocation } from '../router';
import { usePaged } from '../data';
import { KINDS, kindColor, kindLabel } from '../kinds';
import { MatchNote, SEARCH_QUERY, type SearchHit } from '../components/search';
import { AtNote, Empty, ErrorBox, LoadMore, Loading, NodeLink } from '../components/ui';
import { splitList } from '../format';

type SearchData = { search: { revision: number; edges: SearchHit[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } };

export function SearchPage(): JSX.Element {
  const loc = useLocation();
  const at = useAt();
  const q = loc.params.get('q') ?? '';
  const kinds = splitList(loc.params.get('kinds')).filter((k) => (KINDS as readonly string[]).includes(k));
  const [text, setText] = useState(q);
  useEffect(() => setText(q), [q]);
  const go = (patch: { q?: string; kinds?: string[] }) => {
    const nk = patch.kinds ?? kinds;
    navigate(href('/search', { q: patch.q ?? q, kinds: nk.length ? nk.join(',') : null }), { replace: patch.kinds !== undefined });
  };
  const toggle = (k: string) => go({ kinds: kinds.includes(k) ? kinds.filter((x) => x !== k) : [...kinds, k] });
  return (
    <div class="page" data-testid="search-page">
      <h1>Search</h1>
      <form
        class="search-form"
        onSubmit={(e) => {
          e.preventDefault();
          go({ q: text.trim() });
        }}
      >
        <input type="search" value={text} placeholder="name, namespace, label, subject, rule…" aria-label="Search query" data-testid="search-page-input" spellcheck={false} onInput={(e) => setText((e.target as HTMLInputElement).value)} />
        <button type="submit" class="primary">Search</button>
      </form>
      <div class="chips kind-chips" role="group" aria-label="Kinds" data-testid="kind-chips">
        {KINDS.map((k) => (
          <button
            type="button"
            class={`chip toggle ${kinds.includes(k) ? 'on' : ''}`}
            aria-pressed={kinds.includes(k)}
            data-testid={`kind-chip-${k}`}
            onClick={() => toggle(k)}
          >
            <span class="dot" style={{ backgroundColor: kindColor(k) }} />
            {kindLabel(k)}
          </button>
        ))}
        {kinds.length ? (
          <button type="button" class="link-button small" onClick={() => go({ kinds: [] })}>
            all kinds
          </button>
        ) : null}
      </div>
      {q.trim() ? <Results q={q.trim()} kinds={kinds} at={at} /> : <p class="muted">Type a query: names, namespaces, labels, binding subjects and role rules are searched.</p>}
    </div>
  );
}

function Results({ q, kinds, at }: { q: string; kinds: string[]; at: number | null }): JSX.Element {
  const p = usePaged<SearchData, SearchHit>(SEARCH_QUERY, { q, kinds: kinds.length ? kinds : null, at, first: 50 }, (d) => ({ nodes: d.search.edges, pageInfo: d.search.pageInfo, revision: d.search.revision }));
  if (p.error && !p.data) return <ErrorBox error={p.error} retry={p.reload} />;
  if (!p.data) return <Loading label="Searching…" />;
  if (!p.items.length) return <Empty>No match for “{q}”{kinds.length ? ` among ${kinds.map(kindLabel).join(', ')}` : ''} at revision {p.revision}.</Empty>;
  return (
    <section class="block">
      <header class="block-head">
        <h2>Results</h2>
        <AtNote revision={p.revision} />
      </header>
      <table class="table" data-testid="search-page-results">
        <thead>
          <tr>
            <th>Object</th>
            <th>Matched</th>
            <th>Rank</th>
          </tr>
        </thead>
        <tbody>
          {p.items.map((h) => (
            <tr data-testid="search-page-result">
              <td><NodeLink node={h.node} /></td>
              <td><MatchNote hit={h} /> {h.field === 'name' && h.value === h.node.name ? <span class="muted">name</span> : null}</td>
              <td class="muted small">{h.rank.toLowerCase()}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <LoadMore shown={p.items.length} total={null} hasMore={p.hasMore} loading={p.loadingMore} onMore={p.loadMore} noun="results" />
      <p class="small muted">
        Looking for what someone can do? Open a User, Group or ServiceAccount, or ask <Link href={href('/who-can')}>who can</Link>.
      </p>
    </section>
  );
}

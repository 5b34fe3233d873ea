// The global search box: instant (debounced, stale answers cancelled), keyboard-driven (/ focuses it, ↑/↓ move,
// Enter opens, Esc closes), across every kind, at the time-travel revision.
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { gql } from '../api';
import { errorText } from '../format';
import { entityHref, href, navigate, useAt } from '../router';
import { KindBadge, Name, QName } from './ui';

export interface SearchHit {
  field: string;
  value: string;
  rank: string;
  node: { id: string; kind: string; name: string; namespace: string };
}

export const SEARCH_QUERY = `query Search($q: String!, $kinds: [Kind!], $at: Revision, $first: Int, $after: String) {
  search(query: $q, kinds: $kinds, at: $at, first: $first, after: $after) {
    revision
    pageInfo { hasNextPage endCursor }
    edges { field value rank node { id kind name namespace } }
  }
}`;

type SearchData = { search: { revision: number; edges: SearchHit[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } };

/** MatchNote says what matched when it was not the name itself. */
export function MatchNote({ hit }: { hit: SearchHit }): JSX.Element | null {
  if (hit.field === 'name' && hit.value === hit.node.name) return null;
  return (
    <span class="match-note" title={`${hit.field}: ${hit.value}`}>
      <span class="muted">{hit.field}</span> <Name text={hit.value} />
    </span>
  );
}

export function SearchBox(): JSX.Element {
  const at = useAt();
  const input = useRef<HTMLInputElement>(null);
  const [q, setQ] = useState('');
  const [open, setOpen] = useState(false);
  const [hits, setHits] = useState<SearchHit[]>([]);
  const [more, setMore] = useState(false);
  const [sel, setSel] = useState(-1);
  const [state, setState] = useState<'idle' | 'loading' | 'done' | 'error'>('idle');
  const [err, setErr] = useState('');

  // "/" focuses the box from anywhere but a field being typed in.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
      const t = e.target as HTMLElement | null;
      if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
      e.preventDefault();
      input.current?.focus();
      input.current?.select();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);

  // Debounced by 120 ms; a newer query aborts the request of the older one.
  useEffect(() => {
    const text = q.trim();
    if (!text) {
      setHits([]);
      setState('idle');
      return;
    }
    const ac = new AbortController();
    const t = setTimeout(() => {
      setState('loading');
      gql<SearchData>(SEARCH_QUERY, { q: text, at, first: 8 }, ac.signal).then(
        (d) => {
          if (ac.signal.aborted) return;
          setHits(d.search.edges);
          setMore(d.search.pageInfo.hasNextPage);
          setSel(-1);
          setState('done');
        },
        (e) => {
          if (ac.signal.aborted) return;
          setErr(errorText(e));
          setState('error');
        },
      );
    }, 120);
    return () => {
      clearTimeout(t);
      ac.abort();
    };
  }, [q, at]);

  // Blur closes the list a moment later (so a click on a result lands first); focus or typing cancels that.
  const blurTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const keep = () => {
    if (blurTimer.current) clearTimeout(blurTimer.current);
    blurTimer.current = null;
  };
  useEffect(() => keep, []);
  const close = () => {
    keep();
    setOpen(false);
    setSel(-1);
  };
  const go = (to: string) => {
    close();
    input.current?.blur();
    navigate(to);
  };
  const all = () => href('/search', { q: q.trim() });

  const onKeyDown = (e: KeyboardEvent) => {
    const n = hits.length + 1; // the last row is "all results"
    if (e.key === 'ArrowDown') {
      e.preventDefault();
      setOpen(true);
      setSel((s) => (s + 1) % n);
    } else if (e.key === 'ArrowUp') {
      e.preventDefault();
      setOpen(true);
      setSel((s) => (s <= 0 ? n - 1 : s - 1));
    } else if (e.key === 'Enter') {
      e.preventDefault();
      if (!q.trim()) return;
      if (sel >= 0 && sel < hits.length) go(entityHref(hits[sel].node.id));
      else go(all());
    } else if (e.key === 'Escape') {
      e.preventDefault();
      if (open) close();
      else input.current?.blur();
    }
  };

  const showList = open && q.trim() !== '';
  return (
    <div class="search" role="search">
      <input
        ref={input}
        type="search"
        class="search-input"
        placeholder="Search users, roles, bindings…  ( / )"
        aria-label="Search"
        aria-autocomplete="list"
        aria-expanded={showList}
        aria-controls="search-results"
        aria-activedescendant={showList && sel >= 0 ? `search-opt-${sel}` : undefined}
        role="combobox"
        value={q}
        spellcheck={false}
        autocomplete="off"
        data-testid="search-input"
        onInput={(e) => {
          keep();
          setQ((e.target as HTMLInputElement).value);
          setOpen(true);
        }}
        onFocus={() => {
          keep();
          setOpen(true);
        }}
        onBlur={() => {
          keep();
          blurTimer.current = setTimeout(close, 150);
        }}
        onKeyDown={onKeyDown}
      />
      {showList ? (
        <div class="search-popup" data-testid="search-results">
          <ul id="search-results" role="listbox" aria-label="Search results">
            {hits.map((h, i) => (
              <li
                id={`search-opt-${i}`}
                role="option"
                aria-selected={i === sel}
                class={i === sel ? 'selected' : ''}
                data-testid="search-result"
                onMouseDown={(e) => {
                  e.preventDefault();
                  go(entityHref(h.node.id));
                }}
                onMouseEnter={() => setSel(i)}
              >
                <KindBadge kind={h.node.kind} />
                <QName namespace={h.node.namespace} name={h.node.name} />
                <MatchNote hit={h} />
              </li>
            ))}
            <li
              id={`search-opt-${hits.length}`}
              role="option"
              aria-selected={sel === hits.length}
              class={`all ${sel === hits.length ? 'selected' : ''}`}
              data-testid="search-all"
              onMouseDown={(e) => {
                e.preventDefault();
                go(all());
              }}
              onMouseEnter={() => setSel(hits.length)}
            >
              {state === 'loading' && !hits.length
                ? 'Searching…'
                : state === 'error'
                  ? `Search failed: ${err}`
                  : state === 'done' && !hits.length
                    ? `No match${at !== null ? ` at revision ${at}` : ''} — search all kinds…`
                    : more
                      ? 'All results…'
                      : 'Open results page…'}
            </li>
          </ul>
        </div>
      ) : null}
    </div>
  );
}

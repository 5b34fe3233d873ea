// History: the retained revisions (/history), two of them picked to compare (→ /diff), and one revision's changes
// (/history/:rev).
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { href, Link, useLocation } from '../router';
import { usePaged, useLiveQuery } from '../data';
import { useSession } from '../session';
import { ACTOR_FIELDS, REVISION_FIELDS, type RevisionInfo } from '../fragments';
import { kindLabel } from '../kinds';
import { Empty, ErrorBox, KindBadge, LoadMore, Loading, Name, RevLink, Section, Time } from '../components/ui';
import { ChangeRow, type ChangeT } from './diff';

/** ChangeSummary: per kind, how many objects were added, updated and deleted. */
export function ChangeSummary({ rev }: { rev: RevisionInfo }): JSX.Element {
  return (
    <span class="change-summary">
      {rev.summary.map((k) => (
        <span class="kind-delta" title={`${kindLabel(k.kind)}: ${k.added} added, ${k.updated} updated, ${k.deleted} deleted`}>
          <KindBadge kind={k.kind} short />
          {k.added ? <span class="gained">+{k.added}</span> : null}
          {k.updated ? <span class="updated">~{k.updated}</span> : null}
          {k.deleted ? <span class="lost">−{k.deleted}</span> : null}
        </span>
      ))}
      {!rev.summary.length ? <span class="muted">{rev.changes} changes</span> : null}
    </span>
  );
}

const REVISIONS = `query History($after: String) { revisions(first: 50, after: $after) { revision pageInfo { hasNextPage endCursor } nodes { ${REVISION_FIELDS} } } }`;

type RevsData = { revisions: { revision: number; pageInfo: { hasNextPage: boolean; endCursor: string | null }; nodes: RevisionInfo[] } };

export function History(): JSX.Element {
  const s = useSession();
  const p = usePaged<RevsData, RevisionInfo>(REVISIONS, {}, (d) => d.revisions, { pageRevision: () => null });
  const [picked, setPicked] = useState<number[]>([]);
  const toggle = (rev: number) => setPicked((xs) => (xs.includes(rev) ? xs.filter((x) => x !== rev) : [...xs.slice(-1), rev]));
  const [a, b] = [...picked].sort((x, y) => x - y);
  return (
    <div class="page" data-testid="history">
      <header class="page-head">
        <h1>History</h1>
        <span class="muted">revisions {s.server.horizon}…{s.head} retained</span>
      </header>
      <div class="compare-bar card" data-testid="compare-bar">
        {picked.length < 2 ? (
          <span class="muted">Tick two revisions to compare them{picked.length === 1 ? ` (rev ${picked[0]} picked)` : ''}, or open one to see its changes.</span>
        ) : (
          <>
            <span>
              Compare rev {a} → rev {b}
            </span>
            <Link href={href('/diff', { from: a, to: b })} class="button primary" data-testid="compare">
              Show the difference
            </Link>
            <button type="button" class="link-button" onClick={() => setPicked([])}>
              clear
            </button>
          </>
        )}
      </div>
      {p.error && !p.data ? <ErrorBox error={p.error} retry={p.reload} /> : !p.data ? <Loading /> : !p.items.length ? <Empty>No revision is retained.</Empty> : (
        <table class="table" data-testid="revisions">
          <thead>
            <tr>
              <th>Compare</th>
              <th>Revision</th>
              <th>Time</th>
              <th>Source</th>
              <th>Changes</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {p.items.map((r, i) => (
              <tr data-testid="revision-row" data-revision={r.revision} class={picked.includes(r.revision) ? 'picked' : ''}>
                <td>
                  <input type="checkbox" checked={picked.includes(r.revision)} onChange={() => toggle(r.revision)} aria-label={`Compare revision ${r.revision}`} data-testid="pick-revision" />
                </td>
                <td>
                  <RevLink rev={r.revision} />
                  {r.revision === s.head ? <span class="chip small">head</span> : null}
                </td>
                <td>
                  <Time time={r.time} abs /> <span class="muted small">(<Time time={r.time} />)</span>
                </td>
                <td><Name text={r.source} /></td>
                <td><ChangeSummary rev={r} /></td>
                <td class="row-actions small">
                  {p.items[i + 1] ? (
                    <>
                      <Link href={href('/diff', { from: p.items[i + 1].revision, to: r.revision })}>diff with previous</Link>
                      {' · '}
                    </>
                  ) : null}
                  <Link href={atHrefFor(r.revision)} data-testid="view-at">view at</Link>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <LoadMore shown={p.items.length} total={null} hasMore={p.hasMore} loading={p.loadingMore} onMore={p.loadMore} noun="revisions" />
    </div>
  );
}

/** atHrefFor: the home page at a revision. */
function atHrefFor(rev: number): string {
  return href('/', { at: rev });
}

const REVISION = `query RevisionPage($rev: Revision!, $from: Revision!, $after: String) {
  revision(revision: $rev) { ${REVISION_FIELDS} }
  changes(from: $from, to: $rev, first: 100, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { seq op kind namespace name id actor { ${ACTOR_FIELDS} } before after revision { revision } }
  }
}`;

type RevisionData = { revision: RevisionInfo | null; changes: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; nodes: ChangeT[] } };

export function RevisionView({ params }: { params: Record<string, string> }): JSX.Element {
  useLocation();
  const rev = /^\d+$/.test(params.rev) ? Number(params.rev) : NaN;
  const p = usePaged<RevisionData, ChangeT>(REVISION, { rev, from: Math.max(0, rev - 1) }, (d) => d.changes, { skip: Number.isNaN(rev), pageRevision: () => null });
  const q = useLiveQuery<{ revisions: { nodes: { revision: number }[] } }>('query Prev { revisions(first: 200) { nodes { revision } } }', {});
  if (Number.isNaN(rev)) return <div class="page"><Empty>Not a revision: {params.rev}</Empty></div>;
  const revs = q.data?.revisions.nodes.map((r) => r.revision) ?? [];
  const prev = revs.find((r) => r < rev);
  const next = [...revs].reverse().find((r) => r > rev);
  const info = p.data?.revision;
  return (
    <div class="page" data-testid="revision">
      <header class="page-head">
        <h1>Revision {rev}</h1>
        {info ? (
          <span class="muted">
            <Time time={info.time} abs /> · <Time time={info.time} /> · <Name text={info.source} />
          </span>
        ) : null}
        <span class="page-actions small">
          {prev !== undefined ? <Link href={href(`/history/${prev}`)}>← rev {prev}</Link> : null}
          {next !== undefined ? <Link href={href(`/history/${next}`)}>rev {next} →</Link> : null}
          <Link href={href('/diff', { from: prev ?? Math.max(0, rev - 1), to: rev })}>permission changes</Link>
          <Link href={href('/', { at: rev })}>view the cluster at rev {rev}</Link>
        </span>
      </header>
      {p.error && !p.data ? <ErrorBox error={p.error} retry={p.reload} /> : !p.data ? <Loading /> : !info ? (
        <Empty>Revision {rev} is not retained (or never existed).</Empty>
      ) : (
        <Section title={<>Changes<span class="count-pill">{info.changes}</span></>} testid="changes">
          <ChangeSummary rev={info} />
          {!p.items.length ? <Empty>No change recorded.</Empty> : (
            <ul class="changes">
              {p.items.map((c) => (
                <ChangeRow c={c} at={rev} />
              ))}
            </ul>
          )}
          <LoadMore shown={p.items.length} total={info.changes} hasMore={p.hasMore} loading={p.loadingMore} onMore={p.loadMore} noun="changes" />
        </Section>
      )}
    </div>
  );
}

// Time travel: the header's revision picker (?at=REV on every URL) and the banner shown while looking at the past.
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { gql } from '../api';
import { navigate, useAt, useLocation, Link } from '../router';
import { useSession } from '../session';
import { when } from '../format';
import { REVISION_FIELDS, type RevisionInfo } from '../fragments';
import { Name, Time } from './ui';

const REVS = `query Revs($first: Int) { revisions(first: $first) { revision nodes { ${REVISION_FIELDS} } pageInfo { hasNextPage } } }`;

type RevsData = { revisions: { revision: number; nodes: RevisionInfo[]; pageInfo: { hasNextPage: boolean } } };

/** atHref is the current page at revision rev (null: live). */
export function atHref(rev: number | null): string {
  const p = new URLSearchParams(window.location.search);
  if (rev === null) p.delete('at');
  else p.set('at', String(rev));
  const s = p.toString();
  return window.location.pathname + (s ? `?${s}` : '');
}

// One list of revisions for the picker and the banner, fetched once per head revision.
let cache: { head: number; promise: Promise<RevsData>; data: RevsData | null } | null = null;

function revisionsAt(head: number): { promise: Promise<RevsData>; data: RevsData | null } {
  if (cache?.head !== head) {
    const entry: { head: number; promise: Promise<RevsData>; data: RevsData | null } = { head, promise: gql<RevsData>(REVS, { first: 200 }), data: null };
    entry.promise.then((d) => (entry.data = d), () => {
      if (cache === entry) cache = null;
    });
    cache = entry;
  }
  return cache;
}

/** useRevisions lists the retained revisions, newest first, again whenever the head moves. */
export function useRevisions(): { revs: RevisionInfo[]; more: boolean; loading: boolean } {
  const head = useSession().head;
  const entry = revisionsAt(head);
  const [data, setData] = useState<RevsData | null>(entry.data);
  useEffect(() => {
    let live = true;
    const e = revisionsAt(head);
    if (e.data) setData(e.data);
    e.promise.then((d) => live && setData(d), () => undefined);
    return () => {
      live = false;
    };
  }, [head]);
  const d = entry.data ?? data;
  return { revs: d?.revisions.nodes ?? [], more: !!d?.revisions.pageInfo.hasNextPage, loading: !d };
}

export function TimeTravel(): JSX.Element {
  useLocation();
  const at = useAt();
  const s = useSession();
  const { revs, more } = useRevisions();
  const known = at === null || revs.some((r) => r.revision === at);
  return (
    <label class={`timetravel ${at !== null ? 'past' : ''}`} title="Look at the cluster as it was at a past revision">
      <span class="sr-only">Revision</span>
      <svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true">
        <path d="M8 1.5a6.5 6.5 0 1 1-6.5 6.5h1.5A5 5 0 1 0 8 3v2L4.5 2.5 8 0z M7.25 4.5h1.5v3.2l2.4 1.4-.75 1.3-3.15-1.85z" fill="currentColor" />
      </svg>
      <select
        data-testid="timetravel"
        value={at === null ? '' : String(at)}
        onChange={(e) => {
          const v = (e.target as HTMLSelectElement).value;
          navigate(atHref(v === '' ? null : Number(v)));
        }}
      >
        <option value="">{`Live · rev ${s.head}`}</option>
        {!known ? <option value={String(at)}>{`rev ${at}`}</option> : null}
        {revs
          .filter((r) => r.revision !== s.head || at === r.revision)
          .map((r) => (
            <option value={String(r.revision)}>{`rev ${r.revision} · ${when(r.time)} · ${r.source}`}</option>
          ))}
        {more ? <option disabled>Older revisions: see History</option> : null}
      </select>
    </label>
  );
}

/** TimeTravelBanner: shown while ?at= is set, with the way back to live and how far the head has moved. */
export function TimeTravelBanner(): JSX.Element | null {
  useLocation();
  const at = useAt();
  const s = useSession();
  const { revs, loading } = useRevisions();
  if (at === null) return null;
  const info = revs.find((r) => r.revision === at);
  const newer = revs.filter((r) => r.revision > at).length;
  const retained = at >= s.server.horizon && at <= s.head;
  return (
    <div class="banner past" role="status" data-testid="time-travel-banner">
      <span>
        Viewing <strong>revision {at}</strong>
        {info ? (
          <>
            {' '}
            (<Time time={info.time} abs /> · <Time time={info.time} /> · <Name text={info.source} />)
          </>
        ) : !loading && !retained ? (
          <> — not a retained revision (the history holds {s.server.horizon}…{s.head})</>
        ) : null}
        {newer > 0 ? <span class="muted"> · {newer === 1 ? '1 newer revision' : `${newer} newer revisions`} since</span> : null}
      </span>
      <Link href={atHref(null)} class="banner-action" data-testid="back-to-live">
        Back to live (rev {s.head})
      </Link>
    </div>
  );
}

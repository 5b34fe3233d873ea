// The difference between two revisions (/diff?from=&to=): permission deltas per subject (gained/lost, with paths),
// object changes (before/after), and the findings new and resolved.
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { href, Link, navigate, useLocation } from '../router';
import { usePaged, useLiveQuery } from '../data';
import { useSession } from '../session';
import { ACTOR_FIELDS, GRANT, type ActorT, type NodeRef, type Permission } from '../fragments';
import { useRevisions } from '../components/timetravel';
import { GrantPathView } from '../components/grant';
import { JsonDiff } from '../components/jsondiff';
import { Actors } from '../components/actor';
import { Empty, ErrorBox, KindBadge, LoadMore, Loading, NodeLink, QName, RevLink, Section } from '../components/ui';
import { when } from '../format';
import { FINDING_ROW, FindingsTable, type FindingRow } from './risks';

export interface ChangeT {
  seq?: number;
  op: string;
  kind: string;
  namespace: string;
  name: string;
  id: string;
  /** Change.actor (a revision's changes): who made it, when audit events told. */
  actor?: ActorT | null;
  /** ObjectChange.actors (a diff): who made the changes to the object between the two revisions, oldest first. */
  actors?: ActorT[];
  before: unknown;
  after: unknown;
  node?: { id: string } | null;
  revision?: { revision: number };
}

const OP_LABEL: Record<string, string> = { ADD: 'added', UPDATE: 'updated', DELETE: 'deleted' };

/** ChangeRow: one object change, its link, and its before/after on demand. */
export function ChangeRow({ c, at }: { c: ChangeT; at: number }): JSX.Element {
  const [open, setOpen] = useState(false);
  // A deleted object is shown where it last existed: at the revision before.
  const target = c.op === 'DELETE' ? href(`/e/${encodeURIComponent(c.id)}`, { at: Math.max(0, at - 1) }) : href(`/e/${encodeURIComponent(c.id)}`, { at });
  return (
    <li class={`change op-${c.op.toLowerCase()}`} data-testid="object-change" data-op={c.op} data-name={c.name}>
      <div class="change-line">
        <span class={`op op-${c.op.toLowerCase()}`}>{OP_LABEL[c.op] ?? c.op}</span>
        <Link href={target} class="node-link" data-testid="node-link" data-kind={c.kind}>
          <KindBadge kind={c.kind} />
          <QName namespace={c.namespace} name={c.name} />
        </Link>
        <Actors actors={c.actors ?? (c.actor ? [c.actor] : [])} />
        <button type="button" class="link-button small" aria-expanded={open} onClick={() => setOpen(!open)} data-testid="toggle-change">
          {open ? 'hide' : c.op === 'UPDATE' ? 'what changed' : 'object'}
        </button>
      </div>
      {open ? <JsonDiff before={c.before} after={c.after} /> : null}
    </li>
  );
}

const OBJECTS = `query DiffObjects($from: Revision!, $to: Revision, $after: String) {
  diff(from: $from, to: $to) {
    from to
    objects(first: 100, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { op kind namespace name id before after node { id } actors { ${ACTOR_FIELDS} } } }
  }
}`;

const SUBJECTS = `query DiffSubjects($from: Revision!, $to: Revision, $after: String) {
  diff(from: $from, to: $to) {
    from to
    subjects(first: 50, after: $after) {
      totalCount pageInfo { hasNextPage endCursor }
      nodes { subject { id kind name namespace } gained { namespace grant { ...Grant } } lost { namespace grant { ...Grant } } }
    }
  }
}
${GRANT}`;

const FINDINGS = `query DiffFindings($from: Revision!, $to: Revision) {
  diff(from: $from, to: $to) { findings { new { ${FINDING_ROW} } resolved { ${FINDING_ROW} } } }
}`;

interface Delta {
  subject: NodeRef;
  gained: Permission[];
  lost: Permission[];
}

type Page<K extends string, N> = { diff: { from: number; to: number } & Record<K, { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string | null }; nodes: N[] }> };

export function DiffView(): JSX.Element {
  const loc = useLocation();
  const s = useSession();
  const num = (k: string) => {
    const v = loc.params.get(k);
    return v && /^\d+$/.test(v) ? Number(v) : null;
  };
  const from = num('from');
  const to = num('to');
  return (
    <div class="page" data-testid="diff">
      <header class="page-head">
        <h1>
          What changed{from !== null ? <> from <RevLink rev={from} /></> : null}
          {from !== null ? <> to {to !== null ? <RevLink rev={to} /> : <>the head (rev {s.head})</>}</> : null}
        </h1>
      </header>
      <DiffForm key={`${from}-${to}`} from={from} to={to} />
      {from === null ? <p class="muted">Pick two revisions, or tick two in the <Link href={href('/history')}>history</Link>.</p> : (
        <>
          <SubjectDeltas from={from} to={to} />
          <ObjectChanges from={from} to={to} />
          <FindingDeltas from={from} to={to} />
        </>
      )}
    </div>
  );
}

function DiffForm({ from, to }: { from: number | null; to: number | null }): JSX.Element {
  const { revs } = useRevisions();
  const [f, setF] = useState(from === null ? '' : String(from));
  const [t, setT] = useState(to === null ? '' : String(to));
  const options = revs.map((r) => <option value={String(r.revision)}>{`rev ${r.revision} · ${when(r.time)} · ${r.source}`}</option>);
  return (
    <form
      class="card ask-form diff-form"
      onSubmit={(e) => {
        e.preventDefault();
        if (f !== '') navigate(href('/diff', { from: f, to: t || null }));
      }}
    >
      <div class="action-fields">
        <div class="field">
          <label for="diff-from">From</label>
          <select id="diff-from" data-testid="diff-from" value={f} onChange={(e) => setF((e.target as HTMLSelectElement).value)}>
            <option value="" disabled>choose…</option>
            {from !== null && !revs.some((r) => r.revision === from) ? <option value={String(from)}>{`rev ${from}`}</option> : null}
            {options}
          </select>
        </div>
        <div class="field">
          <label for="diff-to">To</label>
          <select id="diff-to" data-testid="diff-to" value={t} onChange={(e) => setT((e.target as HTMLSelectElement).value)}>
            <option value="">the head (live)</option>
            {to !== null && !revs.some((r) => r.revision === to) ? <option value={String(to)}>{`rev ${to}`}</option> : null}
            {options}
          </select>
        </div>
      </div>
      <div class="form-actions">
        <button type="submit" class="primary" disabled={f === ''} data-testid="diff-submit">Compare</button>
      </div>
    </form>
  );
}

function SubjectDeltas({ from, to }: { from: number; to: number | null }): JSX.Element {
  const p = usePaged<Page<'subjects', Delta>, Delta>(SUBJECTS, { from, to }, (d) => d.diff.subjects, { pageRevision: () => null });
  return (
    <Section title={<>Permission changes<span class="count-pill" data-testid="subjects-total">{p.totalCount ?? '…'}</span></>} testid="permission-deltas" actions={<span class="muted small">grants gained and lost, per subject</span>}>
      {p.error && !p.data ? <ErrorBox error={p.error} retry={p.reload} /> : !p.data ? <Loading label="Comparing the grants of every subject…" /> : !p.items.length ? (
        <Empty>No subject gained or lost a grant between rev {from} and rev {to ?? 'head'}.</Empty>
      ) : (
        <ul class="entries">
          {p.items.map((d) => (
            <li class="entry" data-testid="subject-delta" data-subject={d.subject.name}>
              <div class="entry-head">
                <NodeLink node={d.subject} />
                <span class="small">
                  {d.gained.length ? <span class="gained">+{d.gained.length} gained </span> : null}
                  {d.lost.length ? <span class="lost">−{d.lost.length} lost</span> : null}
                </span>
              </div>
              <ul class="paths">
                {d.gained.map((g) => (
                  <li class="gained-row" data-testid="gained">
                    <span class="delta-mark gained" aria-label="gained">+</span>
                    <GrantPathView g={g.grant} namespace={g.namespace} showSubject={g.grant.subject.name !== d.subject.name} />
                  </li>
                ))}
                {d.lost.map((g) => (
                  <li class="lost-row" data-testid="lost">
                    <span class="delta-mark lost" aria-label="lost">−</span>
                    <GrantPathView g={g.grant} namespace={g.namespace} showSubject={g.grant.subject.name !== d.subject.name} showSince={false} at={from} />
                  </li>
                ))}
              </ul>
            </li>
          ))}
        </ul>
      )}
      <LoadMore shown={p.items.length} total={p.totalCount} hasMore={p.hasMore} loading={p.loadingMore} onMore={p.loadMore} noun="subjects" />
    </Section>
  );
}

function ObjectChanges({ from, to }: { from: number; to: number | null }): JSX.Element {
  const s = useSession();
  const p = usePaged<Page<'objects', ChangeT>, ChangeT>(OBJECTS, { from, to }, (d) => d.diff.objects, { pageRevision: () => null });
  const target = p.data?.diff.to ?? to ?? s.head;
  return (
    <Section title={<>Object changes<span class="count-pill" data-testid="objects-total">{p.totalCount ?? '…'}</span></>} testid="object-changes">
      {p.error && !p.data ? <ErrorBox error={p.error} retry={p.reload} /> : !p.data ? <Loading /> : !p.items.length ? (
        <Empty>No object changed between rev {from} and rev {target}.</Empty>
      ) : (
        <ul class="changes">
          {p.items.map((c) => (
            <ChangeRow c={c} at={target} />
          ))}
        </ul>
      )}
      <LoadMore shown={p.items.length} total={p.totalCount} hasMore={p.hasMore} loading={p.loadingMore} onMore={p.loadMore} noun="objects" />
    </Section>
  );
}

function FindingDeltas({ from, to }: { from: number; to: number | null }): JSX.Element {
  const q = useLiveQuery<{ diff: { findings: { new: FindingRow[]; resolved: FindingRow[] } } }>(FINDINGS, { from, to });
  return (
    <Section title="Findings" testid="finding-deltas">
      {q.error && !q.data ? <ErrorBox error={q.error} retry={q.reload} /> : !q.data ? <Loading label="Comparing findings…" /> : (
        <>
          <h3>
            New <span class="count-pill">{q.data.diff.findings.new.length}</span>
          </h3>
          {q.data.diff.findings.new.length ? <FindingsTable rows={q.data.diff.findings.new} /> : <p class="muted">No new risky finding.</p>}
          <h3>
            Resolved <span class="count-pill">{q.data.diff.findings.resolved.length}</span>
          </h3>
          {q.data.diff.findings.resolved.length ? <FindingsTable rows={q.data.diff.findings.resolved} /> : <p class="muted">No finding resolved.</p>}
        </>
      )}
    </Section>
  );
}

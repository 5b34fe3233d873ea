// The risk dashboard (/risks?pack=&severity=&status=&ns=&cluster=1): counts by severity, pack and namespace (each a
// filter), the trend over revisions, and the findings list with paging.
import type { JSX } from 'preact';
import { useEffect } from 'preact/hooks';
import { href, Link, navigate, seg, useAt, useLocation } from '../router';
import { useLiveQuery, usePaged } from '../data';
import { useSession } from '../session';
import { SEVERITIES, severityLabel, splitList } from '../format';
import type { NodeRef, ObjectRef } from '../fragments';
import { AtNote, Empty, ErrorBox, LoadMore, Loading, Name, RefLink, Section, SeverityBadge } from '../components/ui';
import { TrendChart, type TrendPoint } from '../components/trend';
import { atHref } from '../components/timetravel';

const STATUSES = ['RISKY', 'EXPECTED', 'SUPPRESSED'];

export const FINDING_ROW = `fingerprint pack severity status title message namespace revision
  rule { id title }
  subjectRef { kind namespace name } subject { id kind name namespace }
  objectRef { kind namespace name } object { id kind name namespace }`;

export interface FindingRow {
  fingerprint: string;
  pack: string;
  severity: string;
  status: string;
  title: string;
  message: string;
  namespace: string | null;
  revision: number;
  rule: { id: string; title: string };
  subjectRef: ObjectRef | null;
  subject: NodeRef | null;
  objectRef: ObjectRef | null;
  object: NodeRef | null;
}

const FINDINGS = `query Findings($at: Revision, $pack: String, $severity: Severity, $status: [FindingStatus!], $namespace: String, $after: String) {
  findings(at: $at, pack: $pack, severity: $severity, status: $status, namespace: $namespace, first: 50, after: $after) {
    totalCount revision
    pageInfo { hasNextPage endCursor }
    summary {
      total risky expected suppressed
      bySeverity { severity count }
      byPack { pack count }
      byNamespace { namespace count }
    }
    nodes { ${FINDING_ROW} }
  }
}`;

type FindingsData = {
  findings: {
    totalCount: number;
    revision: number;
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
    summary: {
      total: number;
      risky: number;
      expected: number;
      suppressed: number;
      bySeverity: { severity: string; count: number }[];
      byPack: { pack: string; count: number }[];
      byNamespace: { namespace: string; count: number }[];
    };
    nodes: FindingRow[];
  };
};

const SIDE = `query RiskSide { packs { name title } findingsTrend(last: 60) { revision time risky new resolved bySeverity { severity count } } }`;

type SideData = { packs: { name: string; title: string }[]; findingsTrend: TrendPoint[] };

/** findingHref is a finding's page (by its fingerprint, at the current time-travel revision). */
export function findingHref(f: { fingerprint: string }): string {
  return href(`/findings/${seg(f.fingerprint)}`);
}

interface Filters {
  pack: string;
  severity: string;
  status: string[];
  ns: string | null;
}

function filtersOf(p: URLSearchParams): Filters {
  const status = splitList(p.get('status')).filter((s) => STATUSES.includes(s));
  const sev = p.get('severity') ?? '';
  return {
    pack: p.get('pack') ?? '',
    severity: (SEVERITIES as readonly string[]).includes(sev) ? sev : '',
    status: status.length ? status : ['RISKY'],
    ns: p.get('cluster') === '1' ? '' : p.get('ns') || null,
  };
}

function filterHref(f: Filters): string {
  return href('/risks', {
    pack: f.pack || null,
    severity: f.severity || null,
    status: f.status.length === 1 && f.status[0] === 'RISKY' ? null : f.status.join(','),
    ns: f.ns || null,
    cluster: f.ns === '' ? '1' : null,
  });
}

export function Risks(): JSX.Element {
  const loc = useLocation();
  const at = useAt();
  const head = useSession().head;
  const f = filtersOf(loc.params);
  const set = (patch: Partial<Filters>) => navigate(filterHref({ ...f, ...patch }));
  const side = useLiveQuery<SideData>(SIDE, {});
  const p = usePaged<FindingsData, FindingRow>(
    FINDINGS,
    { at, pack: f.pack || null, severity: f.severity || null, status: f.status, namespace: f.ns },
    (d) => d.findings,
    { keepPrevious: true },
  );
  const d = p.data?.findings;
  // The tracker evaluates each revision shortly after it is committed: until it has caught up, say so and ask again.
  const behind = at === null && d !== undefined && d.revision < head;
  useEffect(() => {
    if (!behind) return;
    const t = setTimeout(p.reload, 1000);
    return () => clearTimeout(t);
  }, [behind, d?.revision]);
  const filtered = f.pack || f.severity || f.ns !== null || f.status.join() !== 'RISKY';
  return (
    <div class={`page risks ${p.stale ? 'stale' : ''}`} data-testid="risks" aria-busy={p.stale || p.loading}>
      <header class="page-head">
        <h1>Risks</h1>
        <AtNote revision={d?.revision} />
        {p.stale ? <span class="muted small" role="status" data-testid="updating">Updating…</span> : null}
        {behind ? <span class="progress-note" data-testid="evaluating" role="status">Evaluating findings… (evaluated up to rev {d!.revision}, head is rev {head})</span> : null}
      </header>
      {p.error && !p.data ? <ErrorBox error={p.error} retry={p.reload} /> : !d ? <Loading label="Evaluating findings…" /> : (
        <>
          <div class="risk-summary">
            <Section title="By severity" testid="by-severity">
              <ul class="sev-counts">
                {SEVERITIES.map((s) => {
                  const n = d.summary.bySeverity.find((x) => x.severity === s)?.count ?? 0;
                  return (
                    <li>
                      <button type="button" class={`sev-count ${n ? '' : 'zero'} ${f.severity === s ? 'on' : ''}`} data-testid={`sev-${s.toLowerCase()}`} onClick={() => set({ severity: f.severity === s ? '' : s })} title={`Show ${severityLabel(s).toLowerCase()} and more severe`}>
                        <span class="count">{n.toLocaleString()}</span>
                        <SeverityBadge severity={s} />
                      </button>
                    </li>
                  );
                })}
              </ul>
              <p class="small muted">
                {d.summary.total.toLocaleString()} selected: {d.summary.risky} risky, {d.summary.expected} expected, {d.summary.suppressed} suppressed
              </p>
            </Section>
            <Section title="By pack" testid="by-pack">
              <BarList items={(d.summary.byPack ?? []).map((x) => ({ key: x.pack, label: x.pack, count: x.count, on: f.pack === x.pack }))} onPick={(k) => set({ pack: f.pack === k ? '' : k })} testid="pack-count" />
            </Section>
            <Section title="By namespace" testid="by-namespace">
              <BarList
                items={(d.summary.byNamespace ?? []).slice(0, 12).map((x) => ({ key: x.namespace, label: x.namespace || 'cluster-wide', count: x.count, on: f.ns === x.namespace }))}
                onPick={(k) => set({ ns: f.ns === k ? null : k })}
                testid="ns-count"
              />
              {(d.summary.byNamespace ?? []).length > 12 ? <p class="small muted">{`and ${d.summary.byNamespace.length - 12} more namespaces`}</p> : null}
            </Section>
          </div>
          <Section title="Trend" testid="trend-section" actions={<span class="muted small">risky findings per revision (all packs)</span>}>
            {side.error && !side.data ? <ErrorBox error={side.error} retry={side.reload} /> : !side.data ? <Loading /> : (
              <TrendChart points={side.data.findingsTrend} current={at ?? d.revision} onPick={(rev) => navigate(atHref(rev))} />
            )}
          </Section>
          <Section
            title={<>Findings<span class="count-pill" data-testid="findings-total">{p.totalCount ?? 0}</span></>}
            testid="findings"
            actions={
              <form class="filters" onSubmit={(e) => e.preventDefault()}>
                <label>
                  Pack{' '}
                  <select value={f.pack} data-testid="filter-pack" onChange={(e) => set({ pack: (e.target as HTMLSelectElement).value })}>
                    <option value="">all</option>
                    {(side.data?.packs ?? []).map((x) => (
                      <option value={x.name}>{x.name}</option>
                    ))}
                    {f.pack && !(side.data?.packs ?? []).some((x) => x.name === f.pack) ? <option value={f.pack}>{f.pack}</option> : null}
                  </select>
                </label>
                <label>
                  Min. severity{' '}
                  <select value={f.severity} data-testid="filter-severity" onChange={(e) => set({ severity: (e.target as HTMLSelectElement).value })}>
                    <option value="">any</option>
                    {SEVERITIES.map((s) => (
                      <option value={s}>{severityLabel(s)}</option>
                    ))}
                  </select>
                </label>
                <fieldset class="inline-checks">
                  <legend class="sr-only">Status</legend>
                  {STATUSES.map((s) => (
                    <label>
                      <input
                        type="checkbox"
                        checked={f.status.includes(s)}
                        data-testid={`filter-status-${s.toLowerCase()}`}
                        onChange={(e) => {
                          const on = (e.target as HTMLInputElement).checked;
                          const next = on ? [...f.status, s] : f.status.filter((x) => x !== s);
                          set({ status: next.length ? STATUSES.filter((x) => next.includes(x)) : ['RISKY'] });
                        }}
                      />{' '}
                      {s.toLowerCase()}
                    </label>
                  ))}
                </fieldset>
                {f.ns !== null ? (
                  <span class="chip on">
                    namespace: {f.ns || 'cluster-wide'}{' '}
                    <button type="button" class="link-button" aria-label="Clear namespace filter" onClick={() => set({ ns: null })}>×</button>
                  </span>
                ) : null}
                {filtered ? <Link href={href('/risks')} class="small">clear filters</Link> : null}
              </form>
            }
          >
            {!p.items.length ? (
              <Empty>No findings{filtered ? ' match these filters' : ''} at revision {d.revision}.</Empty>
            ) : (
              <FindingsTable rows={p.items} />
            )}
            <LoadMore shown={p.items.length} total={p.totalCount} hasMore={p.hasMore} loading={p.loadingMore} onMore={p.loadMore} noun="findings" />
          </Section>
        </>
      )}
    </div>
  );
}

function BarList({ items, onPick, testid }: { items: { key: string; label: string; count: number; on: boolean }[]; onPick: (k: string) => void; testid: string }): JSX.Element {
  if (!items.length) return <p class="muted small">none</p>;
  const max = Math.max(1, ...items.map((i) => i.count));
  return (
    <ul class="bar-list">
      {items.map((i) => (
        <li>
          <button type="button" class={`bar-row ${i.on ? 'on' : ''}`} onClick={() => onPick(i.key)} data-testid={testid} data-key={i.key} title={`${i.label}: ${i.count}`}>
            <Name text={i.label} />
            <span class="bar-track">
              <span class="bar-fill" style={{ width: `${(100 * i.count) / max}%` }} />
            </span>
            <span class="count">{i.count.toLocaleString()}</span>
          </button>
        </li>
      ))}
    </ul>
  );
}

export function FindingsTable({ rows }: { rows: FindingRow[] }): JSX.Element {
  return (
    <table class="table findings-table" data-testid="findings-table">
      <thead>
        <tr>
          <th>Severity</th>
          <th>Finding</th>
          <th>Subject</th>
          <th>Object</th>
          <th>Where</th>
          <th>Pack</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr data-testid="finding-row" class={`status-${r.status.toLowerCase()}`}>
            <td><SeverityBadge severity={r.severity} />{r.status !== 'RISKY' ? <div class="small muted">{r.status.toLowerCase()}</div> : null}</td>
            <td>
              <Link href={findingHref(r)} data-testid="finding-link" class="finding-title">{r.title}</Link>
              <div class="small muted"><Name text={r.message} clip={false} /></div>
            </td>
            <td>{r.subjectRef ? <RefLink oref={r.subjectRef} node={r.subject} /> : <span class="muted">—</span>}</td>
            <td>{r.objectRef ? <RefLink oref={r.objectRef} node={r.object} /> : <span class="muted">—</span>}</td>
            <td>{r.namespace ? <Name text={r.namespace} /> : <span class="muted">cluster</span>}</td>
            <td class="small">{r.pack}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

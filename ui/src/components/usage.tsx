// The Usage panel of a User or ServiceAccount page: the requests audit events showed it make (most recent first,
// paged) and its least-privilege report over a window (7, 30 or 90 days): what it holds and did not use, grouped by
// binding and role, the RBAC that would cover what it used (YAML to copy), and which used grants that narrows.
// Usage is judged at the head: audit events are not versioned with the graph.
import type { JSX } from 'preact';
import { useRef, useState } from 'preact/hooks';
import { RequestError } from '../api';
import { useLiveQuery, usePaged } from '../data';
import { RULE_FIELDS, type ObjectRef, type Rule, type SeenT } from '../fragments';
import { plural } from '../format';
import { Link, navigate, useAt, useLocation } from '../router';
import { RuleText } from './grant';
import { Empty, ErrorBox, KindBadge, LoadMore, Loading, lookupHref, Name, RefLink, SeverityBadge, Time } from './ui';

/** The subject a usage question is about (SubjectInput): a USER by user name, or a SERVICE_ACCOUNT. */
export interface UsageSubject {
  kind: 'USER' | 'SERVICE_ACCOUNT';
  name: string;
  namespace: string | null;
}

interface Coverage extends SeenT {
  events: number;
}

/** A request as usage records key it. */
interface UsageKeyT {
  verb: string;
  apiGroup: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  nonResourceURL: string;
}

/** A usage record: a request and when it was first and last seen. */
interface UsageT extends UsageKeyT {
  first: string;
  last: string;
}

interface HeldT {
  namespace: string;
  binding: ObjectRef;
  role: ObjectRef;
  ruleIndex: number;
  shared: boolean;
  verb: string;
  apiGroup: string;
  resource: string;
  resourceNames: string[];
  nonResourceURL: string;
  used: boolean;
  lastUsed: string | null;
  uses: number;
}

interface SuggestedT {
  kind: string;
  namespace: string;
  name: string;
  bindingName: string;
  rules: Rule[];
  covers: UsageKeyT[];
}

interface LeastPrivilegeT {
  user: string;
  groups: string[];
  superuser: boolean;
  window: { from: string; to: string; observedSince: string | null; complete: boolean; evidence: string };
  summary: { held: number; used: number; unused: number; usageKeys: number; staleKeys: number; notGrantedByRBAC: number; suggestedRules: number };
  unused: HeldT[];
  yaml: string;
  suggested: SuggestedT[];
  notGrantedByRBAC: UsageKeyT[];
  kept: { permission: HeldT; narrowed: boolean; narrowedBy: string[] }[];
}

const USAGE_KEY_FIELDS = 'verb apiGroup resource subresource namespace name nonResourceURL';
const USAGE_FIELDS = `${USAGE_KEY_FIELDS} first last`;
const HELD_FIELDS = `namespace binding { kind namespace name } role { kind namespace name } ruleIndex shared verb apiGroup resource
  resourceNames nonResourceURL used lastUsed uses`;

const COVERAGE = 'query AuditCoverage { auditCoverage { first last events } }';

const USAGE = `query Usage($subject: SubjectInput!, $after: String) {
  usage(subject: $subject, first: 50, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { ${USAGE_FIELDS} } }
}`;

// The KIEM-HYG-009 verdict comes along (requireFullWindow false: the window note says how far to trust it). covers
// and notGrantedByRBAC are UsageKeys: kinds of request, without times.
const LEAST = `query LeastPrivilege($subject: SubjectInput!, $unusedFor: String) {
  leastPrivilege(subject: $subject, unusedFor: $unusedFor) {
    user groups superuser
    window { from to observedSince complete evidence }
    summary { held used unused usageKeys staleKeys notGrantedByRBAC suggestedRules }
    unused { ${HELD_FIELDS} }
    yaml
    suggested { kind namespace name bindingName rules { ${RULE_FIELDS} } covers { ${USAGE_KEY_FIELDS} } }
    notGrantedByRBAC { ${USAGE_KEY_FIELDS} }
    kept { permission { ${HELD_FIELDS} } narrowed narrowedBy }
  }
  finding: unusedPermissions(subject: $subject, unusedFor: $unusedFor, requireFullWindow: false, first: 1) {
    nodes { fingerprint severity title message }
  }
}`;

type LeastData = { leastPrivilege: LeastPrivilegeT; finding: { nodes: { fingerprint: string; severity: string; title: string; message: string }[] } };

/** The windows offered; the URL's ?unused= keeps the choice (deep links, back button). */
const WINDOWS = ['7d', '30d', '90d'] as const;
const DEFAULT_WINDOW = '90d';

/** auditOff: the server keeps no audit store; the console treats it as "no audit data yet". */
function auditOff(e: Error | null): boolean {
  return e instanceof RequestError && e.errors.some((x) => /audit events are not enabled/.test(x.message));
}

export function UsagePanel({ subject }: { subject: UsageSubject }): JSX.Element {
  const at = useAt();
  const cov = useLiveQuery<{ auditCoverage: Coverage | null }>(COVERAGE, {});
  const off = auditOff(cov.error);
  const coverage = cov.data?.auditCoverage ?? null;
  const none = off || (cov.data !== null && coverage === null);
  return (
    <section class="block" data-testid="usage">
      <header class="block-head">
        <h2>Usage</h2>
        {coverage ? (
          <span class="muted small" data-testid="audit-coverage">
            audit events from <Time time={coverage.first} abs /> to <Time time={coverage.last} /> · {plural(coverage.events, 'event')}
          </span>
        ) : null}
      </header>
      {cov.error && !off && !cov.data ? <ErrorBox error={cov.error} retry={cov.reload} /> : none ? (
        <Empty>
          <span data-testid="no-audit">
            No audit events yet — see <code>docs/audit.md</code> to point the apiserver's audit webhook at kiem.
          </span>
        </Empty>
      ) : !coverage ? <Loading /> : (
        <>
          {at !== null ? <p class="muted small">Usage is judged on the audit events kiem holds now, not at revision {at}.</p> : null}
          <UsageTable subject={subject} since={coverage.first} />
          <LeastPrivilege subject={subject} />
        </>
      )}
    </section>
  );
}

type UsageData = { usage: { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string | null }; nodes: UsageT[] } };

function UsageTable({ subject, since }: { subject: UsageSubject; since: string }): JSX.Element {
  const p = usePaged<UsageData, UsageT>(USAGE, { subject }, (d) => d.usage, { pageRevision: () => null });
  return (
    <div class="usage-records">
      <h3>
        Requests seen{p.totalCount !== null ? <span class="count-pill" data-testid="usage-total">{p.totalCount}</span> : null}
        <span class="muted small"> most recent first; allowed requests only</span>
      </h3>
      {p.error && !p.data ? <ErrorBox error={p.error} retry={p.reload} /> : !p.data ? <Loading label="Reading usage…" /> : !p.items.length ? (
        <Empty>
          <span data-testid="no-usage">No request of this {subject.kind === 'USER' ? 'user' : 'ServiceAccount'} in the audit events (kept since <Time time={since} abs />).</span>
        </Empty>
      ) : (
        <table class="table compact usage-table" data-testid="usage-table">
          <thead>
            <tr>
              <th>Verb</th>
              <th>Resource</th>
              <th>Namespace</th>
              <th>Name</th>
              <th>Last</th>
              <th>First</th>
            </tr>
          </thead>
          <tbody>
            {p.items.map((u) => (
              <tr data-testid="usage-row" data-verb={u.verb} data-resource={u.nonResourceURL || resourceOf(u)}>
                <td><code><Name text={u.verb} /></code></td>
                <td><UsageWhat u={u} /></td>
                <td>{u.namespace ? <Name text={u.namespace} /> : <span class="muted">—</span>}</td>
                <td>{u.name ? <Name text={u.name} /> : <span class="muted">any</span>}</td>
                <td><Time time={u.last} /></td>
                <td><Time time={u.first} abs /></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <LoadMore shown={p.items.length} total={p.totalCount} hasMore={p.hasMore} loading={p.loadingMore} onMore={p.loadMore} noun="usage records" />
    </div>
  );
}

/** resourceOf: resource[/subresource]. */
function resourceOf(u: { resource: string; subresource?: string }): string {
  return u.subresource ? `${u.resource}/${u.subresource}` : u.resource;
}

/** UsageWhat: a non-resource URL, or resource[/subresource] with its API group. */
function UsageWhat({ u }: { u: UsageKeyT }): JSX.Element {
  if (u.nonResourceURL) return <code title="non-resource URL"><Name text={u.nonResourceURL} /></code>;
  return (
    <span>
      <code><Name text={resourceOf(u)} /></code>
      {u.apiGroup ? <span class="muted small"> (<Name text={u.apiGroup} />)</span> : null}
    </span>
  );
}

function LeastPrivilege({ subject }: { subject: UsageSubject }): JSX.Element {
  const loc = useLocation();
  const asked = loc.params.get('unused');
  const unusedFor = (WINDOWS as readonly string[]).includes(asked ?? '') ? (asked as string) : DEFAULT_WINDOW;
  const q = useLiveQuery<LeastData>(LEAST, { subject, unusedFor }, { keepPrevious: true });
  const pick = (w: string) => {
    const p = new URLSearchParams(window.location.search);
    if (w === DEFAULT_WINDOW) p.delete('unused');
    else p.set('unused', w);
    const s = p.toString();
    navigate(`${window.location.pathname}${s ? `?${s}` : ''}`, { replace: true });
  };
  const lp = q.data?.leastPrivilege;
  return (
    <div class={`least-privilege${q.stale ? ' stale' : ''}`} data-testid="least-privilege" data-window={unusedFor} aria-busy={q.loading}>
      <header class="block-head sub">
        <h3>Least privilege</h3>
        <div class="seg-buttons small" role="group" aria-label="Unused for">
          {WINDOWS.map((w) => (
            <button type="button" class={w === unusedFor ? 'on' : ''} aria-pressed={w === unusedFor} onClick={() => pick(w)} data-testid={`lp-window-${w}`}>
              {`unused for ${w}`}
            </button>
          ))}
        </div>
      </header>
      {q.error && !q.data ? <ErrorBox error={q.error} retry={q.reload} /> : !lp ? <Loading label="Comparing what it holds with what it used…" /> : (
        <LeastPrivilegeReport lp={lp} finding={q.data!.finding.nodes[0] ?? null} />
      )}
    </div>
  );
}

function LeastPrivilegeReport({ lp, finding }: { lp: LeastPrivilegeT; finding: { severity: string; title: string; message: string } | null }): JSX.Element {
  const s = lp.summary;
  const stats: [string, number, string, string][] = [
    ['held', s.held, 'Permissions held now: one per grant and per verb × API group × resource', 'held'],
    ['used', s.used, 'Held permissions some request in the window exercised', 'used'],
    ['unused', s.unused, 'Held permissions no request in the window exercised', 'unused'],
    ['usage records', s.usageKeys, 'Distinct requests seen in the window', 'usage-keys'],
    ['stale records', s.staleKeys, 'Requests seen only before the window', 'stale-keys'],
    ['not granted by RBAC', s.notGrantedByRBAC, 'Requests another authorizer allowed, or whose grant is gone', 'not-granted'],
    ['suggested rules', s.suggestedRules, 'Rules of the suggested RBAC', 'suggested-rules'],
  ];
  return (
    <div class="lp-report">
      <p class="small">
        Judged as <Name text={lp.user} clip={false} />
        {lp.groups.length ? <> with groups {lp.groups.map((g, i) => <>{i ? ', ' : ''}<Name text={g} /></>)}</> : null}, on requests from{' '}
        <Time time={lp.window.from} abs /> to <Time time={lp.window.to} abs />.
      </p>
      {lp.window.complete ? (
        <p class="muted small" data-testid="lp-window">{lp.window.evidence}</p>
      ) : (
        <p class="note warn" role="note" data-testid="lp-incomplete">
          <strong>The window is not fully observed: an unused permission may only be unobserved.</strong> {lp.window.evidence}
        </p>
      )}
      {lp.superuser ? (
        <p class="flag danger" data-testid="lp-superuser">
          In system:masters: allowed everything before RBAC is consulted; no RBAC change bounds it.
        </p>
      ) : null}
      <ul class="stats" data-testid="lp-summary">
        {stats.map(([label, n, title, id]) => (
          <li class={`stat${n === 0 ? ' zero' : ''}`} title={title} data-testid={`lp-count-${id}`} data-count={n}>
            <span class="count">{n.toLocaleString()}</span>
            <span class="small muted">{label}</span>
          </li>
        ))}
      </ul>
      {finding ? (
        <p class="small" data-testid="lp-finding">
          <SeverityBadge severity={finding.severity} /> <strong>KIEM-HYG-009 {finding.title}:</strong> {finding.message}
        </p>
      ) : null}
      <h4>
        Unused permissions<span class="count-pill">{lp.unused.length}</span>
      </h4>
      {lp.unused.length ? <UnusedByBinding held={lp.unused} /> : <p class="muted" data-testid="lp-no-unused">Every permission it holds was used in the window.</p>}
      <h4>Suggested RBAC</h4>
      <SuggestedYAML lp={lp} />
      {lp.notGrantedByRBAC.length ? (
        <>
          <h4>
            Used but not granted by RBAC<span class="count-pill">{lp.notGrantedByRBAC.length}</span>
          </h4>
          <p class="muted small">Another authorizer allowed these, or the grant is gone: the suggestion leaves them out.</p>
          <ul class="plain-list usage-list" data-testid="lp-not-granted">
            {lp.notGrantedByRBAC.map((u) => (
              <li>
                <code><Name text={u.verb} /></code> <UsageWhat u={u} />
                {u.namespace ? <span class="muted small"> in <Name text={u.namespace} /></span> : null}
              </li>
            ))}
          </ul>
        </>
      ) : null}
      <h4>
        Used permissions kept<span class="count-pill">{lp.kept.length}</span>
      </h4>
      <Kept kept={lp.kept} />
    </div>
  );
}

/** refKey identifies an object, to group held permissions by the binding that grants them, then by its role. */
const refKey = (r: ObjectRef) => `${r.kind}\u0000${r.namespace}\u0000${r.name}`;

/** A row of unused permissions: the verbs one rule grants on one resource (or URL) in one scope, never used. */
interface UnusedRow extends HeldT {
  verbs: string[];
}

/** mergeVerbs folds the per-verb permissions of one rule, resource and scope into one row; the latest use is kept. */
function mergeVerbs(perms: HeldT[]): UnusedRow[] {
  const rows = new Map<string, UnusedRow>();
  for (const p of perms) {
    const k = [p.namespace, p.ruleIndex, p.apiGroup, p.resource, p.resourceNames.join(','), p.nonResourceURL].join('\u0000');
    const row = rows.get(k);
    if (!row) rows.set(k, { ...p, verbs: [p.verb] });
    else {
      row.verbs.push(p.verb);
      if (p.lastUsed && (!row.lastUsed || p.lastUsed > row.lastUsed)) row.lastUsed = p.lastUsed;
    }
  }
  return [...rows.values()];
}

/**
 * UnusedByBinding lists the unused permissions by binding, then role. Grants shared through a group binding
 * (system:authenticated's discovery roles, a team's group) start folded: removing them is a change for every member,
 * not for this subject alone.
 */
function UnusedByBinding({ held }: { held: HeldT[] }): JSX.Element {
  const bindings = new Map<string, { binding: ObjectRef; roles: Map<string, { role: ObjectRef; perms: HeldT[] }> }>();
  for (const h of held) {
    const bk = refKey(h.binding);
    if (!bindings.has(bk)) bindings.set(bk, { binding: h.binding, roles: new Map() });
    const roles = bindings.get(bk)!.roles;
    const rk = refKey(h.role);
    if (!roles.has(rk)) roles.set(rk, { role: h.role, perms: [] });
    roles.get(rk)!.perms.push(h);
  }
  return (
    <ul class="plain-list lp-bindings" data-testid="lp-unused">
      {[...bindings.values()].map((b) => (
        <li class="lp-binding" data-testid="unused-binding" data-binding={b.binding.name}>
          {[...b.roles.values()].map((r) => {
            const shared = r.perms.some((p) => p.shared);
            return (
              <details class="lp-role" data-testid="unused-role" data-role={r.role.name} data-shared={shared ? 'true' : 'false'} open={!shared}>
                <summary class="entry-head">
                  <span class="hop"><RefLink oref={b.binding} /></span>
                  <span class="arrow muted" aria-hidden="true">→</span>
                  <span class="hop"><RefLink oref={r.role} /></span>
                  <span class="count-pill" title="unused permissions (verb × resource)">{r.perms.length}</span>
                  {shared ? (
                    <span class="chip small" title="The binding names a group: removing the grant takes it from every member">shared through a group</span>
                  ) : null}
                </summary>
                <table class="table compact lp-perms">
                  <colgroup>
                    <col class="c-perm" />
                    <col class="c-scope" />
                    <col class="c-rule" />
                    <col class="c-used" />
                  </colgroup>
                  <tbody>
                    {mergeVerbs(r.perms).map((p) => (
                      <tr data-testid="unused-permission" data-verbs={p.verbs.join(',')} data-resource={p.nonResourceURL || p.resource}>
                        <td><HeldText h={p} verbs={p.verbs} /></td>
                        <td class="small">{p.namespace ? <>in <Name text={p.namespace} /></> : <span class="muted">cluster-wide</span>}</td>
                        <td class="small">
                          <Link href={`${lookupHref(r.role.kind, r.role.name, r.role.namespace)}#rule-${p.ruleIndex}`} class="muted">rule {p.ruleIndex}</Link>
                        </td>
                        <td class="small">
                          {p.lastUsed ? <>last used <Time time={p.lastUsed} /></> : <span class="muted">never seen used</span>}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </details>
            );
          })}
        </li>
      ))}
    </ul>
  );
}

/** HeldText: a held permission, "verb on resource (group) named …" or "verb on URL"; verbs lists several at once. */
function HeldText({ h, verbs = [h.verb] }: { h: HeldT; verbs?: string[] }): JSX.Element {
  if (h.nonResourceURL) {
    return (
      <span class="held">
        <code class="verbs"><Name text={verbs.join(', ')} clip={false} /></code> on URL <code><Name text={h.nonResourceURL} /></code>
      </span>
    );
  }
  return (
    <span class="held">
      <code class="verbs"><Name text={verbs.join(', ')} clip={false} /></code> on <code><Name text={h.resource} /></code>
      {h.apiGroup ? <span class="muted"> (<Name text={h.apiGroup} />)</span> : null}
      {h.resourceNames.length ? <> named <code><Name text={h.resourceNames.join(', ')} /></code></> : null}
    </span>
  );
}

function SuggestedYAML({ lp }: { lp: LeastPrivilegeT }): JSX.Element {
  const pre = useRef<HTMLPreElement>(null);
  const [copied, setCopied] = useState<'idle' | 'copied' | 'selected'>('idle');
  if (!lp.suggested.length) {
    return <p class="muted" data-testid="lp-no-suggestion">Nothing to suggest: no request in the window that RBAC grants.</p>;
  }
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(lp.yaml);
      setCopied('copied');
    } catch {
      // No clipboard access (an insecure origin, a refused permission): select the text for Ctrl+C instead.
      if (pre.current) window.getSelection()?.selectAllChildren(pre.current);
      setCopied('selected');
    }
  };
  return (
    <div class="lp-yaml">
      <ul class="plain-list small lp-suggested" data-testid="lp-suggested">
        {lp.suggested.map((r) => (
          <li>
            <KindBadge kind={r.kind} /> <Name text={r.namespace ? `${r.namespace}/${r.name}` : r.name} clip={false} />
            <span class="muted">
              {' '}bound by <Name text={r.bindingName} />; covers {plural(r.covers.length, 'request')} with {plural(r.rules.length, 'rule')}
            </span>
            <ul class="plain-list lp-rules">
              {r.rules.map((x) => (
                <li><RuleText rule={x} /></li>
              ))}
            </ul>
          </li>
        ))}
      </ul>
      <div class="yaml-head">
        <span class="muted small">Review before applying; then remove the grants it replaces.</span>
        <button type="button" class="small" onClick={copy} data-testid="copy-yaml">
          Copy YAML
        </button>
        <span class="small" role="status" data-testid="copy-status">
          {copied === 'copied' ? 'Copied to the clipboard.' : copied === 'selected' ? 'Selected: press Ctrl+C (⌘C) to copy.' : ''}
        </span>
      </div>
      <pre class="code yaml" ref={pre} data-testid="lp-yaml">{lp.yaml}</pre>
    </div>
  );
}

function Kept({ kept }: { kept: LeastPrivilegeT['kept'] }): JSX.Element {
  if (!kept.length) return <p class="muted">No permission it holds was used in the window.</p>;
  return (
    <table class="table compact" data-testid="lp-kept">
      <thead>
        <tr>
          <th>Permission</th>
          <th>Through</th>
          <th>Suggestion</th>
          <th>Last used</th>
        </tr>
      </thead>
      <tbody>
        {kept.map((k) => (
          <tr data-testid="kept-permission" data-narrowed={k.narrowed ? 'true' : 'false'}>
            <td>
              <HeldText h={k.permission} />
              {k.permission.namespace ? <span class="muted small"> in <Name text={k.permission.namespace} /></span> : null}
            </td>
            <td class="small">
              <RefLink oref={k.permission.binding} /> <span class="muted">→</span> <RefLink oref={k.permission.role} />
            </td>
            <td class="small">
              {k.narrowed ? <span class="warn">narrowed by {k.narrowedBy.join(', ')}</span> : <span class="muted">kept as is</span>}
            </td>
            <td class="small">
              {k.permission.lastUsed ? <Time time={k.permission.lastUsed} /> : null}
              {k.permission.uses ? <span class="muted">{` · ${plural(k.permission.uses, 'use')}`}</span> : null}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}


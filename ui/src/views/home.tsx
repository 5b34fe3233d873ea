// The home page: ready-made questions (one click each), the server, risk counts, newest revisions, recent alerts.
import type { JSX } from 'preact';
import { href, Link, useAt } from '../router';
import { useLiveQuery } from '../data';
import { useSession } from '../session';
import { REVISION_FIELDS, type AlertT, type RevisionInfo } from '../fragments';
import { AtNote, ErrorBox, Loading, Name, RevLink, SeverityBadge, Time, Empty } from '../components/ui';
import { ChangeSummary } from './history';
import { SEVERITIES } from '../format';

/** The questions a newcomer asks first, as who-can and can-i links. */
export const QUESTIONS: { label: string; to: () => string; testid: string }[] = [
  { label: 'Who can read secrets in kube-system?', testid: 'q-secrets-kube-system', to: () => href('/who-can', { verb: 'get', resource: 'secrets', ns: 'kube-system' }) },
  { label: 'Who can read secrets in every namespace?', testid: 'q-secrets-all', to: () => href('/who-can', { verb: 'list', resource: 'secrets' }) },
  { label: 'Who can exec into pods?', testid: 'q-exec', to: () => href('/who-can', { verb: 'create', resource: 'pods', subresource: 'exec' }) },
  { label: 'Who can create pods (and so run as any ServiceAccount)?', testid: 'q-create-pods', to: () => href('/who-can', { verb: 'create', resource: 'pods' }) },
  { label: 'Who can escalate roles?', testid: 'q-escalate', to: () => href('/who-can', { verb: 'escalate', resource: 'clusterroles', group: 'rbac.authorization.k8s.io' }) },
  { label: 'Who can bind roles?', testid: 'q-bind', to: () => href('/who-can', { verb: 'bind', resource: 'clusterroles', group: 'rbac.authorization.k8s.io' }) },
  { label: 'Who can impersonate users?', testid: 'q-impersonate', to: () => href('/who-can', { verb: 'impersonate', resource: 'users' }) },
  { label: 'Who can proxy to nodes (kubelet API)?', testid: 'q-nodes-proxy', to: () => href('/who-can', { verb: 'get', resource: 'nodes', subresource: 'proxy' }) },
  { label: 'Who can change ClusterRoleBindings?', testid: 'q-crb', to: () => href('/who-can', { verb: 'update', resource: 'clusterrolebindings', group: 'rbac.authorization.k8s.io' }) },
  { label: 'Can anonymous users list pods?', testid: 'q-anonymous', to: () => href('/can-i', { kind: 'USER', name: 'system:anonymous', groups: 'system:unauthenticated', verb: 'list', resource: 'pods' }) },
];

// Two queries, so that a failure of one (findings not evaluated at a revision) leaves the other standing.
const HOME_RISKS = `query HomeRisks($at: Revision) {
  findings(at: $at, first: 0) { revision summary { total risky bySeverity { severity count } } }
}`;

const HOME = `query Home {
  server { cluster version revision horizon source ready }
  revisions(first: 6) { nodes { ${REVISION_FIELDS} } }
  alerts(first: 6) { id filterId filterName revision time enteredTotal leftTotal entered { text } left { text } }
}`;

type RisksData = { findings: { revision: number; summary: { total: number; risky: number; bySeverity: { severity: string; count: number }[] } } };

type HomeData = {
  server: { cluster: string; version: string; revision: number; horizon: number; source: string; ready: boolean };
  revisions: { nodes: RevisionInfo[] };
  alerts: AlertT[];
};

export function Home(): JSX.Element {
  const at = useAt();
  const s = useSession();
  const q = useLiveQuery<HomeData>(HOME, {});
  const r = useLiveQuery<RisksData>(HOME_RISKS, { at }, { keepPrevious: true });
  const d = q.data;
  const f = r.data?.findings;
  return (
    <div class="page home" data-testid="home">
      <div class="home-intro">
        <h1>Who can do what in <Name text={s.server.cluster} />?</h1>
        <p class="muted">Ask a question with a click, search for anyone or anything with <kbd>/</kbd>, or look back in time with the revision picker.</p>
      </div>
      <div class="home-grid">
        <section class="block" data-testid="questions">
          <header class="block-head">
            <h2>Ask</h2>
          </header>
          <ul class="questions">
            {QUESTIONS.map((x) => (
              <li>
                <Link href={x.to()} data-testid={x.testid}>
                  {x.label}
                </Link>
              </li>
            ))}
          </ul>
          <p class="small">
            Or build your own: <Link href={href('/who-can')}>Who can…</Link> · <Link href={href('/can-i')}>Can … do …?</Link> ·{' '}
            <Link href={href('/explore')}>Explore the graph</Link>
          </p>
        </section>

        <section class="block" data-testid="home-risks">
          <header class="block-head">
            <h2>Risks</h2>
            <AtNote revision={f?.revision} />
          </header>
          {r.error && !f ? <ErrorBox error={r.error} retry={r.reload} /> : !f ? <Loading label="Evaluating findings…" /> : (
            <>
              <ul class="sev-counts">
                {SEVERITIES.map((sev) => {
                  const n = f.summary.bySeverity.find((x) => x.severity === sev)?.count ?? 0;
                  return (
                    <li>
                      <Link href={href('/risks', { severity: sev })} class={`sev-count ${n ? '' : 'zero'}`} data-testid={`home-sev-${sev.toLowerCase()}`}>
                        <span class="count">{n.toLocaleString()}</span>
                        <SeverityBadge severity={sev} />
                      </Link>
                    </li>
                  );
                })}
              </ul>
              <p class="small">
                {f.summary.risky.toLocaleString()} risky findings ·{' '}
                <Link href={href('/risks')}>Risk dashboard</Link>
              </p>
            </>
          )}
        </section>

        <section class="block" data-testid="home-server">
          <header class="block-head">
            <h2>Server</h2>
          </header>
          {q.error && !d ? <ErrorBox error={q.error} retry={q.reload} /> : !d ? <Loading /> : (
            <dl class="dl">
              <dt>Cluster</dt>
              <dd><bdi>{d.server.cluster}</bdi> <span class="muted">({d.server.source})</span></dd>
              <dt>Head revision</dt>
              <dd><RevLink rev={s.head} /></dd>
              <dt>History</dt>
              <dd>revisions {d.server.horizon}…{s.head}</dd>
              <dt>Sync</dt>
              <dd>{d.server.ready ? <span class="ok">ready</span> : <span class="warn">initial sync in progress…</span>}</dd>
              <dt>Version</dt>
              <dd>{d.server.version}</dd>
            </dl>
          )}
        </section>

        <section class="block" data-testid="home-revisions">
          <header class="block-head">
            <h2>Newest revisions</h2>
            <Link href={href('/history')} class="small">History →</Link>
          </header>
          {!d ? (q.error ? null : <Loading />) : !d.revisions.nodes.length ? <Empty>No revisions yet.</Empty> : (
            <table class="table compact">
              <tbody>
                {d.revisions.nodes.map((r) => (
                  <tr>
                    <td><RevLink rev={r.revision} /></td>
                    <td><Time time={r.time} /></td>
                    <td><Name text={r.source} /></td>
                    <td><ChangeSummary rev={r} /></td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>

        <section class="block" data-testid="home-alerts">
          <header class="block-head">
            <h2>Recent alerts</h2>
            <Link href={href('/filters')} class="small">Filters & alerts →</Link>
          </header>
          {!d ? (q.error ? null : <Loading />) : !d.alerts.length ? <Empty>No alerts yet. Save a filter to be told when its answer changes.</Empty> : (
            <ul class="plain-list">
              {d.alerts.map((a) => (
                <li>
                  <strong><Name text={a.filterName} /></strong> <RevLink rev={a.revision} /> <Time time={a.time} />
                  <div class="small">
                    {a.enteredTotal ? <span class="gained">+{a.enteredTotal} </span> : null}
                    {a.leftTotal ? <span class="lost">−{a.leftTotal} </span> : null}
                    <Name text={a.entered[0]?.text ?? a.left[0]?.text ?? ''} />
                  </div>
                </li>
              ))}
            </ul>
          )}
        </section>
      </div>
    </div>
  );
}

// Saved filters and alerts (/filters?filter=ID&edit=ID|new): the filters, a form to create or edit one (CEL errors
// shown with their line and column), and the alerts, arriving live over the alerts subscription.
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { gql, onConnectionStatus, connectionStatus, RequestError, subscribe, type ConnectionStatus } from '../api';
import { href, Link, navigate, useLocation } from '../router';
import { useQuery } from '../hooks';
import { useSession } from '../session';
import { ALERT_FIELDS, type AlertT } from '../fragments';
import { errorText } from '../format';
import { Empty, ErrorBox, Loading, Name, RevLink, Section, Time, KindBadge } from '../components/ui';

interface SavedFilter {
  id: string;
  name: string;
  description: string;
  owner: string;
  target: string;
  kind: string | null;
  expression: string;
  source: string;
  created: string;
  updated: string;
}

const FILTER_FIELDS = 'id name description owner target kind expression source created updated';
const FILTERS = `query Filters { savedFilters { ${FILTER_FIELDS} } }`;
const ALERTS = `query Alerts { alerts(first: 100) { ${ALERT_FIELDS} } }`;
const SAVE = `mutation SaveFilter($input: SavedFilterInput!) { saveFilter(input: $input) { ${FILTER_FIELDS} } }`;
const DELETE = 'mutation DeleteFilter($id: ID!) { deleteFilter(id: $id) }';
const LIVE = `subscription LiveAlerts($since: Revision) { alerts(since: $since) { ${ALERT_FIELDS} } }`;

const TARGETS: [string, string][] = [
  ['FINDINGS', 'findings (variable finding)'],
  ['GRANTS', 'grants (variable grant)'],
  ['CHANGES', 'changes (variable change)'],
  ['ENTITIES', 'entities (variable object)'],
];

const ENTITY_KINDS = ['ClusterRoleBinding', 'RoleBinding', 'ClusterRole', 'Role', 'ServiceAccount', 'Pod', 'Namespace', 'Node', 'Secret', 'User'];

/** The examples of docs/alerts.md, to start from. */
const EXAMPLES: (Omit<SavedFilter, 'owner' | 'source' | 'created' | 'updated'> & { label: string })[] = [
  {
    label: 'people given cluster-admin',
    id: 'people-cluster-admin',
    name: 'people given cluster-admin',
    description: '',
    target: 'CHANGES',
    kind: null,
    expression: "change.op != 'delete' && change.object.roleRef.name == 'cluster-admin' &&\n  change.object.subjects.exists(s, s.kind != 'ServiceAccount' && !s.name.startsWith('system:'))",
  },
  { label: 'read on secrets in a namespace', id: 'prod-secrets', name: 'read on secrets in prod', description: '', target: 'GRANTS', kind: null, expression: "grant.allows(['get', 'list', 'watch'], 'secrets') && grant.appliesIn('prod')" },
  { label: 'critical risks', id: 'critical', name: 'critical risks', description: '', target: 'FINDINGS', kind: null, expression: "finding.severity == 'critical' && finding.status == 'risky'" },
  { label: 'roles granting everything', id: 'wildcard-roles', name: 'roles granting everything', description: '', target: 'ENTITIES', kind: 'ClusterRole', expression: "object.rules.exists(r, '*' in r.verbs && '*' in r.resources)" },
];

interface Form {
  id: string;
  name: string;
  description: string;
  owner: string;
  target: string;
  kind: string;
  expression: string;
}

const emptyForm: Form = { id: '', name: '', description: '', owner: '', target: 'FINDINGS', kind: '', expression: '' };

export function Filters(): JSX.Element {
  const loc = useLocation();
  const filters = useQuery<{ savedFilters: SavedFilter[] }>(FILTERS);
  const selected = loc.params.get('filter');
  const edit = loc.params.get('edit');
  const list = filters.data?.savedFilters ?? [];
  const editing = edit === 'new' ? null : list.find((f) => f.id === edit) ?? null;
  return (
    <div class="page filters-page" data-testid="filters">
      <header class="page-head">
        <h1>Filters & alerts</h1>
        <span class="muted">A saved filter is a question kiem asks after every change; when its answer changes, it raises an alert.</span>
      </header>
      <div class="cols filters-cols">
        <div>
          <Section
            title={<>Saved filters<span class="count-pill">{list.length}</span></>}
            testid="filter-list"
            actions={
              <Link href={href('/filters', { edit: 'new', filter: selected })} class="button" data-testid="new-filter">
                New filter
              </Link>
            }
          >
            {filters.error && !filters.data ? <ErrorBox error={filters.error} retry={filters.reload} /> : !filters.data ? <Loading /> : !list.length ? (
              <Empty>No saved filter yet. Create one, or declare them in a file with <code>kiem serve --filters</code>.</Empty>
            ) : (
              <ul class="filter-list">
                {list.map((f) => (
                  <FilterItem f={f} selected={selected === f.id} onDeleted={filters.reload} />
                ))}
              </ul>
            )}
          </Section>
          {edit !== null && (edit === 'new' || editing || !filters.data) ? (
            filters.data ? (
              <FilterForm
                key={edit}
                initial={editing ? { id: editing.id, name: editing.name, description: editing.description, owner: editing.owner, target: editing.target, kind: editing.kind ?? '', expression: editing.expression } : emptyForm}
                existing={!!editing}
                onSaved={(f) => {
                  filters.reload();
                  navigate(href('/filters', { filter: f.id }));
                }}
              />
            ) : null
          ) : null}
        </div>
        <Alerts filter={selected} names={new Map(list.map((f) => [f.id, f.name]))} />
      </div>
    </div>
  );
}

function FilterItem({ f, selected, onDeleted }: { f: SavedFilter; selected: boolean; onDeleted: () => void }): JSX.Element {
  const [confirm, setConfirm] = useState(false);
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<string | null>(null);
  const admin = useSession().server.viewer.role === 'ADMIN';
  const del = async () => {
    setBusy(true);
    setErr(null);
    try {
      await gql(DELETE, { id: f.id });
      setConfirm(false);
      onDeleted();
    } catch (e) {
      setErr(errorText(e));
    }
    setBusy(false);
  };
  return (
    <li class={`filter-item ${selected ? 'selected' : ''}`} data-testid="filter-item" data-id={f.id}>
      <div class="filter-head">
        <Link href={href('/filters', { filter: selected ? null : f.id })} class="filter-name" title={selected ? 'Show every filter’s alerts' : 'Show this filter’s alerts'}>
          <Name text={f.name} />
        </Link>
        <span class="chip small">{f.target.toLowerCase()}{f.kind ? `: ${f.kind}` : ''}</span>
        <code class="small muted">{f.id}</code>
      </div>
      {f.description ? <p class="small">{f.description}</p> : null}
      <pre class="code expr">{f.expression}</pre>
      <div class="small muted">
        by <Name text={f.owner} /> · {f.source === 'api' ? 'saved through the API' : <>declared in <code>{f.source}</code></>} · updated <Time time={f.updated} />
      </div>
      <div class="filter-actions small">
        <Link href={href('/filters', { edit: f.id, filter: f.id })} data-testid="edit-filter">edit</Link>
        {confirm ? (
          <span class="confirm" role="alert">
            Delete “<Name text={f.name} />”? Its alerts stay.{' '}
            <button type="button" class="danger" disabled={busy} onClick={del} data-testid="confirm-delete">
              {busy ? 'Deleting…' : 'Delete'}
            </button>{' '}
            <button type="button" onClick={() => setConfirm(false)}>Cancel</button>
          </span>
        ) : (
          <button type="button" class="link-button danger-text" onClick={() => setConfirm(true)} disabled={!admin} title={admin ? undefined : 'Deleting filters needs the admin role'} data-testid="delete-filter">
            delete
          </button>
        )}
        {err ? <span class="form-error">{err}</span> : null}
      </div>
    </li>
  );
}

/** exprError picks CEL's message (with its line:column and caret) out of the server's error. */
function exprError(e: unknown): { where: string | null; text: string } {
  const msg = e instanceof RequestError ? e.errors.map((x) => x.message).join('\n') : errorText(e);
  const i = msg.indexOf('ERROR:');
  const text = i >= 0 ? msg.slice(i) : msg;
  const m = /<input>:(\d+):(\d+)/.exec(text);
  return { where: m ? `line ${m[1]}, column ${m[2]}` : null, text };
}

function FilterForm({ initial, existing, onSaved }: { initial: Form; existing: boolean; onSaved: (f: SavedFilter) => void }): JSX.Element {
  const [f, setF] = useState<Form>(initial);
  const [busy, setBusy] = useState(false);
  const [exprErr, setExprErr] = useState<{ where: string | null; text: string } | null>(null);
  const [formErr, setFormErr] = useState<string | null>(null);
  const admin = useSession().server.viewer.role === 'ADMIN';
  const set = (patch: Partial<Form>) => setF({ ...f, ...patch });
  const idOk = /^[a-z0-9-]{1,63}$/.test(f.id);
  const submit = async (e: Event) => {
    e.preventDefault();
    setExprErr(null);
    setFormErr(null);
    if (!idOk) {
      setFormErr('The id is lower-case letters, digits and “-”, at most 63.');
      return;
    }
    setBusy(true);
    try {
      const input = {
        id: f.id,
        name: f.name || f.id,
        description: f.description || null,
        owner: f.owner || null,
        target: f.target,
        kind: f.target === 'ENTITIES' ? f.kind || null : null,
        expression: f.expression,
      };
      const d = await gql<{ saveFilter: SavedFilter }>(SAVE, { input });
      onSaved(d.saveFilter);
    } catch (err) {
      const msg = err instanceof RequestError ? err.errors.map((x) => x.message).join('\n') : errorText(err);
      if (/expression|<input>:\d+:\d+/.test(msg)) setExprErr(exprError(err));
      else if (/admin|forbidden|not allowed|permission/i.test(msg)) setFormErr(`Saving filters needs the admin role: ${msg}`);
      else setFormErr(msg);
    }
    setBusy(false);
  };
  return (
    <Section title={existing ? `Edit filter ${initial.id}` : 'New filter'} testid="filter-form">
      {!admin ? <p class="warn" data-testid="needs-admin">You are signed in as a viewer: saving filters needs the admin role.</p> : null}
      <form class="filter-form" onSubmit={submit}>
        {!existing ? (
          <div class="field">
            <label for="ff-example">Start from an example</label>
            <select
              id="ff-example"
              value=""
              onChange={(e) => {
                const x = EXAMPLES.find((ex) => ex.id === (e.target as HTMLSelectElement).value);
                if (x) setF({ ...f, id: x.id, name: x.name, target: x.target, kind: x.kind ?? '', expression: x.expression });
              }}
            >
              <option value="">—</option>
              {EXAMPLES.map((x) => (
                <option value={x.id}>{x.label}</option>
              ))}
            </select>
          </div>
        ) : null}
        <div class="field-row">
          <div class="field">
            <label for="ff-id">Id</label>
            <input id="ff-id" data-testid="filter-id" value={f.id} readOnly={existing} required maxLength={63} spellcheck={false} onInput={(e) => set({ id: (e.target as HTMLInputElement).value })} aria-invalid={f.id !== '' && !idOk ? 'true' : undefined} />
          </div>
          <div class="field grow">
            <label for="ff-name">Name</label>
            <input id="ff-name" data-testid="filter-name" value={f.name} onInput={(e) => set({ name: (e.target as HTMLInputElement).value })} />
          </div>
        </div>
        <div class="field-row">
          <div class="field">
            <label for="ff-target">Target</label>
            <select id="ff-target" data-testid="filter-target" value={f.target} onChange={(e) => set({ target: (e.target as HTMLSelectElement).value })}>
              {TARGETS.map(([v, l]) => (
                <option value={v}>{l}</option>
              ))}
            </select>
          </div>
          {f.target === 'ENTITIES' ? (
            <div class="field">
              <label for="ff-kind">Kind</label>
              <select id="ff-kind" data-testid="filter-kind" value={f.kind} onChange={(e) => set({ kind: (e.target as HTMLSelectElement).value })}>
                <option value="">choose…</option>
                {ENTITY_KINDS.map((k) => (
                  <option value={k}>{k}</option>
                ))}
              </select>
            </div>
          ) : null}
          <div class="field">
            <label for="ff-owner">Owner</label>
            <input id="ff-owner" data-testid="filter-owner" value={f.owner} placeholder="you" onInput={(e) => set({ owner: (e.target as HTMLInputElement).value })} />
          </div>
        </div>
        <div class="field">
          <label for="ff-desc">Description</label>
          <input id="ff-desc" data-testid="filter-description" value={f.description} onInput={(e) => set({ description: (e.target as HTMLInputElement).value })} />
        </div>
        <div class="field">
          <label for="ff-expr">Expression (CEL)</label>
          <textarea
            id="ff-expr"
            data-testid="filter-expression"
            class={`code ${exprErr ? 'invalid' : ''}`}
            rows={5}
            spellcheck={false}
            value={f.expression}
            aria-invalid={exprErr ? 'true' : undefined}
            aria-describedby={exprErr ? 'ff-expr-error' : 'ff-expr-help'}
            onInput={(e) => set({ expression: (e.target as HTMLTextAreaElement).value })}
          />
          {exprErr ? (
            <div class="expr-error" id="ff-expr-error" role="alert" data-testid="expression-error">
              {exprErr.where ? <strong data-testid="expression-error-where">Error at {exprErr.where}</strong> : <strong>The expression is refused</strong>}
              <pre>{exprErr.text}</pre>
            </div>
          ) : (
            <p class="small muted" id="ff-expr-help">
              {f.target === 'FINDINGS' ? 'finding.rule, .pack, .severity (info … critical), .status, .subject, .object, .namespace, .message' : null}
              {f.target === 'GRANTS' ? 'grant.subject, .namespace, .verbs, .resources, .binding, .role; grant.allows(verbs, resource), grant.appliesIn(ns)' : null}
              {f.target === 'CHANGES' ? 'change.op (add, update, delete), .kind, .namespace, .name, .actor, .object, .before' : null}
              {f.target === 'ENTITIES' ? 'object.kind, .namespace, .name, .labels, .annotations, .roleRef, .subjects, .rules, .automountToken …' : null}
              {' '}— see docs/alerts.md.
            </p>
          )}
        </div>
        {formErr ? <p class="form-error" role="alert" data-testid="filter-form-error">{formErr}</p> : null}
        <div class="form-actions">
          <button type="submit" class="primary" disabled={busy || !admin} data-testid="save-filter">
            {busy ? 'Checking and saving…' : 'Save filter'}
          </button>
          <Link href={href('/filters')} class="button">Cancel</Link>
        </div>
      </form>
    </Section>
  );
}

/** useConnection follows the websocket's state for the live indicator. */
function useConnection(): ConnectionStatus {
  const [s, setS] = useState(connectionStatus());
  useEffect(() => onConnectionStatus(setS), []);
  return s;
}

function Alerts({ filter, names }: { filter: string | null; names: Map<string, string> }): JSX.Element {
  const s = useSession();
  const q = useQuery<{ alerts: AlertT[] }>(ALERTS);
  const [live, setLive] = useState<AlertT[]>([]);
  const [fresh, setFresh] = useState<Set<string>>(new Set());
  const [subErr, setSubErr] = useState<string | null>(null);
  const conn = useConnection();
  const start = useRef<number | null>(null);
  // Subscribe once the stored alerts are in: since their newest revision (one less, so late alerts of that
  // revision come too; duplicates are dropped by id). Reconnects resume after the newest alert seen.
  useEffect(() => {
    if (!q.data) return;
    if (start.current === null) {
      const newest = q.data.alerts.reduce((m, a) => Math.max(m, a.revision), -1);
      start.current = Math.max(0, (newest >= 0 ? newest : s.head) - 1);
    }
    const vars: { since: number } = { since: start.current };
    const stop = subscribe<{ alerts: AlertT }>(LIVE, vars, {
      next: (d) => {
        const a = d.alerts;
        vars.since = Math.max(vars.since, a.revision - 1);
        setSubErr(null);
        setLive((xs) => (xs.some((x) => x.id === a.id) ? xs : [a, ...xs]));
        setFresh((f) => new Set(f).add(a.id));
      },
      error: (e) => setSubErr(errorText(e)),
    });
    return stop;
  }, [!!q.data]);
  const stored = q.data?.alerts ?? [];
  const storedIds = new Set(stored.map((a) => a.id));
  const all = [...live.filter((a) => !storedIds.has(a.id)), ...stored].sort((a, b) => b.revision - a.revision || (fresh.has(b.id) ? 1 : 0) - (fresh.has(a.id) ? 1 : 0));
  const shown = filter ? all.filter((a) => a.filterId === filter) : all;
  const state = subErr ? 'error' : conn === 'connected' ? 'live' : conn === 'connecting' || conn === 'idle' ? 'connecting' : 'disconnected';
  return (
    <Section
      title={<>Alerts{filter ? <> of <Name text={names.get(filter) ?? filter} /></> : null}<span class="count-pill">{shown.length}</span></>}
      testid="alerts"
      actions={
        <>
          <span class={`live-indicator ${state}`} data-testid="live-indicator" data-state={state} role="status" title={subErr ?? undefined}>
            <span class="dot" aria-hidden="true" />
            {state === 'live' ? 'live' : state === 'connecting' ? 'connecting…' : state === 'error' ? 'stopped' : 'disconnected — retrying'}
          </span>
          {filter ? <Link href={href('/filters')} class="small">all filters</Link> : null}
        </>
      }
    >
      {subErr ? <p class="form-error small">Live alerts stopped: {subErr}</p> : null}
      {q.error && !q.data ? <ErrorBox error={q.error} retry={q.reload} /> : !q.data ? <Loading /> : !shown.length ? (
        <Empty>No alerts{filter ? ' for this filter' : ''} yet. New ones appear here as soon as they are raised.</Empty>
      ) : (
        <ul class="alerts">
          {shown.map((a) => (
            <AlertItem a={a} fresh={fresh.has(a.id)} />
          ))}
        </ul>
      )}
    </Section>
  );
}

// The causes of one alert, read again when its details open: audit events may name a cause's actor after the alert
// was raised (the apiserver's webhook batches arrive after the watch saw the change).
const CAUSES = `query AlertCauses($filter: ID, $since: Revision) { alerts(filter: $filter, since: $since, first: 1000) { id causes { revision seq op kind namespace name actor } causesTotal } }`;

type Causes = Pick<AlertT, 'causes' | 'causesTotal'>;

function AlertItem({ a: raised, fresh }: { a: AlertT; fresh: boolean }): JSX.Element {
  const [open, setOpen] = useState(false);
  const [causes, setCauses] = useState<Causes | null>(null);
  const a = causes ? { ...raised, ...causes } : raised;
  useEffect(() => {
    if (!open) return;
    const ac = new AbortController();
    gql<{ alerts: (Causes & { id: string })[] }>(CAUSES, { filter: raised.filterId, since: Math.max(0, raised.revision - 1) }, ac.signal).then(
      (d) => {
        const mine = d.alerts.find((x) => x.id === raised.id);
        if (mine && !ac.signal.aborted) setCauses({ causes: mine.causes, causesTotal: mine.causesTotal });
      },
      () => undefined, // the causes as raised stay up
    );
    return () => ac.abort();
  }, [open, raised.id]);
  const actors = [...new Set(a.causes.map((c) => c.actor).filter((x): x is string => !!x))];
  const n = open ? 100 : 3;
  return (
    <li class={`alert-item ${fresh ? 'fresh' : ''}`} data-testid="alert" data-fresh={fresh ? 'true' : 'false'} data-filter={a.filterId}>
      <div class="alert-head">
        {fresh ? <span class="chip new-chip">new</span> : null}
        <Link href={href('/filters', { filter: a.filterId })} class="filter-name"><Name text={a.filterName} /></Link>
        <span class="chip small">{a.target.toLowerCase()}</span>
        <span class="small">
          <RevLink rev={a.revision} />
          {a.from !== a.revision - 1 && a.from < a.revision ? <span class="muted"> (from rev {a.from})</span> : null} · <Time time={a.time} />
        </span>
        <Link href={href('/diff', { from: a.from, to: a.revision })} class="small">diff</Link>
        {actors.length ? (
          <span class="small" data-testid="alert-actors">
            <span class="muted">by </span>
            {actors.map((u, i) => (
              <>
                {i > 0 ? <span class="muted">, </span> : null}
                <Name text={u} />
              </>
            ))}
          </span>
        ) : null}
      </div>
      <ul class="alert-matches">
        {a.entered.slice(0, n).map((m) => (
          <li class="gained-row" data-testid="alert-entered">
            <span class="delta-mark gained">+</span> <Name text={m.text} clip={false} />
          </li>
        ))}
        {a.left.slice(0, n).map((m) => (
          <li class="lost-row" data-testid="alert-left">
            <span class="delta-mark lost">−</span> <Name text={m.text} clip={false} />
          </li>
        ))}
      </ul>
      {a.enteredTotal + a.leftTotal > 2 * 3 || a.causes.length ? (
        <button type="button" class="link-button small" onClick={() => setOpen(!open)} aria-expanded={open}>
          {open ? 'less' : `details${a.enteredTotal > 3 ? ` (+${a.enteredTotal} entered)` : ''}${a.leftTotal > 3 ? ` (−${a.leftTotal} left)` : ''}`}
        </button>
      ) : null}
      {open && a.causes.length ? (
        <div class="small">
          <strong>Caused by</strong> {a.causesTotal > a.causes.length ? `(first ${a.causes.length} of ${a.causesTotal})` : null}
          <ul class="plain-list">
            {a.causes.map((c) => (
              <li>
                <span class={`op op-${c.op.toLowerCase()}`}>{c.op.toLowerCase()}</span> <KindBadge kind={c.kind} /> <Name text={c.namespace ? `${c.namespace}/${c.name}` : c.name} />{' '}
                <span class="muted">rev {c.revision}</span>
                {c.actor ? <span class="muted" data-testid="cause-actor"> by <Name text={c.actor} /></span> : null}
              </li>
            ))}
          </ul>
        </div>
      ) : null}
    </li>
  );
}

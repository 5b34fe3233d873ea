// The page of one node (/e/:id, or /lookup?kind=&name=&ns=): its details and relationships as links, per kind;
// for subjects, the effective permissions with their why-paths and since when, and the escalation paths.
import type { ComponentChildren, JSX } from 'preact';
import { useEffect } from 'preact/hooks';
import { href, Link, seg, useAt, useLocation } from '../router';
import { useLiveQuery, usePaged } from '../data';
import { useSession } from '../session';
import { GRANT, HOP, REF, RULE_FIELDS, type AttackPathT, type Label, type NodeRef, type Permission, type Rule, type SeenT } from '../fragments';
import { isSubjectKind, kindLabel, normKind } from '../kinds';
import { GrantPathView, whoElseHref } from '../components/grant';
import { AttackPaths } from '../components/paths';
import { AtNote, DL, Empty, ErrorBox, KindBadge, Labels, LoadMore, Loading, lookupHref, Name, NodeLink, QName, Section, Time } from '../components/ui';
import { atHref } from '../components/timetravel';
import { UsagePanel } from '../components/usage';
import { qualified, subjectKindOf } from '../format';

const META_FIELDS = '{ uid resourceVersion labels { key value } annotations { key value } created origin }';
const META = `meta ${META_FIELDS}`;
// ServiceAccount and Namespace have a nullable meta (and Secret a nullable serviceAccount): GraphQL refuses one
// response name with two types, so those come under other names and are merged after.
const OPT_META = `optMeta: meta ${META_FIELDS}`;
const BINDING_ROW = 'id kind name namespace roleRef { kind name } role { id kind name namespace }';

const FIELDS = `
  id kind name namespace revision
  ... on User { declared seen { first last } groups { implicit declared observed seen { first last } group { ...Ref } } bindings(first: 100) { totalCount nodes { ${BINDING_ROW} } } }
  ... on Group { seen { first last } members(first: 200) { totalCount nodes { ...Ref } } bindings(first: 100) { totalCount nodes { ${BINDING_ROW} } } }
  ... on ServiceAccount {
    exists ${OPT_META} automountToken username seen { first last }
    groups { implicit group { ...Ref } }
    pods(first: 100) { totalCount nodes { ...Ref } }
    namespaceNode { ...Ref }
    bindings(first: 100) { totalCount nodes { ${BINDING_ROW} } }
  }
  ... on Role { ${META} rules { ${RULE_FIELDS} } namespaceNode { ...Ref } bindings(first: 100) { totalCount nodes { id kind name namespace } } }
  ... on ClusterRole {
    ${META} rules { ${RULE_FIELDS} } aggregationSelectors
    aggregatedFrom { ...Ref } aggregatedInto { ...Ref }
    bindings(first: 100) { totalCount nodes { id kind name namespace } }
  }
  ... on RoleBinding { ${META} roleRef { kind name apiGroup } role { ...Ref } subjects { kind name namespace apiGroup node { ...Ref } } namespaceNode { ...Ref } }
  ... on ClusterRoleBinding { ${META} roleRef { kind name apiGroup } role { ...Ref } subjects { kind name namespace apiGroup node { ...Ref } } }
  ... on Namespace { exists ${OPT_META} objects(first: 500) { totalCount nodes { ...Ref } } }
  ... on Pod { ${META} serviceAccountName serviceAccount { ...Ref } automountToken nodeName node { ...Ref } owner { kind name } namespaceNode { ...Ref } }
  ... on ClusterNode { ${META} pods(first: 200) { totalCount nodes { ...Ref } } }
  ... on Secret { ${META} type serviceAccountName secretServiceAccount: serviceAccount { ...Ref } }
`;

const BY_ID = `query Entity($id: ID!, $at: Revision) { node(id: $id, at: $at) { ${FIELDS} } } ${REF}`;
const BY_NAME = `query EntityLookup($kind: Kind!, $name: String!, $ns: String, $at: Revision) { node: lookup(kind: $kind, name: $name, namespace: $ns, at: $at) { ${FIELDS} } } ${REF}`;

interface Meta {
  uid: string;
  resourceVersion: string;
  labels: Label[];
  annotations: Label[];
  created: string | null;
  origin: string;
}

interface Conn<N> {
  totalCount: number;
  nodes: N[];
}

interface BindingRow extends NodeRef {
  roleRef?: { kind: string; name: string };
  role?: NodeRef | null;
}

interface Membership {
  implicit: boolean;
  /** User memberships only: declared by --groups-file, observed in audit events (first and last seen). */
  declared?: boolean;
  observed?: boolean;
  seen?: SeenT | null;
  group: NodeRef;
}

interface BindingSubject {
  kind: string;
  name: string;
  namespace: string;
  apiGroup: string;
  node: NodeRef | null;
}

/** What any kind may hold; each kind fills its own fields. */
interface Entity extends NodeRef {
  revision: number;
  declared?: boolean;
  /** When audit events first and last showed the subject (null: never, or no audit events). */
  seen?: SeenT | null;
  groups?: Membership[];
  bindings?: Conn<BindingRow>;
  members?: Conn<NodeRef>;
  exists?: boolean;
  meta?: Meta | null;
  optMeta?: Meta | null;
  secretServiceAccount?: NodeRef | null;
  automountToken?: boolean | null;
  username?: string;
  pods?: Conn<NodeRef>;
  namespaceNode?: NodeRef | null;
  rules?: Rule[];
  aggregationSelectors?: string[];
  aggregatedFrom?: NodeRef[];
  aggregatedInto?: NodeRef[];
  roleRef?: { kind: string; name: string; apiGroup: string };
  role?: NodeRef | null;
  subjects?: BindingSubject[];
  objects?: Conn<NodeRef>;
  serviceAccountName?: string;
  serviceAccount?: NodeRef | null;
  nodeName?: string;
  node?: NodeRef | null;
  owner?: { kind: string; name: string } | null;
  type?: string;
}

const NAME_AT_HEAD = 'query EntityName($id: ID!) { node(id: $id) { id kind name namespace } }';

export function EntityView({ params }: { params: Record<string, string> }): JSX.Element {
  const at = useAt();
  const q = useLiveQuery<{ node: Entity | null }>(BY_ID, { id: params.id, at });
  // Missing at a past revision: the head says what the object is, so the page can name it.
  const missing = at !== null && q.data !== null && q.data.node === null;
  const live = useLiveQuery<{ node: NodeRef | null }>(NAME_AT_HEAD, { id: params.id }, { skip: !missing });
  const known = missing ? live.data?.node : null;
  return <EntityPage q={q} at={at} wanted={known ? { kind: known.kind, name: known.name, namespace: known.namespace } : undefined} />;
}

export function LookupView(): JSX.Element {
  const loc = useLocation();
  const at = useAt();
  const kind = normKind(loc.params.get('kind') ?? '');
  const name = loc.params.get('name') ?? '';
  const ns = loc.params.get('ns') || null;
  const q = useLiveQuery<{ node: Entity | null }>(BY_NAME, { kind, name, ns, at }, { skip: !kind || !name });
  if (!kind || !name) return <div class="page"><Empty>A lookup needs a kind and a name.</Empty></div>;
  return <EntityPage q={q} at={at} wanted={{ kind, name, namespace: ns ?? '' }} />;
}

function EntityPage({ q, at, wanted }: { q: { data: { node: Entity | null } | null; error: Error | null; loading: boolean; reload: () => void }; at: number | null; wanted?: { kind: string; name: string; namespace: string } }): JSX.Element {
  const head = useSession().head;
  useEffect(() => {
    const x = q.data?.node;
    if (x) document.title = `${x.namespace ? `${x.namespace}/` : ''}${x.name} · ${kindLabel(x.kind)} · kiem`;
  }, [q.data]);
  // A link to a rule (#rule-N) scrolls to it once the page is drawn.
  useEffect(() => {
    if (!q.data?.node || !location.hash) return;
    const el = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (el) {
      el.scrollIntoView({ block: 'center' });
      el.classList.add('flash');
    }
  }, [q.data]);
  if (q.error && !q.data) return <div class="page"><ErrorBox error={q.error} retry={q.reload} /></div>;
  if (!q.data) return <div class="page"><Loading /></div>;
  const raw = q.data.node;
  const n: Entity | null = raw ? { ...raw, meta: raw.meta ?? raw.optMeta ?? null, serviceAccount: raw.serviceAccount ?? raw.secretServiceAccount ?? null } : null;
  if (!n) {
    const rev = at ?? head;
    return (
      <div class="page" data-testid="entity-missing">
        {wanted ? (
          <h1 class="entity-title">
            <KindBadge kind={wanted.kind} /> <QName namespace={wanted.namespace} name={wanted.name} clip={false} />
          </h1>
        ) : (
          <h1>Not found</h1>
        )}
        <div class="state empty" data-testid="not-at-revision">
          <strong>
            {wanted ? `This ${kindLabel(wanted.kind)}` : 'This object'} does not exist at revision {rev}.
          </strong>
          <p>
            {at !== null ? (
              <>
                It may exist later: <Link href={atHref(null)} data-testid="view-live">look at it live</Link>, or{' '}
              </>
            ) : (
              'It may have existed earlier: '
            )}
            see <Link href={href('/history')}>the history</Link> for when it changed.
          </p>
        </div>
      </div>
    );
  }
  return (
    <div class="page entity" data-testid="entity" data-kind={n.kind}>
      <header class="entity-head">
        <h1 class="entity-title" data-testid="entity-title">
          <KindBadge kind={n.kind} /> <QName namespace={n.namespace} name={n.name} clip={false} />
        </h1>
        <div class="entity-actions">
          <AtNote revision={n.revision} />
          <Link href={href(`/explore/${seg(n.id)}`)} class="button" data-testid="explore-from-here">
            Explore from here
          </Link>
          {isSubjectKind(n.kind) ? (
            <Link href={href('/can-i', { kind: n.kind, name: n.name, ns_subject: n.namespace || null })} class="button">
              Can it…?
            </Link>
          ) : null}
        </div>
      </header>
      <Body n={n} />
    </div>
  );
}

function Body({ n }: { n: Entity }): JSX.Element {
  switch (n.kind) {
    case 'USER':
    case 'GROUP':
    case 'SERVICE_ACCOUNT':
      return <SubjectBody n={n} />;
    case 'ROLE':
    case 'CLUSTER_ROLE':
      return <RoleBody n={n} />;
    case 'ROLE_BINDING':
    case 'CLUSTER_ROLE_BINDING':
      return <BindingBody n={n} />;
    case 'NAMESPACE':
      return <NamespaceBody n={n} />;
    case 'POD':
      return <PodBody n={n} />;
    case 'NODE':
      return <NodeBody n={n} />;
    case 'SECRET':
      return <SecretBody n={n} />;
    default:
      return <Empty>kiem has no page for the kind {n.kind}.</Empty>;
  }
}

function MetaSection({ meta }: { meta: Meta | null | undefined }): JSX.Element | null {
  if (!meta) return null;
  return (
    <Section title="Metadata" testid="meta">
      <DL
        rows={[
          ['Created', meta.created ? <><Time time={meta.created} abs /> (<Time time={meta.created} />)</> : null],
          ['Origin', meta.origin ? <code class="name">{meta.origin}</code> : <span class="muted">live object</span>],
          ['UID', meta.uid ? <code>{meta.uid}</code> : null],
          ['Resource version', meta.resourceVersion ? <code>{meta.resourceVersion}</code> : null],
          ['Labels', <Labels labels={meta.labels} />],
          ['Annotations', meta.annotations.length ? <Annotations items={meta.annotations} /> : <span class="muted">none</span>],
        ]}
      />
    </Section>
  );
}

function Annotations({ items }: { items: Label[] }): JSX.Element {
  return (
    <dl class="annotations">
      {items.map((a) => (
        <>
          <dt><Name text={a.key} clip={false} /></dt>
          <dd><pre class="value">{a.value}</pre></dd>
        </>
      ))}
    </dl>
  );
}

function NodeList({ nodes, total, empty, testid }: { nodes: NodeRef[]; total?: number; empty: ComponentChildren; testid?: string }): JSX.Element {
  if (!nodes.length) return <p class="muted">{empty}</p>;
  return (
    <>
      <ul class="link-list" data-testid={testid}>
        {nodes.map((x) => (
          <li>
            <NodeLink node={x} />
          </li>
        ))}
      </ul>
      {total !== undefined && total > nodes.length ? <p class="muted small">{`Showing ${nodes.length} of ${total}.`}</p> : null}
    </>
  );
}

function BindingsTable({ rows, total, testid = 'bindings' }: { rows: BindingRow[]; total: number; testid?: string }): JSX.Element {
  if (!rows.length) return <p class="muted">No binding names it directly.</p>;
  return (
    <>
      <table class="table" data-testid={testid}>
        <thead>
          <tr>
            <th>Binding</th>
            <th>Role</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((b) => (
            <tr>
              <td><NodeLink node={b} /></td>
              <td>
                {b.role ? <NodeLink node={b.role} /> : b.roleRef ? (
                  <span class="warn" title="The roleRef names a role that does not exist: the binding grants nothing">
                    <KindBadge kind={b.roleRef.kind} /> <Name text={b.roleRef.name} /> (missing)
                  </span>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {total > rows.length ? <p class="muted small">{`Showing ${rows.length} of ${total}.`}</p> : null}
    </>
  );
}

function Memberships({ groups, user }: { groups: Membership[]; user: boolean }): JSX.Element {
  if (!groups.length) return <span class="muted">none</span>;
  return (
    <ul class={user ? 'link-list memberships' : 'link-list inline'} data-testid="memberships">
      {groups.map((m) => (
        <li data-testid="membership" data-group={m.group.name} data-declared={m.declared ? 'true' : 'false'} data-observed={m.observed ? 'true' : 'false'}>
          <NodeLink node={m.group} />
          {m.implicit ? <span class="muted small" title="Added by the apiserver"> implicit</span> : null}
          {m.declared ? <span class="chip small how" data-testid="declared" title="--groups-file declares this membership">declared</span> : null}
          {m.observed ? (
            <span class="small" data-testid="observed">
              <span class="chip how observed" title="Audit events showed the user authenticate with this group">observed</span>
              {m.seen ? (
                <span class="muted">
                  {' '}first seen <Time time={m.seen.first} abs />, last seen <Time time={m.seen.last} />
                </span>
              ) : null}
            </span>
          ) : null}
        </li>
      ))}
    </ul>
  );
}

/** SeenView: when audit events last (and first) showed the subject, relative and absolute. */
function SeenView({ seen }: { seen: SeenT }): JSX.Element {
  return (
    <span data-testid="last-seen">
      <Time time={seen.last} /> <span class="muted">(<Time time={seen.last} abs />; first seen <Time time={seen.first} abs />)</span>
    </span>
  );
}

function SubjectBody({ n }: { n: Entity }): JSX.Element {
  return (
    <div class="entity-body">
      <div class="cols">
        <Section title="Details" testid="details">
          <DL
            rows={[
              ['Kind', kindLabel(n.kind)],
              ['Declared', n.kind === 'USER' ? (n.declared ? 'yes, by --groups-file' : 'no: only named by bindings') : null],
              ['Exists', n.kind === 'SERVICE_ACCOUNT' ? (n.exists ? 'yes' : <span class="warn">no: only named by bindings</span>) : null],
              ['Authenticates as', n.username ? <Name text={n.username} clip={false} /> : null],
              ['Namespace', n.namespaceNode ? <NodeLink node={n.namespaceNode} /> : null],
              ['Automount token', n.kind === 'SERVICE_ACCOUNT' ? (n.automountToken === null || n.automountToken === undefined ? 'unset (mounted)' : n.automountToken ? 'yes' : 'no') : null],
              ['Last seen', n.seen ? <SeenView seen={n.seen} /> : null],
              ['Groups', n.groups ? <Memberships groups={n.groups} user={n.kind === 'USER'} /> : null],
            ]}
          />
          {n.members ? (
            <>
              <h3>Members</h3>
              <NodeList nodes={n.members.nodes} total={n.members.totalCount} empty="No declared member." testid="members" />
            </>
          ) : null}
          {n.pods ? (
            <>
              <h3>Pods running as it</h3>
              <NodeList nodes={n.pods.nodes} total={n.pods.totalCount} empty="No pod runs as this ServiceAccount." testid="pods" />
            </>
          ) : null}
        </Section>
        <Section title="Bindings naming it" testid="subject-bindings">
          <BindingsTable rows={n.bindings?.nodes ?? []} total={n.bindings?.totalCount ?? 0} />
          {n.kind !== 'GROUP' ? <p class="muted small">Grants through its groups are in the effective permissions below.</p> : null}
        </Section>
      </div>
      <Permissions n={n} />
      {n.kind === 'USER' || n.kind === 'SERVICE_ACCOUNT' ? <UsagePanel subject={{ kind: n.kind, name: n.name, namespace: n.namespace || null }} /> : null}
      <Escalation n={n} />
      <MetaSection meta={n.meta} />
    </div>
  );
}

const PERMS = `query Perms($id: ID!, $at: Revision, $after: String) {
  node(id: $id, at: $at) {
    ... on SubjectNode { permissions(first: 200, after: $after) { totalCount revision pageInfo { hasNextPage endCursor } nodes { namespace grant { ...Grant } } } }
  }
}
${GRANT}`;

type PermsData = { node: { permissions?: { totalCount: number; revision: number; pageInfo: { hasNextPage: boolean; endCursor: string | null }; nodes: Permission[] } } | null };

function Permissions({ n }: { n: Entity }): JSX.Element {
  const at = useAt();
  // Asked at the node's revision; when the head moves the old answer stays up until the new one is in.
  const p = usePaged<PermsData, Permission>(PERMS, { id: n.id, at: at ?? n.revision }, (d) => d.node?.permissions, { keepPrevious: true });
  const groups = new Map<string, Permission[]>();
  for (const x of p.items) {
    const k = x.namespace ?? '';
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(x);
  }
  const keys = [...groups.keys()].sort((a, b) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b)));
  return (
    <Section
      title={<>Effective permissions{p.totalCount !== null ? <span class="count-pill">{p.totalCount}</span> : null}</>}
      testid="permissions"
      actions={<span class="muted small">every rule it holds, through its own bindings and its groups'</span>}
    >
      {p.error && !p.data ? <ErrorBox error={p.error} retry={p.reload} /> : !p.data ? <Loading label="Computing effective permissions…" /> : !p.items.length ? (
        <Empty>No permission at revision {p.revision ?? n.revision}.</Empty>
      ) : (
        <>
          <nav class="ns-index small">
            {keys.map((k) => (
              <a href={`#perm-ns-${k || 'cluster'}`} onClick={(e) => {
                e.preventDefault();
                document.getElementById(`perm-ns-${k || 'cluster'}`)?.scrollIntoView({ block: 'start' });
              }}>
                {k ? k : 'cluster-wide'} ({groups.get(k)!.length})
              </a>
            ))}
          </nav>
          {keys.map((k) => (
            <div class="perm-group" id={`perm-ns-${k || 'cluster'}`} data-testid="perm-group" data-namespace={k}>
              <h3>
                {k ? (
                  <>
                    in namespace <Link href={lookupHref('NAMESPACE', k)}><Name text={k} /></Link>
                  </>
                ) : (
                  'Cluster-wide (every namespace)'
                )}
              </h3>
              <ul class="paths">
                {groups.get(k)!.map((x) => {
                  const other = !sameSubject(x, n);
                  const who = whoElseHref(x.grant.rule, x.namespace);
                  return (
                    <li data-testid="permission">
                      <GrantPathView g={x.grant} showSubject={other} from={n.id} />
                      {who ? (
                        <Link href={who} class="small who-else" data-testid="who-else">
                          who else can?
                        </Link>
                      ) : null}
                    </li>
                  );
                })}
              </ul>
            </div>
          ))}
        </>
      )}
      <LoadMore shown={p.items.length} total={p.totalCount} hasMore={p.hasMore} loading={p.loadingMore} onMore={p.loadMore} noun="permissions" />
    </Section>
  );
}

/** sameSubject: whether a grant's binding names the page's subject itself (not one of its groups). */
function sameSubject(x: Permission, n: Entity): boolean {
  const s = x.grant.subject;
  return normKind(s.kind) === n.kind && s.name === n.name && (s.namespace || '') === (n.namespace || '');
}

const ATTACK = `query Attack($subject: SubjectInput!, $at: Revision) { attackPaths(subject: $subject, k: 3, at: $at) { text hops { ...Hop } } } ${HOP} ${GRANT}`;

function Escalation({ n }: { n: Entity }): JSX.Element {
  const at = useAt();
  const kind = subjectKindOf(n.kind);
  const q = useLiveQuery<{ attackPaths: AttackPathT[] }>(ATTACK, { subject: { kind, name: n.name, namespace: n.namespace || null }, at: at ?? n.revision }, { skip: !kind, keepPrevious: true });
  return (
    <Section title="Escalation paths to cluster-admin" testid="escalation">
      {q.error && !q.data ? <ErrorBox error={q.error} retry={q.reload} /> : !q.data ? <Loading label="Searching the attack graph…" /> : !q.data.attackPaths.length ? (
        <Empty>No path from this subject to cluster-admin at revision {n.revision}.</Empty>
      ) : (
        <AttackPaths paths={q.data.attackPaths} />
      )}
    </Section>
  );
}

function RoleBody({ n }: { n: Entity }): JSX.Element {
  const rules = n.rules ?? [];
  return (
    <div class="entity-body">
      <div class="cols">
        <Section title="Details" testid="details">
          <DL
            rows={[
              ['Kind', kindLabel(n.kind)],
              ['Namespace', n.namespaceNode ? <NodeLink node={n.namespaceNode} /> : n.kind === 'CLUSTER_ROLE' ? 'cluster-scoped' : null],
              ['Aggregation', n.aggregationSelectors?.length ? (
                <ul class="plain-list">
                  {n.aggregationSelectors.map((s) => (
                    <li><code>{s}</code></li>
                  ))}
                </ul>
              ) : null],
              ['Aggregates', n.aggregatedFrom?.length ? <NodeList nodes={n.aggregatedFrom} empty="" testid="aggregated-from" /> : null],
              ['Aggregated into', n.aggregatedInto?.length ? <NodeList nodes={n.aggregatedInto} empty="" testid="aggregated-into" /> : null],
            ]}
          />
        </Section>
        <Section title={<>Bound by<span class="count-pill">{n.bindings?.totalCount ?? 0}</span></>} testid="role-bindings">
          <NodeList nodes={n.bindings?.nodes ?? []} total={n.bindings?.totalCount} empty="No binding references this role: it grants nothing." />
        </Section>
      </div>
      <Section title={<>Rules<span class="count-pill">{rules.length}</span></>} testid="rules" actions={n.aggregatedFrom?.length ? <span class="muted small">after aggregation</span> : null}>
        {!rules.length ? <Empty>No rule.</Empty> : (
          <table class="table rules">
            <thead>
              <tr>
                <th>#</th>
                <th>Verbs</th>
                <th>API groups</th>
                <th>Resources</th>
                <th>Names</th>
                <th>Non-resource URLs</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {rules.map((r) => {
                const who = whoElseHref(r, n.kind === 'ROLE' ? n.namespace : null);
                return (
                  <tr id={`rule-${r.index}`} data-testid="rule-row">
                    <td class="muted">{r.index}</td>
                    <td><code class="verbs">{r.verbs.join(', ')}</code></td>
                    <td><code>{r.apiGroups.map((g) => (g === '' ? '""' : g)).join(', ')}</code></td>
                    <td><code>{r.resources.join(', ')}</code></td>
                    <td><code>{r.resourceNames.join(', ')}</code></td>
                    <td><code>{r.nonResourceURLs.join(', ')}</code></td>
                    <td>{who ? <Link href={who} class="small">who can?</Link> : null}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </Section>
      <MetaSection meta={n.meta} />
    </div>
  );
}

function BindingBody({ n }: { n: Entity }): JSX.Element {
  const subjects = n.subjects ?? [];
  return (
    <div class="entity-body">
      <div class="cols">
        <Section title="Grants" testid="details">
          <DL
            rows={[
              ['Kind', kindLabel(n.kind)],
              ['Namespace', n.namespaceNode ? <NodeLink node={n.namespaceNode} /> : 'cluster-wide: applies in every namespace'],
              ['Role reference', n.roleRef ? <><KindBadge kind={n.roleRef.kind} /> <Name text={n.roleRef.name} /></> : null],
              ['Role', n.role ? <NodeLink node={n.role} testid="binding-role" /> : (
                <span class="warn" data-testid="dangling">The role does not exist: this binding grants nothing until it is created.</span>
              )],
            ]}
          />
          {n.role && n.kind === 'ROLE_BINDING' && n.role.kind === 'CLUSTER_ROLE' ? (
            <p class="muted small">A RoleBinding of a ClusterRole grants the ClusterRole's rules in {n.namespace} only.</p>
          ) : null}
        </Section>
        <Section title={<>Subjects<span class="count-pill">{subjects.length}</span></>} testid="binding-subjects">
          {!subjects.length ? <p class="muted">No subject: the binding grants nothing.</p> : (
            <ul class="link-list">
              {subjects.map((s) => (
                <li>
                  {s.node ? <NodeLink node={s.node} /> : (
                    <span title="A subject kind RBAC does not know: it matches nobody">
                      <KindBadge kind={s.kind} /> <QName namespace={s.namespace} name={s.name} /> <span class="warn small">(matches nobody)</span>
                    </span>
                  )}
                </li>
              ))}
            </ul>
          )}
        </Section>
      </div>
      <MetaSection meta={n.meta} />
    </div>
  );
}

function NamespaceBody({ n }: { n: Entity }): JSX.Element {
  const byKind = new Map<string, NodeRef[]>();
  for (const o of n.objects?.nodes ?? []) {
    if (!byKind.has(o.kind)) byKind.set(o.kind, []);
    byKind.get(o.kind)!.push(o);
  }
  return (
    <div class="entity-body">
      {n.exists === false ? <p class="warn">Only objects in this namespace are known: its Namespace object was not indexed.</p> : null}
      <Section title={<>Objects<span class="count-pill">{n.objects?.totalCount ?? 0}</span></>} testid="objects" actions={
        <Link href={href('/who-can', { verb: 'get', resource: 'secrets', ns: n.name })} class="small">Who can read secrets here?</Link>
      }>
        {!byKind.size ? <Empty>No indexed object in this namespace.</Empty> : [...byKind.entries()].map(([k, xs]) => (
          <div class="kind-group">
            <h3><KindBadge kind={k} /> <span class="muted">{xs.length}</span></h3>
            <ul class="link-list inline">
              {xs.map((x) => (
                <li><NodeLink node={x} badge={false} /></li>
              ))}
            </ul>
          </div>
        ))}
        {(n.objects?.totalCount ?? 0) > (n.objects?.nodes.length ?? 0) ? <p class="muted small">{`Showing ${n.objects!.nodes.length} of ${n.objects!.totalCount}.`}</p> : null}
      </Section>
      <MetaSection meta={n.meta} />
    </div>
  );
}

function PodBody({ n }: { n: Entity }): JSX.Element {
  return (
    <div class="entity-body">
      <Section title="Details" testid="details">
        <DL
          rows={[
            ['Namespace', n.namespaceNode ? <NodeLink node={n.namespaceNode} /> : null],
            ['Runs as', n.serviceAccount ? <NodeLink node={n.serviceAccount} /> : <Name text={n.serviceAccountName ?? ''} />],
            ['Automount token', n.automountToken === null || n.automountToken === undefined ? 'unset (mounted)' : n.automountToken ? 'yes' : 'no'],
            ['Node', n.node ? <NodeLink node={n.node} /> : n.nodeName ? <Name text={n.nodeName} /> : <span class="muted">not scheduled</span>],
            ['Owner', n.owner ? <><span class="muted">{n.owner.kind}</span> <Name text={n.owner.name} /></> : null],
          ]}
        />
      </Section>
      <MetaSection meta={n.meta} />
    </div>
  );
}

function NodeBody({ n }: { n: Entity }): JSX.Element {
  return (
    <div class="entity-body">
      <Section title={<>Pods<span class="count-pill">{n.pods?.totalCount ?? 0}</span></>} testid="pods">
        <NodeList nodes={n.pods?.nodes ?? []} total={n.pods?.totalCount} empty="No pod runs on this node." />
      </Section>
      <MetaSection meta={n.meta} />
    </div>
  );
}

function SecretBody({ n }: { n: Entity }): JSX.Element {
  return (
    <div class="entity-body">
      <Section title="Details" testid="details">
        <DL
          rows={[
            ['Type', n.type ? <code>{n.type}</code> : null],
            ['ServiceAccount', n.serviceAccount ? <NodeLink node={n.serviceAccount} /> : n.serviceAccountName ? <Name text={n.serviceAccountName} /> : null],
            ['Who can read it', <Link href={href('/who-can', { verb: 'get', resource: 'secrets', ns: n.namespace, name: n.name })}>{`who can get ${qualified(n.namespace, n.name)}?`}</Link>],
          ]}
        />
        <p class="muted small">kiem indexes a Secret's metadata only, never its data.</p>
      </Section>
      <MetaSection meta={n.meta} />
    </div>
  );
}

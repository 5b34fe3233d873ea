// Can I: whether one subject may perform one request, with every grant path that allows it. The form lives in the
// URL: /can-i?kind=USER&name=&ns_subject=&groups=&verb=&group=&resource=&subresource=&ns=&resname=&url=
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { href, Link, navigate, useAt, useLocation } from '../router';
import { useLiveQuery } from '../data';
import { useQuery } from '../hooks';
import { GRANT, type GrantPath } from '../fragments';
import { ActionFields, actionFromParams, actionInput, actionText, type ActionState } from '../components/action';
import { GrantPathView } from '../components/grant';
import { AtNote, Empty, ErrorBox, KindBadge, Loading, lookupHref, Name } from '../components/ui';
import { splitList } from '../format';

const CAN = `query Can($subject: SubjectInput!, $action: ActionInput!, $at: Revision) {
  can(subject: $subject, action: $action, at: $at) {
    allowed superuser revision
    identity { user groups }
    reasons { ...Grant }
  }
}
${GRANT}`;

type CanData = { can: { allowed: boolean; superuser: boolean; revision: number; identity: { user: string; groups: string[] }; reasons: GrantPath[] } };

interface SubjectState {
  kind: string;
  name: string;
  nsSubject: string;
  groups: string;
}

const SUBJECT_KINDS: [string, string][] = [
  ['USER', 'User'],
  ['GROUP', 'Group'],
  ['SERVICE_ACCOUNT', 'ServiceAccount'],
];

function subjectFromParams(p: URLSearchParams): SubjectState {
  const k = p.get('kind') ?? 'USER';
  return { kind: SUBJECT_KINDS.some(([v]) => v === k) ? k : 'USER', name: p.get('name') ?? '', nsSubject: p.get('ns_subject') ?? '', groups: p.get('groups') ?? '' };
}

/** canIParams are the URL parameters of a can-i question. */
export function canIParams(s: SubjectState, a: ActionState): Record<string, string | null> {
  const sub = { kind: s.kind, name: s.name, ns_subject: s.kind === 'SERVICE_ACCOUNT' ? s.nsSubject || null : null, groups: s.kind === 'USER' ? s.groups || null : null };
  return a.url
    ? { ...sub, verb: a.verb, url: a.url }
    : { ...sub, verb: a.verb, group: a.group || null, resource: a.resource, subresource: a.subresource || null, ns: a.ns || null, resname: a.name || null };
}

const SUBJECTS = 'query Subjects($kind: Kind!, $at: Revision) { nodes(kind: $kind, at: $at, first: 1000) { nodes { name namespace } } }';

export function CanI(): JSX.Element {
  const loc = useLocation();
  const at = useAt();
  const search = loc.params.toString();
  const askedSubject = subjectFromParams(loc.params);
  const askedAction = actionFromParams(loc.params, 'resname');
  const ready = !!askedSubject.name && !!askedAction.verb && (!!askedAction.url || !!askedAction.resource);
  return (
    <div class="page" data-testid="can-i">
      <h1>Can … do …?</h1>
      {/* Keyed by the URL: Back, Forward and links reset the form to the question asked. */}
      <CanIForm key={search} initialSubject={askedSubject} initialAction={askedAction} at={at} />
      {ready ? <Decision s={askedSubject} a={askedAction} at={at} /> : <p class="muted">Choose a subject and a request.</p>}
    </div>
  );
}

function CanIForm({ initialSubject, initialAction, at }: { initialSubject: SubjectState; initialAction: ActionState; at: number | null }): JSX.Element {
  const [subject, setSubject] = useState(initialSubject);
  const [action, setAction] = useState(initialAction);
  const known = useQuery<{ nodes: { nodes: { name: string; namespace: string }[] } }>(SUBJECTS, { kind: subject.kind, at });
  const names = [...new Set((known.data?.nodes.nodes ?? []).filter((n) => subject.kind !== 'SERVICE_ACCOUNT' || !subject.nsSubject || n.namespace === subject.nsSubject).map((n) => n.name))];
  const saNamespaces = [...new Set((subject.kind === 'SERVICE_ACCOUNT' ? known.data?.nodes.nodes ?? [] : []).map((n) => n.namespace))].sort();
  const submit = (e: Event) => {
    e.preventDefault();
    navigate(href('/can-i', canIParams(subject, action)));
  };
  const setS = (patch: Partial<SubjectState>) => setSubject({ ...subject, ...patch });
  return (
      <form class="card ask-form" onSubmit={submit} data-testid="can-i-form">
        <div class="action-fields">
          <div class="field">
            <label for="cani-kind">Subject kind</label>
            <select id="cani-kind" data-testid="cani-kind" value={subject.kind} onChange={(e) => setS({ kind: (e.target as HTMLSelectElement).value, name: '', nsSubject: '' })}>
              {SUBJECT_KINDS.map(([v, l]) => (
                <option value={v}>{l}</option>
              ))}
            </select>
          </div>
          {subject.kind === 'SERVICE_ACCOUNT' ? (
            <div class="field">
              <label for="cani-ns-subject">Its namespace</label>
              <select id="cani-ns-subject" data-testid="cani-ns-subject" value={subject.nsSubject} onChange={(e) => setS({ nsSubject: (e.target as HTMLSelectElement).value })}>
                <option value="">choose…</option>
                {(subject.nsSubject && !saNamespaces.includes(subject.nsSubject) ? [subject.nsSubject, ...saNamespaces] : saNamespaces).map((n) => (
                  <option value={n}>{n}</option>
                ))}
              </select>
            </div>
          ) : null}
          <div class="field grow">
            <label for="cani-subject">Name</label>
            <input
              id="cani-subject"
              data-testid="cani-subject"
              list="cani-names"
              value={subject.name}
              spellcheck={false}
              placeholder={subject.kind === 'USER' ? 'jane@example.com' : subject.kind === 'GROUP' ? 'system:authenticated' : 'default'}
              onInput={(e) => setS({ name: (e.target as HTMLInputElement).value })}
            />
            <datalist id="cani-names">
              {names.slice(0, 500).map((n) => (
                <option value={n} />
              ))}
            </datalist>
          </div>
          {subject.kind === 'USER' ? (
            <div class="field grow">
              <label for="cani-groups">Groups</label>
              <input
                id="cani-groups"
                data-testid="cani-groups"
                value={subject.groups}
                spellcheck={false}
                placeholder="as declared by --groups-file"
                onInput={(e) => setS({ groups: (e.target as HTMLInputElement).value })}
              />
            </div>
          ) : null}
        </div>
        <ActionFields value={action} onChange={setAction} testidPrefix="cani-" />
        <div class="form-actions">
          <button type="submit" class="primary" data-testid="can-i-submit" disabled={!subject.name || !action.verb || (!action.url && !action.resource)}>
            Ask
          </button>
        </div>
      </form>
  );
}

function Decision({ s, a, at }: { s: SubjectState; a: ActionState; at: number | null }): JSX.Element {
  const groups = splitList(s.groups);
  const subject = {
    kind: s.kind,
    name: s.name,
    namespace: s.kind === 'SERVICE_ACCOUNT' ? s.nsSubject || null : null,
    groups: s.kind === 'USER' && groups.length ? groups : null,
  };
  const q = useLiveQuery<CanData>(CAN, { subject, action: actionInput(a), at });
  if (q.error && !q.data) return <ErrorBox error={q.error} retry={q.reload} />;
  if (!q.data) return <Loading label="Deciding…" />;
  const d = q.data.can;
  const who = s.kind === 'SERVICE_ACCOUNT' && s.nsSubject ? `${s.nsSubject}/${s.name}` : s.name;
  return (
    <section class="block answer" data-testid="can-i-answer">
      <div class={`decision ${d.allowed ? 'allowed' : 'denied'}`} data-testid="decision" data-allowed={String(d.allowed)}>
        <span class="decision-word">{d.allowed ? 'Yes' : 'No'}</span>
        <span>
          <KindBadge kind={s.kind} />{' '}
          <Link href={lookupHref(s.kind, s.name, s.kind === 'SERVICE_ACCOUNT' ? s.nsSubject : null)}>
            <Name text={who} />
          </Link>{' '}
          {d.allowed ? 'can' : 'cannot'} <span class="q">{actionText(a)}</span>
        </span>
        <AtNote revision={d.revision} />
      </div>
      {d.superuser ? (
        <p class="flag danger" data-testid="superuser">
          In system:masters: the apiserver allows everything before RBAC is consulted.
        </p>
      ) : null}
      <h3>Identity as evaluated</h3>
      <p data-testid="identity">
        user <Name text={d.identity.user} clip={false} />, groups{' '}
        {d.identity.groups.length ? (
          d.identity.groups.map((g, i) => (
            <>
              {i ? ', ' : ''}
              <Link href={lookupHref('GROUP', g)}>
                <Name text={g} />
              </Link>
            </>
          ))
        ) : (
          <span class="muted">none</span>
        )}
      </p>
      <h3>{d.allowed ? `Why: ${d.reasons.length === 1 ? '1 grant path' : `${d.reasons.length} grant paths`}` : 'Why not'}</h3>
      {d.reasons.length ? (
        <ul class="paths">
          {d.reasons.map((g) => (
            <li>
              <GrantPathView g={g} showSubject />
            </li>
          ))}
        </ul>
      ) : d.allowed ? null : (
        <Empty>No binding grants this to the user or any of its groups at revision {d.revision}.</Empty>
      )}
    </section>
  );
}

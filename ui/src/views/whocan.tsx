// Who can: every subject allowed a request, each with its grant paths and since when. The form lives in the URL
// (/who-can?verb=&group=&resource=&subresource=&ns=&name=&url=), so answers are deep links and Back works.
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { href, Link, navigate, seg, useAt, useLocation } from '../router';
import { usePaged } from '../data';
import { GRANT, type GrantPath, type NodeRef } from '../fragments';
import { ActionFields, actionFromParams, actionInput, actionText, type ActionState } from '../components/action';
import { drawHref, GrantPathView } from '../components/grant';
import { AtNote, Empty, ErrorBox, LoadMore, Loading, NodeLink } from '../components/ui';
import { QUESTIONS } from './home';
import { canIParams } from './cani';

const WHO_CAN = `query WhoCan($action: ActionInput!, $at: Revision, $after: String) {
  whoCan(action: $action, at: $at, first: 50, after: $after) {
    totalCount revision
    pageInfo { hasNextPage endCursor }
    nodes { superuser subject { id kind name namespace } paths { ...Grant } }
  }
}
${GRANT}`;

interface Entry {
  superuser: boolean;
  subject: NodeRef;
  paths: GrantPath[];
}

type WhoCanData = { whoCan: { totalCount: number; revision: number; pageInfo: { hasNextPage: boolean; endCursor: string | null }; nodes: Entry[] } };

function toParams(a: ActionState): Record<string, string | null> {
  return a.url
    ? { verb: a.verb, url: a.url }
    : { verb: a.verb, group: a.group || null, resource: a.resource, subresource: a.subresource || null, ns: a.ns || null, name: a.name || null };
}

export function WhoCan(): JSX.Element {
  const loc = useLocation();
  const at = useAt();
  const asked = actionFromParams(loc.params);
  const search = loc.params.toString();
  const ready = !!asked.verb && (!!asked.url || !!asked.resource);
  return (
    <div class="page" data-testid="who-can">
      <h1>Who can…</h1>
      {/* Keyed by the URL: Back, Forward and links reset the form to the question asked. */}
      <WhoCanForm key={search} initial={asked} />
      {ready ? <Answer a={asked} at={at} /> : (
        <section class="block">
          <p class="muted">Pick a verb and a resource, or start from a common question:</p>
          <ul class="questions">
            {QUESTIONS.filter((q) => q.testid !== 'q-anonymous').map((q) => (
              <li>
                <Link href={q.to()} data-testid={q.testid}>{q.label}</Link>
              </li>
            ))}
          </ul>
        </section>
      )}
    </div>
  );
}

function WhoCanForm({ initial }: { initial: ActionState }): JSX.Element {
  const [form, setForm] = useState<ActionState>(initial);
  const submit = (e: Event) => {
    e.preventDefault();
    navigate(href('/who-can', toParams(form)));
  };
  return (
    <form class="card ask-form" onSubmit={submit} data-testid="who-can-form">
      <ActionFields value={form} onChange={setForm} />
      <div class="form-actions">
        <button type="submit" class="primary" data-testid="who-can-submit" disabled={!form.verb || (!form.url && !form.resource)}>
          Ask
        </button>
      </div>
    </form>
  );
}

/** drawAnswerHref: the explorer at the first subject that holds the grant through a binding (not system:masters alone), its path drawn. */
function drawAnswerHref(items: Entry[]): string {
  const e = items.find((x) => !x.superuser && x.paths.length) ?? items[0];
  return e.paths.length ? drawHref(e.paths[0], e.subject.id) : href(`/explore/${seg(e.subject.id)}`);
}

function Answer({ a, at }: { a: ActionState; at: number | null }): JSX.Element {
  const p = usePaged<WhoCanData, Entry>(WHO_CAN, { action: actionInput(a), at }, (d) => d.whoCan);
  if (p.error && !p.data) return <ErrorBox error={p.error} retry={p.reload} />;
  if (!p.data) return <Loading label="Finding every subject allowed…" />;
  const total = p.totalCount ?? 0;
  return (
    <section class="block answer" data-testid="who-can-answer">
      <header class="block-head">
        <h2 data-testid="who-can-total">
          {total === 1 ? '1 subject' : `${total.toLocaleString()} subjects`} can <span class="q">{actionText(a)}</span>
        </h2>
        <div class="block-actions">
          <AtNote revision={p.revision} />
          {p.loading ? <span class="muted small">Refreshing…</span> : null}
          {p.items.length ? (
            <Link href={drawAnswerHref(p.items)} data-testid="draw-in-explorer" class="button" title="The first subject in the explorer, with its grant path drawn; each path below has its own draw link">
              Draw in explorer
            </Link>
          ) : null}
        </div>
      </header>
      <p class="muted small">
        Subjects as bindings name them: a group stands for all its members. system:masters bypasses RBAC and is always listed first.
      </p>
      {!p.items.length ? (
        <Empty>Nobody can {actionText(a)} at revision {p.revision}.</Empty>
      ) : (
        <ul class="entries">
          {p.items.map((e) => (
            <li class={`entry ${e.superuser ? 'superuser' : ''}`} data-testid="who-can-entry" data-subject={e.subject.name}>
              <div class="entry-head">
                <NodeLink node={e.subject} testid="who-can-subject" />
                {e.superuser ? (
                  <span class="flag danger" data-testid="superuser" title="Members of system:masters are allowed everything before RBAC is consulted">
                    superuser · bypasses RBAC
                  </span>
                ) : null}
                <span class="entry-actions small">
                  <Link href={href(`/explore/${seg(e.subject.id)}`)}>Explore</Link>
                  {' · '}
                  <Link href={href('/can-i', canIParams({ kind: e.subject.kind, name: e.subject.name, nsSubject: e.subject.namespace, groups: '' }, a))}>Can-I</Link>
                </span>
              </div>
              <ul class="paths">
                {e.paths.map((g) => (
                  <li>
                    <GrantPathView g={g} from={e.subject.id} />
                  </li>
                ))}
              </ul>
            </li>
          ))}
        </ul>
      )}
      <LoadMore shown={p.items.length} total={p.totalCount} hasMore={p.hasMore} loading={p.loadingMore} onMore={p.loadMore} noun="subjects" />
    </section>
  );
}

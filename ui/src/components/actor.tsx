// Who made a change, as audit events tell: "changed by alice (as impersonated by bob)", with the groups, user agent,
// source IP and audit ID on hover (title) and in a card opened by a click. Every field is an untrusted string from
// the apiserver's audit event and is rendered as text.
import type { JSX } from 'preact';
import type { ActorT } from '../fragments';
import { DL, Name } from './ui';

/** actorTitle is the actor as one line of plain text, for title attributes. */
export function actorTitle(a: ActorT): string {
  const parts = [a.impersonatedBy ? `${a.user} (as impersonated by ${a.impersonatedBy})` : a.user];
  if (a.groups.length) parts.push(`groups: ${a.groups.join(', ')}`);
  if (a.userAgent) parts.push(`user agent: ${a.userAgent}`);
  if (a.sourceIP) parts.push(`source IP: ${a.sourceIP}`);
  if (a.auditID) parts.push(`audit ID: ${a.auditID}`);
  return parts.join('\n');
}

/** ActorName: the user, and who impersonated it. */
export function ActorName({ actor: a }: { actor: ActorT }): JSX.Element {
  return (
    <span class="actor-name">
      <Name text={a.user} />
      {a.impersonatedBy ? (
        <span class="muted" data-testid="impersonated-by">
          {' '}(as impersonated by <Name text={a.impersonatedBy} />)
        </span>
      ) : null}
    </span>
  );
}

/** ActorView: an actor whose details open in a card below it (a native <details>: keyboard and screen readers work). */
export function ActorView({ actor: a }: { actor: ActorT }): JSX.Element {
  return (
    <details class="actor" data-testid="actor" data-user={a.user}>
      <summary title={actorTitle(a)}>
        <ActorName actor={a} />
      </summary>
      <div class="actor-details" data-testid="actor-details">
        <DL
          rows={[
            ['User', <Name text={a.user} clip={false} />],
            ['Impersonated by', a.impersonatedBy ? <Name text={a.impersonatedBy} clip={false} /> : null],
            ['Groups', a.groups.length ? (
              <ul class="chips" data-testid="actor-groups">
                {a.groups.map((g) => (
                  <li class="chip"><Name text={g} /></li>
                ))}
              </ul>
            ) : <span class="muted">none</span>],
            ['User agent', a.userAgent ? <code class="name" data-testid="actor-user-agent">{a.userAgent}</code> : <span class="muted">unknown</span>],
            ['Source IP', a.sourceIP ? <code data-testid="actor-source-ip">{a.sourceIP}</code> : <span class="muted">unknown</span>],
            ['Audit ID', a.auditID ? <code data-testid="actor-audit-id">{a.auditID}</code> : <span class="muted">unknown</span>],
          ]}
        />
      </div>
    </details>
  );
}

/** key: one user acting through one impersonator. */
function key(a: ActorT): string {
  return `${a.user}\u0000${a.impersonatedBy ?? ''}`;
}

/**
 * Actors: "changed by A, B" for the actors of one object's changes (oldest first). The same user acting twice is
 * shown once, with the details of its latest change and how many changes it made.
 */
export function Actors({ actors, label = 'changed by' }: { actors: ActorT[]; label?: string }): JSX.Element | null {
  if (!actors.length) return null;
  const latest = new Map<string, { actor: ActorT; count: number }>();
  for (const a of actors) {
    const k = key(a);
    latest.set(k, { actor: a, count: (latest.get(k)?.count ?? 0) + 1 });
  }
  const xs = [...latest.values()];
  return (
    <span class="actors small" data-testid="actors">
      <span class="muted">{label} </span>
      {xs.map((x, i) => (
        <>
          {i > 0 ? <span class="muted">, </span> : null}
          <ActorView actor={x.actor} />
          {x.count > 1 ? <span class="muted">{` ×${x.count}`}</span> : null}
        </>
      ))}
    </span>
  );
}

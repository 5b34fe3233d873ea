// Small building blocks every view uses: kind badges, names, entity links, loading/empty/error states, paging.
import type { ComponentChildren, JSX } from 'preact';
import { AuthError, RequestError } from '../api';
import { ago, errorText, severityLabel, when, whenFull } from '../format';
import { KINDS, kindColor, kindLabel, kindShort, normKind } from '../kinds';
import { entityHref, href, Link, seg } from '../router';
import { useNow } from '../data';
import type { NodeRef, ObjectRef, Since } from '../fragments';

/** KindBadge: the kind's colour and readable name. */
export function KindBadge({ kind, short }: { kind: string; short?: boolean }): JSX.Element {
  return (
    <span class="kind-badge" data-kind={normKind(kind)} style={{ backgroundColor: kindColor(kind) }} title={kindLabel(kind)}>
      {short ? kindShort(kind) : kindLabel(kind)}
    </span>
  );
}

// Bidirectional formatting characters: invisible, and able to make a name read as another ("Trojan Source").
const BIDI = /([\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069])/;
const BIDI_NAMES: Record<string, string> = {
  '\u061C': 'ALM', '\u200E': 'LRM', '\u200F': 'RLM', '\u202A': 'LRE', '\u202B': 'RLE', '\u202C': 'PDF', '\u202D': 'LRO',
  '\u202E': 'RLO', '\u2066': 'LRI', '\u2067': 'RLI', '\u2068': 'FSI', '\u2069': 'PDI',
};

/**
 * visibleText renders text with its bidi control characters neutralised and shown: each sits alone in an
 * isolated span (so it cannot reorder anything around it), which CSS labels (RLO, PDF…). The text content stays
 * exactly the stored name (copy, find and tests see it whole).
 */
export function visibleText(text: string): (string | JSX.Element)[] {
  if (!BIDI.test(text)) return [text];
  return text.split(BIDI).map((part, i) =>
    i % 2 === 1 ? (
      <span
        class="bidi-ctl"
        data-ctl={BIDI_NAMES[part] ?? '?'}
        title={`U+${part.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}: an invisible bidirectional control character, shown instead of applied`}
      >
        {part}
      </span>
    ) : (
      part
    ),
  );
}

/**
 * Name renders an untrusted name as text: isolated for bidi (nothing in it can reorder what follows), its bidi
 * control characters shown as marks, wrapped anywhere, and with clip shortened by CSS with the full text in the
 * title.
 */
export function Name({ text, clip = true, class: cls }: { text: string; clip?: boolean; class?: string }): JSX.Element {
  return (
    <bdi class={`name${clip ? ' clip' : ''}${cls ? ` ${cls}` : ''}`} title={text} data-name={text}>
      {text ? visibleText(text) : '(empty)'}
    </bdi>
  );
}

/** QName renders namespace/name with the namespace dimmed. */
export function QName({ namespace, name, clip = true }: { namespace?: string | null; name: string; clip?: boolean }): JSX.Element {
  return (
    <span class="qname">
      {namespace ? (
        <>
          <Name text={namespace} class="ns" clip={clip} />
          <span class="sep">/</span>
        </>
      ) : null}
      <Name text={name} clip={clip} />
    </span>
  );
}

/** NodeLink: a link to a node's page, with its kind badge and namespace/name. */
/** NodeLink links a node's page; at pins the revision (a node of a diff's from side), else ?at= rides along. */
export function NodeLink({ node, badge = true, testid, at }: { node: NodeRef; badge?: boolean; testid?: string; at?: number }): JSX.Element {
  return (
    <Link href={at === undefined ? entityHref(node.id) : href(`/e/${seg(node.id)}`, { at })} class="node-link" data-testid={testid ?? 'node-link'} data-kind={node.kind}>
      {badge ? <KindBadge kind={node.kind} /> : null}
      <QName namespace={node.namespace} name={node.name} />
    </Link>
  );
}

/** lookupHref is the page of an object named by kind (any spelling), namespace and name. */
export function lookupHref(kind: string, name: string, namespace?: string | null): string {
  return href('/lookup', { kind: normKind(kind), name, ns: namespace || null });
}

/**
 * RefLink: an object named by reference (no ID): a link through lookup for the graph's kinds, plain text for the
 * attack graph's own nodes (ClusterAdmin, sets with *).
 */
export function RefLink({ oref: r, node }: { oref: ObjectRef; node?: NodeRef | null }): JSX.Element {
  if (node) return <NodeLink node={node} />;
  const k = normKind(r.kind);
  const known = (KINDS as readonly string[]).includes(k);
  const set = r.name === '*' || r.namespace === '*';
  if (!known || set) {
    return (
      <span class="node-ref">
        <KindBadge kind={r.kind} />
        <QName namespace={r.namespace} name={r.name} />
      </span>
    );
  }
  return (
    <Link href={lookupHref(k, r.name, r.namespace)} class="node-link" data-testid="node-link" data-kind={k}>
      <KindBadge kind={k} />
      <QName namespace={r.namespace} name={r.name} />
    </Link>
  );
}

/** RevLink links to a revision's page (its changes). */
export function RevLink({ rev, label }: { rev: number; label?: string }): JSX.Element {
  return (
    <Link href={href(`/history/${seg(String(rev))}`)} class="rev-link" data-testid="rev-link">
      {label ?? `rev ${rev}`}
    </Link>
  );
}

/** Time renders a time relative to now, with the absolute time as its title. */
export function Time({ time, abs }: { time: string | null | undefined; abs?: boolean }): JSX.Element {
  const now = useNow();
  if (!time) return <span class="muted">—</span>;
  return (
    <time dateTime={time} title={whenFull(time)}>
      {abs ? when(time) : ago(time, now)}
    </time>
  );
}

/** SinceView: since when a grant holds: the revision it appeared at and how long ago. */
export function SinceView({ since }: { since: Since | null | undefined }): JSX.Element {
  if (!since) return <span class="since muted" data-testid="since">since: unknown</span>;
  return (
    <span class="since" data-testid="since" title={since.atHorizon ? 'The grant already held at the oldest retained revision: it may be older.' : undefined}>
      {since.atHorizon ? 'since at least ' : 'since '}
      <RevLink rev={since.revision} /> · <Time time={since.time} />
    </span>
  );
}

export function SeverityBadge({ severity }: { severity: string }): JSX.Element {
  return (
    <span class={`sev sev-${severity.toLowerCase()}`} data-testid="severity">
      {severityLabel(severity)}
    </span>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }): JSX.Element {
  return (
    <div class="state loading" role="status" aria-live="polite" data-testid="loading">
      <span class="spinner" aria-hidden="true" />
      {label}
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }): JSX.Element {
  return (
    <div class="state empty" data-testid="empty">
      {children}
    </div>
  );
}

/** ErrorBox shows an error with a retry; a refused token is handled by the shell (back to sign-in). */
export function ErrorBox({ error, retry, title = 'Something went wrong' }: { error: Error; retry?: () => void; title?: string }): JSX.Element {
  const messages = error instanceof RequestError ? error.errors.map((e) => e.message) : [errorText(error)];
  return (
    <div class="state error" role="alert" data-testid="error">
      <strong>{error instanceof AuthError ? 'Not signed in' : title}</strong>
      {messages.map((m) => (
        <pre class="error-text">{m}</pre>
      ))}
      {retry ? (
        <button type="button" onClick={retry}>
          Retry
        </button>
      ) : null}
    </div>
  );
}

/** LoadMore: "Showing n of total" and a button for the next page. */
export function LoadMore({ shown, total, hasMore, loading, onMore, noun = 'items' }: { shown: number; total: number | null; hasMore: boolean; loading: boolean; onMore: () => void; noun?: string }): JSX.Element | null {
  if (!hasMore && (total === null || total <= shown)) return shown > 0 ? <p class="muted small">{`${shown.toLocaleString()} ${noun}`}</p> : null;
  return (
    <div class="load-more">
      <span class="muted small">{total !== null ? `Showing ${shown.toLocaleString()} of ${total.toLocaleString()} ${noun}` : `Showing ${shown.toLocaleString()} ${noun}`}</span>
      {hasMore ? (
        <button type="button" onClick={onMore} disabled={loading} data-testid="load-more">
          {loading ? 'Loading more…' : 'Load more'}
        </button>
      ) : null}
    </div>
  );
}

/** Section: a titled block of a page. */
export function Section({ title, children, actions, testid, id }: { title: ComponentChildren; children: ComponentChildren; actions?: ComponentChildren; testid?: string; id?: string }): JSX.Element {
  return (
    <section class="block" data-testid={testid} id={id}>
      <header class="block-head">
        <h2>{title}</h2>
        {actions ? <div class="block-actions">{actions}</div> : null}
      </header>
      {children}
    </section>
  );
}

/** Labels renders key=value pairs as chips. */
export function Labels({ labels }: { labels: { key: string; value: string }[] }): JSX.Element {
  if (!labels.length) return <span class="muted">none</span>;
  return (
    <ul class="chips">
      {labels.map((l) => (
        <li class="chip" title={`${l.key}=${l.value}`}>
          <bdi class="name">{l.key}</bdi>
          {l.value ? (
            <>
              =<bdi class="name">{l.value}</bdi>
            </>
          ) : null}
        </li>
      ))}
    </ul>
  );
}

/** DL: a definition list of label → value rows (null values are skipped). */
export function DL({ rows }: { rows: [string, ComponentChildren][] }): JSX.Element {
  return (
    <dl class="dl">
      {rows
        .filter(([, v]) => v !== null && v !== undefined && v !== false)
        .map(([k, v]) => (
          <>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </>
        ))}
    </dl>
  );
}

/** AtNote: "at revision N" for headings, naming the revision an answer was computed at. */
export function AtNote({ revision }: { revision: number | null | undefined }): JSX.Element | null {
  if (revision === null || revision === undefined) return null;
  return (
    <span class="at-note muted" data-testid="answer-revision">
      at revision {revision}
    </span>
  );
}

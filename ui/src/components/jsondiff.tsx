// Before/after of an object: a field-level diff (one row per changed leaf, by path) and the two JSON documents side
// by side. Values are rendered as text.
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';

type Json = unknown;

/** flatten maps a JSON value to its leaves by path (a.b[0].c); empty objects and arrays are leaves. */
export function flatten(v: Json, path = '', out = new Map<string, string>()): Map<string, string> {
  if (Array.isArray(v)) {
    if (!v.length) out.set(path || '(root)', '[]');
    v.forEach((x, i) => flatten(x, `${path}[${i}]`, out));
  } else if (v && typeof v === 'object') {
    const keys = Object.keys(v as Record<string, Json>);
    if (!keys.length) out.set(path || '(root)', '{}');
    for (const k of keys) flatten((v as Record<string, Json>)[k], path ? `${path}.${/^[A-Za-z_][\w-]*$/.test(k) ? k : JSON.stringify(k)}` : k, out);
  } else {
    out.set(path || '(root)', JSON.stringify(v));
  }
  return out;
}

export interface FieldChange {
  path: string;
  before: string | null;
  after: string | null;
}

export function fieldChanges(before: Json, after: Json): FieldChange[] {
  const a = before === null || before === undefined ? new Map<string, string>() : flatten(before);
  const b = after === null || after === undefined ? new Map<string, string>() : flatten(after);
  const out: FieldChange[] = [];
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(k) ?? null;
    const y = b.get(k) ?? null;
    if (x !== y) out.push({ path: k, before: x, after: y });
  }
  return out;
}

export function JsonDiff({ before, after }: { before: Json; after: Json }): JSX.Element {
  const [mode, setMode] = useState<'fields' | 'side'>(before && after ? 'fields' : 'side');
  const changes = fieldChanges(before, after);
  return (
    <div class="json-diff" data-testid="json-diff">
      <div class="seg-buttons small" role="group" aria-label="Diff view">
        <button type="button" class={mode === 'fields' ? 'on' : ''} aria-pressed={mode === 'fields'} onClick={() => setMode('fields')}>
          fields ({changes.length})
        </button>
        <button type="button" class={mode === 'side' ? 'on' : ''} aria-pressed={mode === 'side'} onClick={() => setMode('side')}>
          before / after
        </button>
      </div>
      {mode === 'fields' ? (
        changes.length ? (
          <table class="table compact field-diff" data-testid="field-diff">
            <thead>
              <tr>
                <th>Field</th>
                <th>Before</th>
                <th>After</th>
              </tr>
            </thead>
            <tbody>
              {changes.map((c) => (
                <tr>
                  <td><code class="name">{c.path}</code></td>
                  <td class={c.before === null ? 'muted' : 'lost-bg'}><code class="value">{c.before ?? '—'}</code></td>
                  <td class={c.after === null ? 'muted' : 'gained-bg'}><code class="value">{c.after ?? '—'}</code></td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <p class="muted small">No field differs.</p>
        )
      ) : (
        <div class="side-by-side">
          <div>
            <div class="muted small">before</div>
            <pre class="code" data-testid="json-before">{before === null || before === undefined ? '(none)' : JSON.stringify(before, null, 2)}</pre>
          </div>
          <div>
            <div class="muted small">after</div>
            <pre class="code" data-testid="json-after">{after === null || after === undefined ? '(none)' : JSON.stringify(after, null, 2)}</pre>
          </div>
        </div>
      )}
    </div>
  );
}

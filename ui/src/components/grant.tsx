// A grant path, binding → role → rule, with each step a link, the aggregation it came through, and since when it
// holds. Used by entity pages (effective permissions), who-can, can-i, findings and diffs.
import type { JSX } from 'preact';
import type { GrantPath, Rule } from '../fragments';
import { KindBadge, Name, NodeLink, SinceView, lookupHref } from './ui';
import { entityHref, href, Link, seg } from '../router';
import { normKind } from '../kinds';

/** RuleText renders a policy rule compactly: verbs on resources (groups, names, URLs). */
export function RuleText({ rule }: { rule: Rule }): JSX.Element {
  if (rule.nonResourceURLs.length) {
    return (
      <span class="rule-text" title={rule.text}>
        <span class="verbs">{rule.verbs.join(', ')}</span> on URLs <code>{rule.nonResourceURLs.join(', ')}</code>
      </span>
    );
  }
  const groups = rule.apiGroups.map((g) => (g === '' ? 'core' : g)).join(', ');
  return (
    <span class="rule-text" title={rule.text}>
      <span class="verbs">{rule.verbs.join(', ')}</span> on <code>{rule.resources.join(', ')}</code>
      {groups && groups !== 'core' ? <span class="muted"> ({groups})</span> : null}
      {rule.resourceNames.length ? (
        <span>
          {' '}
          named <code>{rule.resourceNames.join(', ')}</code>
        </span>
      ) : null}
    </span>
  );
}

/** ruleHref links to the rule's row on its role's page. */
export function ruleHref(roleId: string, index: number, at?: number): string {
  return `${at === undefined ? entityHref(roleId) : href(`/e/${seg(roleId)}`, { at })}#rule-${index}`;
}

/** drawHref: the explorer rooted at from, with the grant's path (from → group → binding → role → aggregated role) highlighted. */
export function drawHref(g: GrantPath, from: string): string {
  const ids = [from];
  if (g.subject.node && g.subject.node.id !== from) ids.push(g.subject.node.id);
  ids.push(g.binding.id, g.role.id);
  if (g.aggregatedFrom) ids.push(g.aggregatedFrom.id);
  return href(`/explore/${seg(from)}`, { path: ids.join(',') });
}

/** GrantPathView: binding → role → rule with links; at pins the links to a revision (a lost grant's objects are the diff's from side). */
export function GrantPathView({ g, namespace, showSubject, showSince = true, from, at }: { g: GrantPath; namespace?: string | null | undefined; showSubject?: boolean; showSince?: boolean; from?: string; at?: number }): JSX.Element {
  const subjectKind = normKind(g.subject.kind);
  return (
    <div class="grant" data-testid="grant-path" title={g.text}>
      {showSubject ? (
        <span class="hop">
          <span class="muted small">as</span>{' '}
          <Link href={lookupHref(subjectKind, g.subject.name, g.subject.namespace)} class="node-link" data-testid="node-link" data-kind={subjectKind}>
            <KindBadge kind={subjectKind} />
            <Name text={g.subject.namespace ? `${g.subject.namespace}/${g.subject.name}` : g.subject.name} />
          </Link>
        </span>
      ) : null}
      <span class="hop" data-testid="grant-binding">
        <NodeLink node={g.binding} at={at} />
      </span>
      <span class="arrow" aria-hidden="true">→</span>
      <span class="hop" data-testid="grant-role">
        <NodeLink node={g.role} at={at} />
        {g.aggregatedFrom ? (
          <span class="aggregated" data-testid="aggregated-from">
            {' '}
            aggregated from <NodeLink node={g.aggregatedFrom} at={at} />
          </span>
        ) : null}
      </span>
      <span class="arrow" aria-hidden="true">→</span>
      <span class="hop" data-testid="grant-rule">
        <Link href={ruleHref(g.role.id, g.rule.index, at)} class="rule-link">
          <RuleText rule={g.rule} />
        </Link>
      </span>
      {namespace !== undefined ? <span class="scope">{namespace === null ? 'cluster-wide' : <>in <Name text={namespace} /></>}</span> : null}
      {showSince ? <SinceView since={g.since} /> : null}
      {from ? (
        <Link href={drawHref(g, from)} class="small draw-link" data-testid="draw-path" title="Draw this path in the explorer">
          draw
        </Link>
      ) : null}
    </div>
  );
}

/** whoElseHref: who else may do what a rule allows (its first verb and resource), in namespace. */
export function whoElseHref(rule: Rule, namespace?: string | null): string | null {
  if (rule.nonResourceURLs.length) {
    const url = rule.nonResourceURLs[0];
    return href('/who-can', { verb: rule.verbs[0] === '*' ? 'get' : rule.verbs[0], url: url.replace(/\*$/, '') || '/' });
  }
  const verb = rule.verbs[0];
  const res = rule.resources[0];
  if (!verb || !res) return null;
  const [resource, sub] = res.split('/', 2);
  const group = rule.apiGroups[0] ?? '';
  return href('/who-can', {
    verb,
    resource,
    subresource: sub && sub !== '*' ? sub : null,
    group: group === '*' ? null : group || null,
    ns: namespace || null,
    name: rule.resourceNames[0] ?? null,
  });
}

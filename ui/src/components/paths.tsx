// Attack (escalation) paths: drawn as a graph by the explorer's PathGraph, and listed hop by hop with the grants
// behind each hop.
import type { JSX } from 'preact';
import { PathGraph } from '../graph/PathGraph';
import { entityHref, navigate } from '../router';
import type { AttackHop, AttackPathT } from '../fragments';
import { GrantPathView } from './grant';
import { Name, RefLink } from './ui';

type GraphPath = Parameters<typeof PathGraph>[0]['paths'][number];

function hopEnd(node: AttackHop['from'], ref: AttackHop['fromRef']): GraphPath['hops'][number] {
  return { id: node?.id ?? null, kind: node?.kind ?? ref.kind, name: node?.name ?? ref.name, namespace: node?.namespace ?? ref.namespace };
}

/** toGraphPaths maps attack paths (hops from → to) to PathGraph's paths (nodes, with a label per edge). */
export function toGraphPaths(paths: { hops: AttackHop[] }[]): GraphPath[] {
  return paths
    .filter((p) => p.hops.length)
    .map((p) => ({
      hops: [hopEnd(p.hops[0].from, p.hops[0].fromRef), ...p.hops.map((h) => hopEnd(h.to, h.toRef))],
      edgeLabels: p.hops.map((h) => edgeLabel(h)),
    }));
}

/** edgeLabel: the hop's edge in words, with where it applies. */
export function edgeLabel(h: AttackHop): string {
  const e = h.edge.replace(/^E-/, '').replace(/_/g, ' ').toLowerCase();
  return h.namespace ? `${e} (${h.namespace === '*' ? 'every namespace' : h.namespace})` : e;
}

/** PathsGraph draws paths; a click on a node opens its page. */
export function PathsGraph({ paths, height }: { paths: { hops: AttackHop[] }[]; height?: number }): JSX.Element {
  return (
    <div class="path-graph" data-testid="attack-graph">
      <PathGraph paths={toGraphPaths(paths)} onOpen={(id) => navigate(entityHref(id))} height={height} />
    </div>
  );
}

/** HopList lists the hops of one path with their evidence. */
export function HopList({ hops }: { hops: AttackHop[] }): JSX.Element {
  return (
    <ol class="hops" data-testid="hops">
      {hops.map((h) => (
        <li class="hop-row">
          <div class="hop-line">
            <RefLink oref={h.fromRef} node={h.from} />
            <span class={`edge ${h.potential ? 'potential' : ''}`} title={h.technique ? `MITRE ATT&CK ${h.technique}` : undefined}>
              —{edgeLabel(h)}
              {h.technique ? ` · ${h.technique}` : ''}→
            </span>
            <RefLink oref={h.toRef} node={h.to} />
          </div>
          {h.note ? <div class="small muted"><Name text={h.note} clip={false} /></div> : null}
          {h.potential ? <div class="small warn">Potential: depends on objects kiem cannot see (e.g. token Secrets when secret metadata is not indexed).</div> : null}
          {h.evidence.length ? (
            <ul class="paths">
              {h.evidence.map((g) => (
                <li>
                  <GrantPathView g={g} showSubject showSince={false} />
                </li>
              ))}
            </ul>
          ) : null}
          {h.partialEvidence.length ? (
            <ul class="paths">
              {h.partialEvidence.map((p) => (
                <li class="small">
                  <Name text={p.text} clip={false} />
                </li>
              ))}
            </ul>
          ) : null}
        </li>
      ))}
    </ol>
  );
}

/** AttackPaths: the graph of several paths and, per path, its text and hops. */
export function AttackPaths({ paths }: { paths: AttackPathT[] }): JSX.Element {
  return (
    <div class="attack-paths" data-testid="attack-paths">
      <PathsGraph paths={paths} height={Math.min(420, 150 + 70 * paths.length)} />
      {paths.map((p, i) => (
        <details class="attack-path" open={i === 0}>
          <summary>
            <span class="muted">Path {i + 1}:</span> <Name text={p.text} clip={false} />
          </summary>
          <HopList hops={p.hops} />
        </details>
      ))}
    </div>
  );
}

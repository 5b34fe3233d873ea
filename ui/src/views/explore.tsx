// The relationship explorer: /explore/:id?at=&kinds=&ns=&path=. It starts from one entity's neighbourhood and
// grows as the user expands nodes; it never asks for the whole graph. Filters, the highlighted path and the
// revision live in the URL so every view of the graph is a shareable link; what was expanded lives in the page
// (a time-travel step reloads the same expansions at the new revision).
import type { JSX } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { gql } from '../api';
import { SEARCH_QUERY, type SearchHit } from '../components/search';
import { Empty, ErrorBox, KindBadge, Loading, Name, QName } from '../components/ui';
import { ExplorerGraph, type GraphEdge, type GraphNode, type LayoutProgress, type Neighbour } from '../graph/explorer';
import { EDGE_STYLES, edgeStyle } from '../graph/style';
import { useQuery } from '../hooks';
import { KINDS, kindColor, kindLabel } from '../kinds';
import { entityHref, href, Link, navigate, seg, useAt, useLocation } from '../router';
import { useHead } from '../session';
import '../graph/explorer.css';

const NEIGHBOURHOOD = `query ExplorerNeighbourhood($id: ID!, $first: Int, $at: Revision) {
  neighbourhood(id: $id, depth: 1, first: $first, at: $at) {
    truncated
    revision
    nodes { id kind name namespace }
    edges { from to type }
  }
}`;

interface Neighbourhood {
  truncated: boolean;
  revision: number;
  nodes: GraphNode[];
  edges: GraphEdge[];
}

/** The server's default bound, and the most it allows when the user asks for the rest. */
const FIRST = 200;
const FIRST_MAX = 1000;

function listParam(params: URLSearchParams, name: string): string[] | null {
  const v = params.get(name);
  return v === null ? null : v.split(',').filter(Boolean);
}

/** Explore: the explorer on /explore/:id, or a search for where to start on /explore. */
export function Explore({ params }: { params: Record<string, string> }): JSX.Element {
  return params.id ? <Explorer id={params.id} /> : <ExploreStart />;
}

function ExploreStart(): JSX.Element {
  const at = useAt();
  const [q, setQ] = useState('');
  const [debounced, setDebounced] = useState('');
  useEffect(() => {
    const t = setTimeout(() => setDebounced(q.trim()), 200);
    return () => clearTimeout(t);
  }, [q]);
  const res = useQuery<{ search: { edges: SearchHit[] } }>(SEARCH_QUERY, { q: debounced, at, first: 12 }, { skip: !debounced });
  return (
    <section class="page narrow ex-start" data-testid="explorer-start">
      <h1>Explore relationships</h1>
      <p class="muted">
        Start from any user, group, ServiceAccount, role, binding, namespace, pod or node; expand what it relates to
        one hop at a time.
      </p>
      <input
        type="search"
        class="ex-start-input"
        placeholder="Search an entity to start from…"
        aria-label="Entity to start from"
        value={q}
        onInput={(e) => setQ(e.currentTarget.value)}
        data-testid="explorer-start-search"
        autoFocus
      />
      {res.error ? <ErrorBox error={res.error} retry={res.reload} /> : null}
      {debounced && res.loading && !res.data ? <Loading label="Searching…" /> : null}
      {debounced && res.data && !res.data.search.edges.length ? <Empty>Nothing matches “{debounced}”.</Empty> : null}
      {debounced && res.data ? (
        <ul class="ex-start-hits">
          {res.data.search.edges.map((hit) => (
            <li key={hit.node.id}>
              <Link href={href(`/explore/${seg(hit.node.id)}`)} class="node-link" data-testid="explorer-start-hit">
                <KindBadge kind={hit.node.kind} />
                <QName namespace={hit.node.namespace} name={hit.node.name} />
              </Link>
            </li>
          ))}
        </ul>
      ) : null}
    </section>
  );
}

type LoadState = { state: 'loading' } | { state: 'ready' } | { state: 'error'; error: Error };

interface Facets {
  kinds: Map<string, number>;
  namespaces: Map<string, number>;
}

function Explorer({ id }: { id: string }): JSX.Element {
  const loc = useLocation();
  const at = useAt();
  const kindsParam = loc.params.get('kinds');
  const nsParam = loc.params.get('ns');
  const pathParam = loc.params.get('path');

  const container = useRef<HTMLDivElement>(null);
  const graphRef = useRef<ExplorerGraph | null>(null);
  const [load, setLoad] = useState<LoadState>({ state: 'loading' });
  const [progress, setProgress] = useState<LayoutProgress | null>(null);
  const [, setVersion] = useState(0);
  const [selected, setSelected] = useState<string | null>(null);
  const [expanding, setExpanding] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [pathFrom, setPathFrom] = useState<string | null>(null);
  // Expansions in the order they were made (the root first), with how many nodes each may bring.
  const expanded = useRef(new Map<string, number>());
  const [truncated, setTruncated] = useState<string[]>([]);
  const [revision, setRevision] = useState<number | null>(null);
  const head = useHead();
  // Bumped whenever a (re)load settles, so the path effect can wait for the nodes it needs.
  const [generation, setGeneration] = useState(0);
  // Bumped by Retry after an error.
  const [attempt, setAttempt] = useState(0);
  const loadedRoot = useRef<string | null>(null);

  // The graph lives as long as the view: navigation between roots and revisions reuses it.
  useEffect(() => {
    const g = new ExplorerGraph(container.current!, {
      onSelect: setSelected,
      onExpand: (n) => void expandRef.current(n),
      onProgress: setProgress,
      onChange: () => setVersion((v) => v + 1),
      onError: (message) => setActionError(`The graph could not be laid out: ${message}`),
    });
    graphRef.current = g;
    // The selected node's position, for tests that click the canvas where sigma draws it.
    const el = container.current!;
    const off = g.onRender(() => {
      const p = g.selection ? g.viewportPosition(g.selection) : null;
      if (p) {
        el.dataset.selectedX = p.x.toFixed(1);
        el.dataset.selectedY = p.y.toFixed(1);
      } else {
        delete el.dataset.selectedX;
        delete el.dataset.selectedY;
      }
    });
    return () => {
      off();
      g.destroy();
      graphRef.current = null;
    };
  }, []);

  /** fetchAll loads the neighbourhood of every expansion at the current revision; the root must succeed. */
  async function fetchAll(ids: [string, number][], signal: AbortSignal) {
    const answers = await Promise.all(
      ids.map(([n, first], i) =>
        gql<{ neighbourhood: Neighbourhood }>(NEIGHBOURHOOD, { id: n, first, at }, signal).then(
          (d) => d.neighbourhood,
          // An expanded node may not exist at another revision: it simply drops out. The root may not.
          (e: Error) => {
            if (i === 0 || signal.aborted) throw e;
            return null;
          },
        ),
      ),
    );
    return answers;
  }

  // Load the root (a new :id) or reload every expansion (a new ?at=).
  useEffect(() => {
    const g = graphRef.current!;
    const ac = new AbortController();
    const fresh = loadedRoot.current !== id;
    if (fresh) {
      expanded.current = new Map([[id, FIRST]]);
      g.clear();
      setSelected(null);
      setPathFrom(null);
    }
    setLoad({ state: 'loading' });
    setActionError(null);
    const ids = [...expanded.current];
    fetchAll(ids, ac.signal).then(
      (answers) => {
        if (ac.signal.aborted) return;
        const nodes: GraphNode[] = [];
        const edges: GraphEdge[] = [];
        const cut: string[] = [];
        answers.forEach((a, i) => {
          if (!a) {
            expanded.current.delete(ids[i][0]);
            return;
          }
          nodes.push(...a.nodes);
          edges.push(...a.edges);
          if (a.truncated) cut.push(ids[i][0]);
        });
        loadedRoot.current = id;
        setTruncated(cut);
        setRevision(answers[0]?.revision ?? null);
        setLoad({ state: 'ready' });
        if (fresh || !g.stats().nodes) {
          g.clear();
          g.merge(nodes, edges);
          void g.layout();
        } else {
          void g.layout({ only: g.replace(nodes, edges) });
        }
        setGeneration((n) => n + 1);
      },
      (error: Error) => {
        if (ac.signal.aborted) return;
        loadedRoot.current = null;
        g.clear();
        setLoad({ state: 'error', error });
      },
    );
    return () => ac.abort();
  }, [id, at, attempt]);

  // One expansion at a time: a double-click and a button press must not race each other's layout bursts.
  const busy = useRef(false);
  // An expansion answered after a time-travel step belongs to the old revision: it is dropped.
  const atNow = useRef(at);
  atNow.current = at;
  async function expand(n: string, first = FIRST): Promise<void> {
    const g = graphRef.current;
    if (!g || busy.current) return;
    busy.current = true;
    setExpanding(n);
    setActionError(null);
    try {
      const d = await gql<{ neighbourhood: Neighbourhood }>(NEIGHBOURHOOD, { id: n, first, at });
      if (graphRef.current !== g || atNow.current !== at) return;
      expanded.current.set(n, first);
      setTruncated((t) => (d.neighbourhood.truncated ? [...new Set([...t, n])] : t.filter((x) => x !== n)));
      const added = g.merge(d.neighbourhood.nodes, d.neighbourhood.edges, n);
      const r = await g.layout({ only: added });
      // Bring the expansion into view when it landed off-screen (or under the side panel).
      if (!r.cancelled) g.fit({ ids: [n, ...added], ifOutside: true });
    } catch (e) {
      setActionError(`Could not expand: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      busy.current = false;
      setExpanding(null);
    }
  }
  // The graph's double-click handler outlives renders; it calls the latest expand through this ref.
  const expandRef = useRef(expand);
  expandRef.current = expand;

  // Filters come from the URL.
  useEffect(() => {
    const kinds = kindsParam === null ? null : new Set(kindsParam.split(',').filter(Boolean));
    const namespaces = nsParam === null ? null : new Set(nsParam.split(',').filter(Boolean));
    graphRef.current?.setFilter({ kinds, namespaces });
  }, [kindsParam, nsParam]);

  // The notes cover the top of the canvas and the side panel its right: framing and centring keep nodes clear
  // of them. Measured after every render, since either may have changed.
  const notes = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const stage = container.current?.getBoundingClientRect();
    if (!graphRef.current || !stage) return;
    const panel = container.current?.parentElement?.querySelector('.ex-panel')?.getBoundingClientRect();
    const top = notes.current?.childElementCount ? notes.current.getBoundingClientRect().bottom - stage.top : 0;
    // On narrow screens the panel sits at the bottom instead, and covers no column.
    const right = panel && panel.top < stage.top + stage.height / 2 ? stage.right - panel.left : 0;
    graphRef.current.setOcclusion({ top, right });
  });

  // A path from the URL (a deep link, or one the user asked for): highlighted at once; hops that are not loaded
  // are fetched with their neighbourhoods (as expansions, so time travel keeps them). A new path is framed once
  // it is laid out (this effect runs after the occlusion is measured, so the path bar is accounted for).
  const path = useMemo(() => listParam(loc.params, 'path'), [pathParam]);
  const framePath = useRef(pathParam !== null);
  useEffect(() => {
    const g = graphRef.current;
    if (!g || load.state !== 'ready') return;
    g.highlightPath(path);
    const frame = () => {
      if (!framePath.current || !path?.length) return;
      framePath.current = false;
      void g.whenLaidOut().then(() => g.fit({ ids: path }));
    };
    const missing = (path ?? []).filter((p) => !g.has(p));
    if (!missing.length) {
      frame();
      return;
    }
    const ac = new AbortController();
    Promise.all(
      missing.map((m) => gql<{ neighbourhood: Neighbourhood }>(NEIGHBOURHOOD, { id: m, first: FIRST, at }, ac.signal).then((d) => d.neighbourhood, () => null)),
    ).then((answers) => {
      if (ac.signal.aborted || graphRef.current !== g) return;
      const added: string[] = [];
      answers.forEach((a, i) => {
        if (!a) return;
        expanded.current.set(missing[i], FIRST);
        added.push(...g.merge(a.nodes, a.edges));
        if (a.truncated) setTruncated((t) => [...new Set([...t, missing[i]])]);
      });
      void g.layout({ only: added });
      frame();
    });
    return () => ac.abort();
  }, [path, generation]);

  const g = graphRef.current;
  const stats = g?.stats() ?? { nodes: 0, edges: 0, visibleNodes: 0, visibleEdges: 0, layingOut: false };
  const facets: Facets = g?.facets() ?? { kinds: new Map(), namespaces: new Map() };
  const kindSel = listParam(loc.params, 'kinds');
  const nsSel = listParam(loc.params, 'ns');

  const setParam = (name: string, values: string[] | null) => {
    navigate(href(loc.path, { ...Object.fromEntries(loc.params), [name]: values === null ? null : values.join(',') || ',' }), { replace: true });
  };
  const toggle = (name: 'kinds' | 'ns', all: string[], current: string[] | null, value: string) => {
    const on = new Set(current ?? all);
    if (on.has(value)) on.delete(value);
    else on.add(value);
    // Everything on is the same as no filter: keep the URL clean.
    setParam(name, all.every((v) => on.has(v)) ? null : [...on]);
  };
  const setPath = (ids: string[] | null) => {
    navigate(href(loc.path, { ...Object.fromEntries(loc.params), path: ids ? ids.join(',') : null }), { replace: true });
  };

  const presentKinds = KINDS.filter((k) => facets.kinds.has(k));
  const namespaces = [...facets.namespaces.keys()].sort();
  const filtered = stats.visibleNodes !== stats.nodes;
  const sel = selected && g ? g.node(selected) : null;

  const findPath = (from: string, to: string) => {
    const p = graphRef.current?.shortestPath(from, to);
    if (p) {
      setActionError(null);
      framePath.current = true;
      setPath(p);
    } else {
      setActionError('No path between these two among the loaded, visible nodes: expand more nodes or relax the filters.');
    }
  };

  return (
    <section class="ex" data-testid="explorer">
      <div class="ex-bar">
        <FindInGraph graph={g} onPick={(n) => g?.select(n, { center: true })} />
        <button type="button" onClick={() => g?.fit()} data-testid="explorer-fit" title="Frame the visible nodes">
          Fit
        </button>
        <button type="button" onClick={() => void g?.layout()} disabled={!stats.nodes} data-testid="explorer-relayout" title="Lay the whole graph out again">
          Re-layout
        </button>
        <span
          class="ex-status"
          data-testid="explorer-status"
          data-nodes={stats.visibleNodes}
          data-edges={stats.visibleEdges}
          data-total-nodes={stats.nodes}
          data-layout={stats.layingOut ? 'running' : 'idle'}
          data-revision={revision ?? ''}
          data-state={load.state}
          aria-live="polite"
        >
          {`${stats.visibleNodes.toLocaleString()} nodes · ${stats.visibleEdges.toLocaleString()} edges`}
          {filtered ? ` (of ${stats.nodes.toLocaleString()} loaded)` : ''}
          {revision !== null ? ` · revision ${revision}` : ''}
        </span>
        {at === null && revision !== null && head > revision && load.state === 'ready' ? (
          // Live, and the cluster moved on: offer the newer picture rather than redrawing under the user's hands.
          <button type="button" onClick={() => setAttempt((a) => a + 1)} data-testid="explorer-update" title="Reload the same expansions at the head; nodes keep their positions">
            Update to revision {head}
          </button>
        ) : null}
      </div>

      <div class="ex-body">
        <aside class="ex-side" aria-label="Legend and filters">
          <fieldset class="ex-group" data-testid="explorer-kinds">
            <legend>Kinds</legend>
            {presentKinds.map((k) => (
              <label class="ex-chip" key={k} data-testid={`explorer-kind-${k}`}>
                <input type="checkbox" checked={!kindSel || kindSel.includes(k)} onChange={() => toggle('kinds', presentKinds, kindSel, k)} />
                <span class="ex-swatch" style={{ backgroundColor: kindColor(k) }} aria-hidden="true" />
                {kindLabel(k)}
                <span class="ex-count">{facets.kinds.get(k)}</span>
              </label>
            ))}
            {kindSel ? (
              <button type="button" class="link-button" onClick={() => setParam('kinds', null)}>
                Show all kinds
              </button>
            ) : null}
          </fieldset>
          {namespaces.length ? (
            <fieldset class="ex-group ex-ns" data-testid="explorer-namespaces">
              <legend>Namespaces</legend>
              <p class="muted small">Cluster-scoped nodes always show.</p>
              {namespaces.map((ns) => (
                <label class="ex-chip" key={ns} data-testid={`explorer-ns-${ns}`}>
                  <input type="checkbox" checked={!nsSel || nsSel.includes(ns)} onChange={() => toggle('ns', namespaces, nsSel, ns)} />
                  <Name text={ns} />
                  <span class="ex-count">{facets.namespaces.get(ns)}</span>
                </label>
              ))}
              {nsSel ? (
                <button type="button" class="link-button" onClick={() => setParam('ns', null)}>
                  Show all namespaces
                </button>
              ) : null}
            </fieldset>
          ) : null}
          <div class="ex-group" data-testid="explorer-edge-legend">
            <h3>Relationships</h3>
            <ul class="ex-edges">
              {Object.entries(EDGE_STYLES).map(([type, s]) => (
                <li key={type} title={s.meaning}>
                  <span class="ex-line" style={{ backgroundColor: s.color, height: `${Math.max(2, s.size * 2)}px` }} aria-hidden="true" />
                  {s.label}
                </li>
              ))}
            </ul>
            <p class="muted small">Arrows read as the relationship: binding → subject, binding → role, pod → node. Size grows with connections.</p>
          </div>
        </aside>

        <div class="ex-stage">
          <div
            class="ex-canvas"
            ref={container}
            role="img"
            aria-label="Relationship graph. From the keyboard: Find in graph selects a node; the side panel lists its relationships."
            data-testid="explorer-canvas"
          />
          {load.state === 'loading' ? (
            <div class="ex-overlay">
              <Loading label={stats.nodes ? 'Loading this revision…' : 'Loading the neighbourhood…'} />
            </div>
          ) : null}
          {load.state === 'error' ? (
            <div class="ex-overlay">
              <ErrorBox error={load.error} title="The neighbourhood could not be loaded" retry={() => setAttempt((x) => x + 1)} />
              <p>
                <Link href={href('/explore')}>Start from another entity</Link>
              </p>
            </div>
          ) : null}
          {load.state === 'ready' && stats.nodes === 1 ? (
            <div class="ex-overlay ex-overlay-note">
              <Empty>This entity relates to nothing at this revision.</Empty>
            </div>
          ) : null}
          {progress ? (
            <div class="ex-progress" data-testid="explorer-progress" role="status">
              Laying out {stats.nodes.toLocaleString()} nodes…
              <progress max={progress.total} value={progress.done} />
            </div>
          ) : null}
          <div class="ex-notes" ref={notes}>
            {truncated.map((t) => (
              <Truncated key={t} id={t} graph={g} first={expanded.current.get(t) ?? FIRST} busy={expanding !== null} onMore={() => void expand(t, FIRST_MAX)} />
            ))}
            {actionError ? (
              <p class="ex-note warn" role="alert" data-testid="explorer-action-error">
                {actionError}
              </p>
            ) : null}
            {path?.length ? <PathBar path={path} graph={g} onClear={() => setPath(null)} /> : null}
          </div>
          {sel ? (
            <SidePanel
              node={sel}
              neighbours={g!.neighbours(sel.id)}
              expanded={expanded.current.has(sel.id)}
              expanding={expanding === sel.id}
              busy={expanding !== null}
              pathFrom={pathFrom && pathFrom !== sel.id ? g!.node(pathFrom) : null}
              isPathStart={pathFrom === sel.id}
              onExpand={() => void expand(sel.id)}
              onPathFrom={() => setPathFrom(sel.id)}
              onPathTo={() => pathFrom && findPath(pathFrom, sel.id)}
              onPick={(n) => g!.select(n, { center: true })}
              onClose={() => g!.select(null)}
            />
          ) : null}
        </div>
      </div>
    </section>
  );
}

function FindInGraph({ graph, onPick }: { graph: ExplorerGraph | null; onPick: (id: string) => void }): JSX.Element {
  const [q, setQ] = useState('');
  const hits = q && graph ? graph.find(q) : [];
  return (
    <div class="ex-find">
      <input
        type="search"
        placeholder="Find in graph…"
        aria-label="Find a loaded node"
        value={q}
        onInput={(e) => setQ(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && hits.length) {
            onPick(hits[0].id);
            setQ('');
          }
          if (e.key === 'Escape') setQ('');
        }}
        data-testid="explorer-find"
      />
      {q ? (
        <ul class="ex-find-hits">
          {hits.length ? (
            hits.map((h) => (
              <li key={h.id}>
                <button
                  type="button"
                  onClick={() => {
                    onPick(h.id);
                    setQ('');
                  }}
                  data-testid="explorer-find-hit"
                >
                  <KindBadge kind={h.kind} />
                  <QName namespace={h.namespace} name={h.name} />
                </button>
              </li>
            ))
          ) : (
            <li class="muted small">No loaded node matches.</li>
          )}
        </ul>
      ) : null}
    </div>
  );
}

function Truncated({ id, graph, first, busy, onMore }: { id: string; graph: ExplorerGraph | null; first: number; busy: boolean; onMore: () => void }): JSX.Element {
  const n = graph?.node(id);
  return (
    <p class="ex-note" data-testid="explorer-truncated">
      The neighbourhood of <Name text={n?.name ?? id} /> was cut at {first.toLocaleString()} nodes.{' '}
      {first < FIRST_MAX ? (
        <button type="button" class="link-button" onClick={onMore} disabled={busy}>
          Load up to {FIRST_MAX.toLocaleString()}
        </button>
      ) : (
        'Expand its neighbours to see more.'
      )}
    </p>
  );
}

function PathBar({ path, graph, onClear }: { path: string[]; graph: ExplorerGraph | null; onClear: () => void }): JSX.Element {
  return (
    <div class="ex-note ex-path" data-testid="explorer-path" data-hops={path.length}>
      <strong>Path</strong>
      <ol>
        {path.map((p) => {
          const n = graph?.node(p);
          return (
            <li key={p}>
              {n ? (
                <button type="button" class="link-button" onClick={() => graph?.select(p, { center: true })}>
                  <KindBadge kind={n.kind} short />
                  <Name text={n.name} />
                </button>
              ) : (
                <span class="muted">not loaded</span>
              )}
            </li>
          );
        })}
      </ol>
      <button type="button" onClick={onClear} data-testid="explorer-path-clear">
        Clear
      </button>
    </div>
  );
}

interface SidePanelProps {
  node: GraphNode & { degree: number };
  neighbours: Neighbour[];
  expanded: boolean;
  expanding: boolean;
  busy: boolean;
  pathFrom: GraphNode | null;
  isPathStart: boolean;
  onExpand: () => void;
  onPathFrom: () => void;
  onPathTo: () => void;
  onPick: (id: string) => void;
  onClose: () => void;
}

const SHOWN_NEIGHBOURS = 60;

function SidePanel(p: SidePanelProps): JSX.Element {
  const n = p.node;
  const shown = p.neighbours.filter((m) => m.visible);
  const hidden = p.neighbours.length - shown.length;
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && p.onClose();
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [p.onClose]);
  return (
    <aside class="ex-panel" aria-label="Selected node" data-testid="explorer-panel" data-id={n.id}>
      <header>
        <KindBadge kind={n.kind} />
        <button type="button" class="ex-close" onClick={p.onClose} aria-label="Close" title="Close (Esc)">
          ×
        </button>
      </header>
      <h2 class="ex-name" data-testid="explorer-selected-name">
        <Name text={n.name} clip={false} />
      </h2>
      {n.namespace ? (
        <p class="muted">
          namespace <Name text={n.namespace} />
        </p>
      ) : null}
      <div class="ex-actions">
        <button type="button" onClick={p.onExpand} disabled={p.busy} data-testid="explorer-expand">
          {p.expanding ? 'Expanding…' : p.expanded ? 'Expand again' : 'Expand'}
        </button>
        <Link href={entityHref(n.id)} class="button" data-testid="explorer-open">
          Open page
        </Link>
        <Link href={href(`/explore/${seg(n.id)}`)} class="button" data-testid="explorer-from-here">
          Explore from here
        </Link>
      </div>
      <div class="ex-actions">
        <button type="button" onClick={p.onPathFrom} disabled={p.isPathStart} data-testid="explorer-path-from">
          {p.isPathStart ? 'Path starts here: select its end' : 'Path from here'}
        </button>
        {p.pathFrom ? (
          <button type="button" onClick={p.onPathTo} data-testid="explorer-path-to">
            Path from <Name text={p.pathFrom.name} /> to here
          </button>
        ) : null}
      </div>
      <h3>
        {p.neighbours.length.toLocaleString()} loaded relationship{p.neighbours.length === 1 ? '' : 's'}
        {hidden ? `, ${hidden.toLocaleString()} hidden by the filters` : ''}
      </h3>
      <ul class="ex-neighbours">
        {shown.slice(0, SHOWN_NEIGHBOURS).map((m) => (
          <li key={`${m.id}:${m.edgeType}:${m.direction}`}>
            <span class="ex-rel" style={{ color: edgeStyle(m.edgeType).color }} title={edgeStyle(m.edgeType).meaning}>
              {m.direction === 'out' ? '→' : '←'} {edgeStyle(m.edgeType).label}
            </span>
            <button type="button" class="link-button" onClick={() => p.onPick(m.id)}>
              <KindBadge kind={m.kind} short />
              <QName namespace={m.namespace} name={m.name} />
            </button>
          </li>
        ))}
      </ul>
      {shown.length > SHOWN_NEIGHBOURS ? (
        <p class="muted small">and {(shown.length - SHOWN_NEIGHBOURS).toLocaleString()} more in the graph</p>
      ) : null}
    </aside>
  );
}

// ExplorerGraph is the relationship explorer without any UI framework: a graphology graph of what has been
// loaded, drawn by sigma (WebGL, so thousands of nodes pan smoothly) and laid out by the layout worker. The
// Preact view (views/explore.tsx) wraps it; it needs nothing but a container element and the worker script.
//
// Everything the user toggles (filters, hover, selection, a highlighted path) is applied by sigma's reducers at
// render time: the graph itself only changes when data arrives, so filtering 5,000 nodes rebuilds nothing.
import Graph, { UndirectedGraph } from 'graphology';
import { bidirectional } from 'graphology-shortest-path/unweighted';
import Sigma from 'sigma';
import type { Settings } from 'sigma/settings';
import type { CameraState, EdgeDisplayData, NodeDisplayData, PartialButFor } from 'sigma/types';
import { kindColor, kindLabel } from '../kinds';
import { canvasLabel } from './labels';
import type { LayoutReply, LayoutRequest } from './protocol';
import { edgeStyle, nodeSize, sizeScale } from './style';

export interface GraphNode {
  id: string;
  kind: string;
  name: string;
  namespace: string;
}

export interface GraphEdge {
  from: string;
  to: string;
  type: string;
}

/** A filter shows the nodes of the listed kinds and namespaces; null lists everything. */
export interface ExplorerFilter {
  kinds: ReadonlySet<string> | null;
  /**
   * Namespaced objects outside these namespaces are hidden, and so are the Namespace nodes of other namespaces.
   * Cluster-scoped nodes (ClusterRoles, their bindings, users, groups, Nodes) stay: they are what links
   * namespaces, and the kind filter hides them when they are not wanted.
   */
  namespaces: ReadonlySet<string> | null;
}

export interface ExplorerStats {
  nodes: number;
  edges: number;
  visibleNodes: number;
  visibleEdges: number;
  layingOut: boolean;
}

export interface LayoutProgress {
  done: number;
  total: number;
}

export interface LayoutResult {
  ms: number;
  iterations: number;
  /** A later layout (or clear) replaced this one before it finished. */
  cancelled: boolean;
}

export interface Neighbour extends GraphNode {
  edgeType: string;
  /** out: this node → the neighbour (as the edge type reads); in: the neighbour → this node. */
  direction: 'out' | 'in';
  /** False when the filter hides the neighbour. */
  visible: boolean;
}

export interface ExplorerOptions {
  /** The layout worker's script; kiem serves it at /assets/layout-worker.js. */
  workerUrl?: string;
  onSelect?: (id: string | null) => void;
  /** A double-click on a node: the view expands it. */
  onExpand?: (id: string) => void;
  onProgress?: (p: LayoutProgress | null) => void;
  /** The loaded graph, the filter or the layout state changed: stats() and facets() may answer differently. */
  onChange?: () => void;
  /** A layout failed; the graph stays usable where its nodes are. */
  onError?: (message: string) => void;
}

interface NodeAttrs {
  x: number;
  y: number;
  size: number;
  color: string;
  label: string;
  /** Kind and namespace, made safe for the canvas: the hover card's second line. */
  detail: string;
  kind: string;
  name: string;
  namespace: string;
}

interface EdgeAttrs {
  // Not "type": sigma reads an edge's type attribute as the name of the program that draws it.
  rel: string;
  color: string;
  size: number;
}

type NodeData = PartialButFor<NodeDisplayData, 'x' | 'y' | 'size' | 'label' | 'color'>;

interface PendingLayout {
  job: number;
  keys: string[];
  full: boolean;
  started: number;
  resolve: (r: LayoutResult) => void;
}

// Below this many nodes every label is drawn; above it, sigma's label grid picks the larger nodes per cell.
const ALL_LABELS_BELOW = 80;
// Above this many edges they are hidden while the camera moves: edges are most of what a frame draws, and a
// pan must stay fluid on integrated (or software) graphics. They come back as soon as the camera rests.
const HIDE_EDGES_ON_MOVE_ABOVE = 3000;
// Up to this many nodes a layout shows its intermediate positions.
const ANIMATE_BELOW = 2000;

/** rgb parses #rrggbb and rgb()/rgba() (what getComputedStyle answers) into channels. */
function rgb(color: string): [number, number, number] {
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})/i.exec(color);
  if (hex) return [parseInt(hex[1], 16), parseInt(hex[2], 16), parseInt(hex[3], 16)];
  const fn = /rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)/.exec(color);
  return fn ? [Number(fn[1]), Number(fn[2]), Number(fn[3])] : [128, 128, 128];
}

/** hash is FNV-1a: layouts start from positions derived from IDs, so the same graph lays out the same way. */
function hash(s: string, seed = 2166136261): number {
  let h = seed;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

/** unitPair is two independent numbers in [0, 1) derived from an ID (the second hash uses another seed). */
function unitPair(id: string): [number, number] {
  return [hash(id) / 2 ** 32, hash(id, 0x5bd1e995) / 2 ** 32];
}

export class ExplorerGraph {
  private readonly graph = new Graph<NodeAttrs, EdgeAttrs>({ type: 'directed', multi: true, allowSelfLoops: true });
  private readonly sigma: Sigma<NodeAttrs, EdgeAttrs>;
  private readonly worker: Worker;
  private readonly opts: ExplorerOptions;
  private readonly resizeObserver: ResizeObserver;
  private readonly themeQuery = window.matchMedia('(prefers-color-scheme: dark)');

  private filter: ExplorerFilter = { kinds: null, namespaces: null };
  private selected: string | null = null;
  private hovered: string | null = null;
  private dragging = false;
  private hoverSet = new Set<string>();
  private path: string[] = [];
  private pathNodes = new Set<string>();
  private pathEdges = new Set<string>();
  private jobs = 0;
  private pending: PendingLayout | null = null;
  /** whenLaidOut callers; a superseded layout leaves them waiting for the one that replaced it. */
  private idleWaiters: (() => void)[] = [];
  /** Once a full layout has framed the graph, the frame stays put: expansions must not shift the picture. */
  private framed = false;
  private occluded = { top: 0, right: 0 };
  private workerError: string | null = null;
  /** The page's colours, for what sigma paints on canvas (labels, hover cards). */
  private theme = { background: '#fff', foreground: '#111' };
  /** Faded colours by colour and amount, computed once per theme. */
  private dimmed = new Map<string, string>();

  constructor(container: HTMLElement, opts: ExplorerOptions = {}) {
    this.opts = opts;
    this.sigma = new Sigma(this.graph, container, {
      allowInvalidContainer: true,
      defaultEdgeType: 'arrow',
      renderEdgeLabels: false,
      zIndex: true,
      labelFont: 'system-ui, sans-serif',
      labelSize: 12,
      labelWeight: '500',
      labelDensity: 0.6,
      labelGridCellSize: 110,
      labelRenderedSizeThreshold: 9,
      minCameraRatio: 0.02,
      maxCameraRatio: 8,
      nodeReducer: (node, attrs) => this.reduceNode(node, attrs),
      edgeReducer: (edge, attrs) => this.reduceEdge(edge, attrs),
      defaultDrawNodeHover: (ctx, data, settings) => this.drawHover(ctx, data, settings),
      ...this.themeSettings(container),
    });
    this.bindEvents();
    this.worker = new Worker(opts.workerUrl ?? '/assets/layout-worker.js');
    this.worker.onmessage = (e: MessageEvent<LayoutReply>) => this.onLayoutMessage(e.data);
    // A worker that fails (its script did not load, or it threw) answers no later job either.
    this.worker.onerror = (e) => {
      this.workerError = `the layout worker failed: ${e.message || 'its script could not be loaded'}`;
      this.finishLayout(null, this.workerError);
    };
    this.resizeObserver = new ResizeObserver(() => this.sigma.scheduleRefresh());
    this.resizeObserver.observe(container);
    this.themeQuery.addEventListener('change', this.onThemeChange);
  }

  // ---- data ----

  /**
   * merge adds nodes and edges that are not loaded yet (edges whose ends are unknown are skipped) and returns the
   * IDs of the nodes it added. New nodes start near `near` (the node being expanded) or near a loaded neighbour,
   * so the layout burst that follows has little to move.
   */
  merge(nodes: GraphNode[], edges: GraphEdge[], near?: string): string[] {
    const added: string[] = [];
    const scale = this.typicalEdgeLength();
    const anchor = near && this.graph.hasNode(near) ? this.graph.getNodeAttributes(near) : null;
    const fresh = this.graph.order === 0;
    const spread = Math.sqrt(nodes.length) * 10;
    for (const n of nodes) {
      if (this.graph.hasNode(n.id)) continue;
      const [u, v] = unitPair(n.id);
      const angle = u * 2 * Math.PI;
      // A fresh graph starts as a disc of random-looking (but ID-determined) points; new nodes of an expansion
      // start in a ring around their anchor.
      const r = fresh || !anchor ? spread * Math.sqrt(v) : scale * (0.5 + v);
      const cx = anchor?.x ?? 0;
      const cy = anchor?.y ?? 0;
      this.graph.addNode(n.id, {
        x: cx + r * Math.cos(angle),
        y: cy + r * Math.sin(angle),
        size: nodeSize(0, 1),
        color: kindColor(n.kind),
        label: canvasLabel(n.name),
        detail: canvasLabel(n.namespace ? `${kindLabel(n.kind)} · ${n.namespace}` : kindLabel(n.kind), 60),
        kind: n.kind,
        name: n.name,
        namespace: n.namespace,
      });
      added.push(n.id);
    }
    for (const e of edges) {
      const key = `${e.from}\u0000${e.type}\u0000${e.to}`;
      if (this.graph.hasEdge(key) || !this.graph.hasNode(e.from) || !this.graph.hasNode(e.to)) continue;
      const style = edgeStyle(e.type);
      this.graph.addDirectedEdgeWithKey(key, e.from, e.to, { rel: e.type, color: style.color, size: style.size });
    }
    if (!anchor && !fresh) this.moveNearNeighbours(added);
    this.afterDataChange();
    return added;
  }

  /**
   * replace makes the loaded graph exactly nodes and edges (time travel: the same expansions at another
   * revision), keeping the positions of nodes that stay. It returns the IDs of the nodes it added.
   */
  replace(nodes: GraphNode[], edges: GraphEdge[]): string[] {
    const keepNodes = new Set(nodes.map((n) => n.id));
    const keepEdges = new Set(edges.map((e) => `${e.from}\u0000${e.type}\u0000${e.to}`));
    // Collected first: graphology's iterators must not see the graph change under them.
    for (const id of this.graph.filterNodes((id) => !keepNodes.has(id))) this.graph.dropNode(id);
    for (const key of this.graph.filterEdges((key) => !keepEdges.has(key))) this.graph.dropEdge(key);
    if (this.selected && !this.graph.hasNode(this.selected)) this.select(null);
    return this.merge(nodes, edges);
  }

  /** clear empties the graph and stops any layout. */
  clear(): void {
    this.cancelLayout();
    this.settleWaiters();
    this.graph.clear();
    if (this.selected) this.opts.onSelect?.(null);
    this.selected = null;
    this.hovered = null;
    this.hoverSet.clear();
    this.path = [];
    this.indexPath();
    this.framed = false;
    this.sigma.setCustomBBox(null);
    this.afterDataChange();
  }

  has(id: string): boolean {
    return this.graph.hasNode(id);
  }

  node(id: string): (GraphNode & { degree: number }) | null {
    if (!this.graph.hasNode(id)) return null;
    const a = this.graph.getNodeAttributes(id);
    return { id, kind: a.kind, name: a.name, namespace: a.namespace, degree: this.graph.degree(id) };
  }

  /** neighbours lists the loaded nodes related to id, with the edge that relates them, and whether it shows. */
  neighbours(id: string): Neighbour[] {
    if (!this.graph.hasNode(id)) return [];
    const out: Neighbour[] = [];
    const add = (other: string, rel: string, direction: 'out' | 'in') => {
      const a = this.graph.getNodeAttributes(other);
      out.push({ id: other, kind: a.kind, name: a.name, namespace: a.namespace, edgeType: rel, direction, visible: this.passes(a) });
    };
    this.graph.forEachOutEdge(id, (_e, attrs, _s, target) => add(target, attrs.rel, 'out'));
    this.graph.forEachInEdge(id, (_e, attrs, source) => add(source, attrs.rel, 'in'));
    return out;
  }

  /** find ranks loaded nodes whose name (or namespace/name) holds text: exact, then prefix, then substring. */
  find(text: string, limit = 8): GraphNode[] {
    const q = text.trim().toLowerCase();
    if (!q) return [];
    const hits: [number, GraphNode][] = [];
    this.graph.forEachNode((id, a) => {
      const name = a.name.toLowerCase();
      const full = a.namespace ? `${a.namespace}/${a.name}`.toLowerCase() : name;
      const rank = name === q || full === q ? 0 : name.startsWith(q) || full.startsWith(q) ? 1 : full.includes(q) ? 2 : -1;
      if (rank >= 0) hits.push([rank, { id, kind: a.kind, name: a.name, namespace: a.namespace }]);
    });
    hits.sort((a, b) => a[0] - b[0] || a[1].name.localeCompare(b[1].name));
    return hits.slice(0, limit).map(([, n]) => n);
  }

  /** facets counts the loaded nodes per kind and per namespace (for the filter chips). */
  facets(): { kinds: Map<string, number>; namespaces: Map<string, number> } {
    const kinds = new Map<string, number>();
    const namespaces = new Map<string, number>();
    this.graph.forEachNode((_id, a) => {
      kinds.set(a.kind, (kinds.get(a.kind) ?? 0) + 1);
      const ns = this.namespaceOf(a);
      if (ns) namespaces.set(ns, (namespaces.get(ns) ?? 0) + 1);
    });
    return { kinds, namespaces };
  }

  stats(): ExplorerStats {
    let visibleNodes = 0;
    let visibleEdges = 0;
    this.graph.forEachNode((_id, a) => {
      if (this.passes(a)) visibleNodes++;
    });
    this.graph.forEachEdge((_e, _a, _s, _t, sa, ta) => {
      if (this.passes(sa) && this.passes(ta)) visibleEdges++;
    });
    return { nodes: this.graph.order, edges: this.graph.size, visibleNodes, visibleEdges, layingOut: this.pending !== null };
  }

  // ---- what is shown ----

  setFilter(filter: ExplorerFilter): void {
    this.filter = filter;
    if (this.selected && !this.passes(this.graph.getNodeAttributes(this.selected))) this.select(null);
    this.sigma.refresh();
    this.opts.onChange?.();
  }

  /**
   * highlightPath dims everything but the given nodes and the edges between consecutive ones (in either
   * direction); null or an empty list ends the highlight. IDs that are not loaded are ignored.
   */
  highlightPath(ids: string[] | null): void {
    this.path = ids ?? [];
    this.indexPath();
    this.sigma.refresh();
  }

  /** indexPath resolves the highlighted path against what is loaded (again after every data change). */
  private indexPath(): void {
    const ids = this.path;
    this.pathNodes = new Set(ids.filter((id) => this.graph.hasNode(id)));
    this.pathEdges.clear();
    for (let i = 1; i < ids.length; i++) {
      const [a, b] = [ids[i - 1], ids[i]];
      if (!this.graph.hasNode(a) || !this.graph.hasNode(b)) continue;
      for (const e of [...this.graph.edges(a, b), ...this.graph.edges(b, a)]) this.pathEdges.add(e);
    }
  }

  /**
   * shortestPath is a shortest path between two loaded, visible nodes, reading edges in either direction: a
   * binding relates its subject to its role although both of its edges point away from it. Null: none loaded.
   */
  shortestPath(from: string, to: string): string[] | null {
    if (!this.graph.hasNode(from) || !this.graph.hasNode(to)) return null;
    const view = new UndirectedGraph({ multi: false, allowSelfLoops: false });
    this.graph.forEachNode((id, a) => {
      if (this.passes(a)) view.addNode(id);
    });
    this.graph.forEachEdge((_e, _a, s, t) => {
      if (s !== t && view.hasNode(s) && view.hasNode(t)) view.mergeEdge(s, t);
    });
    if (!view.hasNode(from) || !view.hasNode(to)) return null;
    return bidirectional(view, from, to);
  }

  /** select marks a node (null: none); with center the camera glides to it. */
  select(id: string | null, opts: { center?: boolean } = {}): void {
    const next = id && this.graph.hasNode(id) && this.passes(this.graph.getNodeAttributes(id)) ? id : null;
    if (next !== this.selected) {
      this.selected = next;
      this.sigma.refresh();
      this.opts.onSelect?.(next);
    }
    if (next && opts.center) {
      const d = this.sigma.getNodeDisplayData(next);
      if (d) void this.sigma.getCamera().animate(this.cameraAt(d.x, d.y, Math.min(this.sigma.getCamera().ratio, 0.5)), { duration: 400 });
    }
  }

  get selection(): string | null {
    return this.selected;
  }

  /**
   * setOcclusion says how many pixels along the top and the right of the container the view covers (notes, the
   * side panel): framing and centring keep nodes out from under them.
   */
  setOcclusion(o: { top: number; right: number }): void {
    this.occluded = o;
  }

  /**
   * fit frames nodes (default: every visible one). With ifOutside it only moves when one of them is out of
   * sight, so an expansion whose new nodes are already visible leaves the camera alone.
   */
  fit(opts: { ids?: Iterable<string>; ifOutside?: boolean; animate?: boolean } = {}): void {
    const ids = opts.ids ? [...opts.ids] : this.graph.filterNodes((_id, a) => this.passes(a));
    const { width, height } = this.sigma.getDimensions();
    const { top, right } = this.uncovered();
    let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
    let outside = false;
    for (const id of ids) {
      const d = this.graph.hasNode(id) ? this.sigma.getNodeDisplayData(id) : undefined;
      if (!d || d.hidden) continue;
      minX = Math.min(minX, d.x);
      maxX = Math.max(maxX, d.x);
      minY = Math.min(minY, d.y);
      maxY = Math.max(maxY, d.y);
      const v = this.sigma.framedGraphToViewport(d);
      outside ||= v.x < 0 || v.y < top || v.x > width - right || v.y > height;
    }
    if (minX === Infinity || (opts.ifOutside && !outside)) return;
    // Measure the box at ratio 1, then scale so it fills the uncovered part of the viewport with a margin.
    const cx = (minX + maxX) / 2;
    const cy = (minY + maxY) / 2;
    const probe = { x: cx, y: cy, ratio: 1, angle: 0 };
    const a = this.sigma.framedGraphToViewport({ x: minX, y: minY }, { cameraState: probe });
    const b = this.sigma.framedGraphToViewport({ x: maxX, y: maxY }, { cameraState: probe });
    const ratio = Math.max(Math.abs(b.x - a.x) / Math.max(width - right - 80, 80), Math.abs(b.y - a.y) / Math.max(height - top - 80, 80), 0.05);
    const state = this.cameraAt(cx, cy, ratio);
    if (opts.animate === false) this.sigma.getCamera().setState(state);
    else void this.sigma.getCamera().animate(state, { duration: 350 });
  }

  /** uncovered is the occlusion, bounded so at least half the viewport stays usable each way. */
  private uncovered(): { top: number; right: number } {
    const { width, height } = this.sigma.getDimensions();
    return { top: Math.min(this.occluded.top, height / 2), right: Math.min(this.occluded.right, width / 2) };
  }

  /** cameraAt is the camera state that shows framed point (x, y) at the centre of the uncovered viewport. */
  private cameraAt(x: number, y: number, ratio: number): CameraState {
    const state = { x, y, ratio, angle: 0 };
    const { top, right } = this.uncovered();
    if (!top && !right) return state;
    const { width, height } = this.sigma.getDimensions();
    const shifted = this.sigma.viewportToFramedGraph({ x: width / 2 + right / 2, y: height / 2 - top / 2 }, { cameraState: state });
    return { ...state, x: shifted.x, y: shifted.y };
  }

  /** viewportPosition is where a node is drawn, in CSS pixels from the container's top left. */
  viewportPosition(id: string): { x: number; y: number } | null {
    if (!this.graph.hasNode(id)) return null;
    const a = this.graph.getNodeAttributes(id);
    return this.sigma.graphToViewport({ x: a.x, y: a.y });
  }

  /** onRender calls fn after every frame (the view publishes where the selected node is drawn). */
  onRender(fn: () => void): () => void {
    this.sigma.on('afterRender', fn);
    return () => this.sigma.off('afterRender', fn);
  }

  // ---- layout ----

  /**
   * layout runs ForceAtlas2 then noverlap in the worker. With only, the other nodes keep their positions and
   * only these move (a short burst after an expansion); without, everything is laid out and framed anew.
   * Emits the performance measures kiem:layout (request to positions applied) and kiem:render (positions
   * applied to the first frame drawn with them).
   */
  layout(opts: { only?: Iterable<string> } = {}): Promise<LayoutResult> {
    // A burst that arrives while a full layout runs (an expansion during the first layout) would freeze the
    // unfinished picture: lay everything out again instead.
    const only = opts.only && !this.pending?.full ? new Set(opts.only) : null;
    this.cancelLayout();
    const keys = this.graph.nodes();
    const n = keys.length;
    if (n === 0 || (only && ![...only].some((id) => this.graph.hasNode(id)))) {
      return Promise.resolve({ ms: 0, iterations: 0, cancelled: false });
    }
    if (this.workerError) {
      this.opts.onError?.(this.workerError);
      return Promise.resolve({ ms: 0, iterations: 0, cancelled: false });
    }
    const index = new Map(keys.map((k, i) => [k, i]));
    const positions = new Float32Array(n * 2);
    const fixed = new Uint8Array(n);
    const sizes = new Float32Array(n);
    keys.forEach((k, i) => {
      const a = this.graph.getNodeAttributes(k);
      positions[2 * i] = a.x;
      positions[2 * i + 1] = a.y;
      sizes[i] = a.size;
      fixed[i] = only && !only.has(k) ? 1 : 0;
    });
    const edges = new Uint32Array(this.graph.size * 2);
    let j = 0;
    this.graph.forEachEdge((_e, _a, s, t) => {
      edges[j++] = index.get(s)!;
      edges[j++] = index.get(t)!;
    });
    // Enough iterations to untangle a fresh graph, fewer as Barnes-Hut iterations get costlier; a burst only
    // settles a few new nodes among fixed ones.
    const iterations = only ? 80 : n < 500 ? 400 : n < 2000 ? 250 : 160;
    const job = ++this.jobs;
    const { width, height } = this.sigma.getDimensions();
    // Drawing a large graph costs more than watching it settle is worth (and takes CPU from the worker).
    const animate = n <= ANIMATE_BELOW;
    const req: LayoutRequest = { type: 'layout', job, positions, fixed, sizes, edges, iterations, animate, viewport: Math.min(width, height) || 600 };
    return new Promise((resolve) => {
      this.pending = { job, keys, full: !only, started: performance.now(), resolve };
      this.worker.postMessage(req, [positions.buffer, fixed.buffer, sizes.buffer, edges.buffer]);
      this.opts.onProgress?.({ done: 0, total: iterations });
      this.opts.onChange?.();
    });
  }

  /** whenLaidOut resolves once no layout is running (at once when none is). */
  whenLaidOut(): Promise<void> {
    return this.pending ? new Promise((resolve) => this.idleWaiters.push(resolve)) : Promise.resolve();
  }

  private settleWaiters(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    waiters.forEach((fn) => fn());
  }

  private onLayoutMessage(msg: LayoutReply): void {
    const p = this.pending;
    if (!p || msg.job !== p.job) return;
    if (msg.type === 'error') {
      this.finishLayout(null, msg.message);
      return;
    }
    if (msg.positions) this.applyPositions(p.keys, msg.positions);
    if (msg.type === 'progress') {
      this.opts.onProgress?.({ done: msg.done, total: msg.total });
      return;
    }
    this.finishLayout(msg.iterations, null);
  }

  private finishLayout(iterations: number | null, error: string | null): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    const end = performance.now();
    if (error !== null) {
      this.opts.onError?.(error);
    } else {
      const detail = { nodes: p.keys.length, edges: this.graph.size, iterations, full: p.full };
      performance.measure('kiem:layout', { start: p.started, end, detail });
      if (p.full) this.frame();
      this.sigma.once('afterRender', () => performance.measure('kiem:render', { start: end, end: performance.now(), detail }));
      this.sigma.scheduleRender();
    }
    this.opts.onProgress?.(null);
    this.opts.onChange?.();
    p.resolve({ ms: end - p.started, iterations: iterations ?? 0, cancelled: false });
    this.settleWaiters();
  }

  private cancelLayout(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    this.opts.onProgress?.(null);
    p.resolve({ ms: performance.now() - p.started, iterations: 0, cancelled: true });
  }

  private applyPositions(keys: string[], positions: Float32Array): void {
    const index = new Map(keys.map((k, i) => [k, i]));
    // One bulk update: sigma re-indexes once for the whole batch instead of once per node.
    this.graph.updateEachNodeAttributes(
      (key, a) => {
        const i = index.get(key);
        if (i !== undefined) {
          a.x = positions[2 * i];
          a.y = positions[2 * i + 1];
        }
        return a;
      },
      { attributes: ['x', 'y'] },
    );
  }

  /** frame fits the whole graph and locks that frame, so later bursts do not rescale what the user sees. */
  private frame(): void {
    this.sigma.setCustomBBox(null);
    this.sigma.refresh();
    const box = this.sigma.getBBox();
    this.sigma.setCustomBBox({ x: [...box.x], y: [...box.y] });
    this.sigma.getCamera().setState({ x: 0.5, y: 0.5, ratio: 1, angle: 0 });
    this.framed = true;
  }

  // ---- internals ----

  private namespaceOf(a: NodeAttrs): string {
    return a.kind === 'NAMESPACE' ? a.name : a.namespace;
  }

  private passes(a: NodeAttrs): boolean {
    if (this.filter.kinds && !this.filter.kinds.has(a.kind)) return false;
    const ns = this.namespaceOf(a);
    return !(this.filter.namespaces && ns && !this.filter.namespaces.has(ns));
  }

  private afterDataChange(): void {
    // Sizes follow degrees, which any added or removed edge changes. No attribute hint: sigma would take a
    // size-only update for one that needs no re-indexing, but sizes move labels and nodes just added are not
    // indexed yet.
    const scale = sizeScale(this.graph.order);
    this.graph.updateEachNodeAttributes((id, a) => {
      a.size = nodeSize(this.graph.degree(id), scale);
      return a;
    });
    this.indexPath();
    if (!this.framed) this.sigma.setCustomBBox(null);
    this.sigma.setSettings({
      // Label nodes of degree four or more (as the label grid leaves room), at any graph size.
      labelRenderedSizeThreshold: this.graph.order < ALL_LABELS_BELOW ? 0 : nodeSize(4, scale),
      hideEdgesOnMove: this.graph.size > HIDE_EDGES_ON_MOVE_ABOVE,
    });
    this.opts.onChange?.();
  }

  /** typicalEdgeLength is the median length of up to 200 loaded edges: how far apart related nodes sit. */
  private typicalEdgeLength(): number {
    const lengths: number[] = [];
    for (const { sourceAttributes: s, targetAttributes: t } of this.graph.edgeEntries()) {
      if (lengths.length >= 200) break;
      lengths.push(Math.hypot(s.x - t.x, s.y - t.y));
    }
    lengths.sort((a, b) => a - b);
    return lengths.length ? Math.max(lengths[lengths.length >> 1], 1) : 10;
  }

  /** moveNearNeighbours starts each added node next to a loaded neighbour, when it has one. */
  private moveNearNeighbours(added: string[]): void {
    const isNew = new Set(added);
    const scale = this.typicalEdgeLength();
    for (const id of added) {
      const anchor = this.graph.neighbors(id).find((n) => !isNew.has(n));
      if (!anchor) continue;
      const a = this.graph.getNodeAttributes(anchor);
      const [u, v] = unitPair(id);
      this.graph.mergeNodeAttributes(id, {
        x: a.x + scale * (0.5 + v) * Math.cos(u * 2 * Math.PI),
        y: a.y + scale * (0.5 + v) * Math.sin(u * 2 * Math.PI),
      });
    }
  }

  private reduceNode(id: string, a: NodeAttrs): Partial<NodeDisplayData> {
    if (!this.passes(a)) return { ...a, hidden: true };
    const out: Partial<NodeDisplayData> = { ...a, zIndex: 1 };
    const focus = this.hovered ? this.hoverSet : this.pathNodes.size ? this.pathNodes : null;
    if (focus && !focus.has(id)) {
      out.color = this.dim(a.color, 0.82);
      out.label = null;
      out.zIndex = 0;
    } else if (focus) {
      out.zIndex = 2;
      // Label the hovered node's neighbours too while they are few enough to read.
      out.forceLabel = id === this.hovered || !this.hovered || this.hoverSet.size <= 40;
    }
    if (id === this.selected) {
      out.highlighted = true;
      out.forceLabel = true;
      out.zIndex = 3;
    }
    return out;
  }

  private reduceEdge(edge: string, a: EdgeAttrs): Partial<EdgeDisplayData> {
    const [s, t] = this.graph.extremities(edge);
    if (!this.passes(this.graph.getNodeAttributes(s)) || !this.passes(this.graph.getNodeAttributes(t))) return { ...a, hidden: true };
    if (this.hovered) {
      return s === this.hovered || t === this.hovered ? { ...a, size: a.size + 1, zIndex: 1 } : { ...a, color: this.dim(a.color, 0.9), zIndex: 0 };
    }
    if (this.pathNodes.size) return this.pathEdges.has(edge) ? { ...a, size: 3, zIndex: 1 } : { ...a, color: this.dim(a.color, 0.9), zIndex: 0 };
    return a;
  }

  /** drawHover is the card under a hovered or selected node: its label and, smaller, its kind and namespace. */
  private drawHover(ctx: CanvasRenderingContext2D, data: NodeData, settings: Settings<NodeAttrs, EdgeAttrs>): void {
    // sigma 3.0.3 keeps its hovered node when the pointer leaves the container (it only emits leaveNode), and
    // would go on drawing its card: draw cards for our own hovered and selected nodes only.
    if (data.key !== this.hovered && data.key !== this.selected) return;
    const label = typeof data.label === 'string' ? data.label : '';
    const detail = typeof data.detail === 'string' ? data.detail : '';
    const size = settings.labelSize;
    const pad = 4;
    ctx.font = `600 ${size}px ${settings.labelFont}`;
    const w1 = ctx.measureText(label).width;
    ctx.font = `${size - 2}px ${settings.labelFont}`;
    const w2 = ctx.measureText(detail).width;
    const x = data.x + data.size + 4;
    const w = Math.max(w1, w2) + 2 * pad;
    const h = 2 * size + 3 * pad;
    const { background, foreground } = this.theme;
    ctx.beginPath();
    ctx.arc(data.x, data.y, data.size + 3, 0, 2 * Math.PI);
    ctx.fillStyle = background;
    ctx.fill();
    ctx.strokeStyle = data.color;
    ctx.lineWidth = 2;
    ctx.stroke();
    ctx.shadowColor = '#0006';
    ctx.shadowBlur = 6;
    ctx.fillStyle = background;
    ctx.fillRect(x, data.y - h / 2, w, h);
    ctx.shadowBlur = 0;
    ctx.strokeRect(x, data.y - h / 2, w, h);
    ctx.fillStyle = foreground;
    ctx.font = `600 ${size}px ${settings.labelFont}`;
    ctx.fillText(label, x + pad, data.y - h / 2 + pad + size * 0.85);
    ctx.font = `${size - 2}px ${settings.labelFont}`;
    ctx.fillText(detail, x + pad, data.y - h / 2 + 2 * pad + size * 1.85);
  }

  /**
   * dim fades a colour towards the background by t. Opaque on purpose: sigma's WebGL canvas composites
   * translucent colours as if premultiplied, which makes them glow instead of fade.
   */
  private dim(color: string, t: number): string {
    const key = `${color}/${t}`;
    let out = this.dimmed.get(key);
    if (!out) {
      const a = rgb(color);
      const b = rgb(this.theme.background);
      out = `#${a.map((v, i) => Math.round(v + (b[i] - v) * t).toString(16).padStart(2, '0')).join('')}`;
      this.dimmed.set(key, out);
    }
    return out;
  }

  /** themeSettings reads the page's colours (light or dark scheme) for labels and hover cards. */
  private themeSettings(container: HTMLElement): Partial<Settings<NodeAttrs, EdgeAttrs>> {
    const style = getComputedStyle(container);
    this.dimmed.clear();
    const bg = style.backgroundColor;
    this.theme = {
      foreground: style.color || '#111',
      background: bg && bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent' ? bg : this.themeQuery.matches ? '#111' : '#fff',
    };
    return { labelColor: { color: this.theme.foreground } };
  }

  private readonly onThemeChange = () => {
    this.sigma.setSettings(this.themeSettings(this.sigma.getContainer()));
    this.sigma.refresh();
  };

  private bindEvents(): void {
    this.sigma.on('clickNode', ({ node }) => this.select(node));
    this.sigma.on('doubleClickNode', (e) => {
      // A double-click on a node expands it instead of zooming.
      e.preventSigmaDefault();
      this.opts.onExpand?.(e.node);
    });
    this.sigma.on('clickStage', () => this.select(null));
    // While the stage is dragged the pointer sweeps over nodes: re-dimming the graph for each would cost a
    // full refresh per node crossed, in the middle of a pan.
    const captor = this.sigma.getMouseCaptor();
    captor.on('mousedown', () => {
      this.dragging = true;
    });
    captor.on('mouseup', () => {
      this.dragging = false;
    });
    this.sigma.on('enterNode', ({ node }) => {
      if (this.dragging) return;
      this.hovered = node;
      this.hoverSet = new Set([node, ...this.graph.neighbors(node)]);
      this.sigma.getContainer().style.cursor = 'pointer';
      this.sigma.scheduleRefresh();
    });
    this.sigma.on('leaveNode', () => {
      if (!this.hovered) return;
      this.hovered = null;
      this.hoverSet.clear();
      this.sigma.getContainer().style.cursor = '';
      this.sigma.scheduleRefresh();
    });
  }

  destroy(): void {
    this.cancelLayout();
    this.settleWaiters();
    this.worker.terminate();
    this.resizeObserver.disconnect();
    this.themeQuery.removeEventListener('change', this.onThemeChange);
    this.sigma.kill();
  }
}

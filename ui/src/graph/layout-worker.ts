// The explorer's layout, off the main thread so panning and clicking stay responsive while thousands of nodes
// settle. Built as its own script (/assets/layout-worker.js): kiem's CSP allows workers from 'self' only, which
// rules out the blob: worker graphology-layout-forceatlas2 ships.
//
// A job is ForceAtlas2 (Barnes-Hut above 2,000 nodes, where the exact O(n²) repulsion gets slow) for a number
// of iterations, then noverlap so discs do not cover each other. Above that size the Barnes-Hut approximation
// is coarser (theta 1 instead of 0.5): it halves the time of an iteration for a picture one cannot tell apart. Fixed nodes keep their positions throughout:
// an expansion lays out only the new nodes around a stable picture. The worker works in time slices and reports
// progress (with intermediate positions when asked, so a small graph visibly settles) between them; a newer job supersedes the
// running one at its next slice.
import Graph from 'graphology';
import { inferSettings } from 'graphology-layout-forceatlas2';
import { graphToByteArrays } from 'graphology-layout-forceatlas2/helpers.js';
import iterate from 'graphology-layout-forceatlas2/iterate.js';
import noverlap from 'graphology-layout-noverlap';
import type { LayoutReply, LayoutRequest } from './protocol';

// Matches graphology-layout-forceatlas2's node matrix: 10 floats per node, x and y first.
const PPN = 10;
const SLICE_MS = 50;
const BARNES_HUT_ABOVE = 2000;

const scope = self as unknown as DedicatedWorkerGlobalScope;
let latest = 0;

scope.onmessage = (e: MessageEvent<LayoutRequest>) => {
  latest = e.data.job;
  run(e.data).catch((err: unknown) => post({ type: 'error', job: e.data.job, message: err instanceof Error ? err.message : String(err) }));
};

function post(msg: LayoutReply): void {
  const buffers = msg.type !== 'error' && msg.positions ? [msg.positions.buffer] : [];
  scope.postMessage(msg, buffers);
}

// A MessageChannel round trip yields to queued messages (a superseding job) without the 4 ms clamp nested
// timers get.
const channel = new MessageChannel();
const pending: (() => void)[] = [];
channel.port1.onmessage = () => pending.shift()?.();
function yieldToMessages(): Promise<void> {
  return new Promise((resolve) => {
    pending.push(resolve);
    channel.port2.postMessage(null);
  });
}

function positionsOf(matrix: Float32Array, n: number): Float32Array {
  const out = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    out[2 * i] = matrix[i * PPN];
    out[2 * i + 1] = matrix[i * PPN + 1];
  }
  return out;
}

async function run(req: LayoutRequest): Promise<void> {
  const n = req.fixed.length;
  // Multi: two nodes may be related twice (different edge types); each edge pulls.
  const graph = new Graph({ type: 'directed', multi: true, allowSelfLoops: true });
  for (let i = 0; i < n; i++) {
    graph.addNode(String(i), { x: req.positions[2 * i], y: req.positions[2 * i + 1], size: req.sizes[i], fixed: req.fixed[i] === 1 });
  }
  for (let i = 0; i < req.edges.length; i += 2) graph.addEdge(String(req.edges[i]), String(req.edges[i + 1]));

  const matrices = graphToByteArrays(graph, () => 1);
  const settings = {
    linLogMode: false,
    // Hubs (a namespace, system:authenticated) share their attraction among their many edges instead of
    // pulling every neighbour into one knot around them.
    outboundAttractionDistribution: true,
    adjustSizes: false,
    edgeWeightInfluence: 1,
    ...inferSettings(n),
    barnesHutOptimize: n > BARNES_HUT_ABOVE,
    barnesHutTheta: n > BARNES_HUT_ABOVE ? 1 : 0.5,
  } as Required<ReturnType<typeof inferSettings>>;

  let done = 0;
  let slice = performance.now();
  while (done < req.iterations) {
    iterate(settings, matrices.nodes, matrices.edges);
    done++;
    if (done < req.iterations && performance.now() - slice > SLICE_MS) {
      post({ type: 'progress', job: req.job, done, total: req.iterations, positions: req.animate ? positionsOf(matrices.nodes, n) : null });
      await yieldToMessages();
      if (req.job !== latest) return;
      slice = performance.now();
    }
  }

  // noverlap works in graph units; the renderer will fit the graph's extent into the viewport, so a disc of r
  // pixels spans r × extent / viewport units.
  const pos = positionsOf(matrices.nodes, n);
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  for (let i = 0; i < n; i++) {
    minX = Math.min(minX, pos[2 * i]);
    maxX = Math.max(maxX, pos[2 * i]);
    minY = Math.min(minY, pos[2 * i + 1]);
    maxY = Math.max(maxY, pos[2 * i + 1]);
  }
  const unit = Math.max(maxX - minX, maxY - minY, 1) / Math.max(req.viewport, 1);
  graph.forEachNode((key, attr) => {
    const i = Number(key);
    attr.x = pos[2 * i];
    attr.y = pos[2 * i + 1];
  });
  noverlap.assign(graph, {
    // Each pass over thousands of discs costs tens of milliseconds; the first passes resolve most overlaps.
    maxIterations: n > BARNES_HUT_ABOVE ? 10 : 100,
    settings: { margin: 2 * unit, ratio: 1, gridSize: 20 },
    inputReducer: (_key, attr) => ({ x: attr.x, y: attr.y, size: (attr.size ?? 1) * unit }),
    // noverlap has no notion of fixed nodes: put them back, so only the new nodes make room.
    outputReducer: (key, attr) => (req.fixed[Number(key)] === 1 ? { x: req.positions[2 * Number(key)], y: req.positions[2 * Number(key) + 1] } : attr),
  });
  graph.forEachNode((key, attr) => {
    pos[2 * Number(key)] = attr.x;
    pos[2 * Number(key) + 1] = attr.y;
  });
  post({ type: 'done', job: req.job, positions: pos, iterations: done });
}

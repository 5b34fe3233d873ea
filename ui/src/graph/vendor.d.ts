// The ForceAtlas2 internals the layout worker drives directly (graphology-layout-forceatlas2 0.10.1, pinned):
// the matrices and the single-iteration step its own web worker uses. Iterating them in place keeps each node's
// convergence state between the worker's time slices, which repeated forceAtlas2.assign calls would reset.
declare module 'graphology-layout-forceatlas2/helpers.js' {
  import type Graph from 'graphology-types';
  export function graphToByteArrays(
    graph: Graph,
    getEdgeWeight: (edge: string, attr: unknown, source: string, target: string) => number,
  ): { nodes: Float32Array; edges: Float32Array };
}

declare module 'graphology-layout-forceatlas2/iterate.js' {
  import type { ForceAtlas2Settings } from 'graphology-layout-forceatlas2';
  export default function iterate(settings: Required<ForceAtlas2Settings>, nodes: Float32Array, edges: Float32Array): void;
}

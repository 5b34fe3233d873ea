// Messages between the explorer (main thread) and the layout worker (/assets/layout-worker.js). Node i of a job
// is the i-th node of the arrays; positions are x,y pairs. The arrays are transferred, never copied.

export interface LayoutRequest {
  type: 'layout';
  /** Job number: a later job supersedes every earlier one (the worker stops those at its next yield). */
  job: number;
  positions: Float32Array;
  /** 1: the node keeps its position (an expansion moves only the new nodes). */
  fixed: Uint8Array;
  /** Rendered node radii in pixels, so noverlap can keep discs apart at the zoom that fits the graph. */
  sizes: Float32Array;
  /** Source,target index pairs. */
  edges: Uint32Array;
  iterations: number;
  /** Send intermediate positions with progress (small graphs: the user watches them settle). */
  animate: boolean;
  /** The smaller side of the viewport in pixels: how many pixels the graph's extent will span once fitted. */
  viewport: number;
}

export type LayoutReply =
  | { type: 'progress'; job: number; done: number; total: number; positions: Float32Array | null }
  | { type: 'done'; job: number; positions: Float32Array; iterations: number }
  | { type: 'error'; job: number; message: string };

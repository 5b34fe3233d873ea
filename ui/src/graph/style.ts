// How the graph encodes relationships: one colour per edge type (the legend lists them in this order), and
// the sizes nodes take from their degree.

export interface EdgeStyle {
  color: string;
  label: string;
  /** What the edge means, for the legend's tooltip. */
  meaning: string;
  /** Line width in pixels; structural edges (a namespace and its objects) are thinner so grants stand out. */
  size: number;
}

export const EDGE_STYLES: Record<string, EdgeStyle> = {
  SUBJECT_OF: { color: '#3b82f6', label: 'binds subject', meaning: 'Binding → the User, Group or ServiceAccount it names', size: 1.6 },
  GRANTS: { color: '#f97316', label: 'grants role', meaning: 'Binding → the Role or ClusterRole it references', size: 1.6 },
  AGGREGATES: { color: '#a855f7', label: 'aggregates', meaning: 'Aggregated ClusterRole → a ClusterRole whose rules it takes', size: 1.4 },
  MEMBER_OF: { color: '#14b8a6', label: 'member of', meaning: 'User or ServiceAccount → Group', size: 1.4 },
  RUNS_AS: { color: '#ec4899', label: 'runs as', meaning: 'Pod → the ServiceAccount it runs as', size: 1.4 },
  RUNS_ON: { color: '#a16207', label: 'runs on', meaning: 'Pod → the Node it runs on', size: 1 },
  SCOPED_TO: { color: '#9ca3af', label: 'in namespace', meaning: 'Namespaced object → its Namespace', size: 0.7 },
};

const unknownEdge: EdgeStyle = { color: '#9ca3af', label: 'related', meaning: 'A relationship this console does not know', size: 1 };

export function edgeStyle(type: string): EdgeStyle {
  return EDGE_STYLES[type] ?? unknownEdge;
}

/**
 * sizeScale shrinks every node as the graph grows, so thousands of nodes fit the viewport without covering each
 * other; zooming in enlarges them again.
 */
export function sizeScale(order: number): number {
  return Math.min(1, Math.max(0.35, Math.sqrt(300 / Math.max(order, 1))));
}

/** nodeSize grows with the square root of the degree so hubs stand out without swallowing their neighbours. */
export function nodeSize(degree: number, scale: number): number {
  return scale * Math.min(5 + 2 * Math.sqrt(degree), 24);
}

// The kind palette shared by the console and the explorer: one colour and one label per GraphQL Kind, so a
// ServiceAccount looks the same in a search result, an entity page, a who-can answer and the graph.
// Colours are mid-tone so they read on both the light and the dark theme (used as badge backgrounds with white
// text, and as node fills in the graph).

export type KindName =
  | 'USER'
  | 'GROUP'
  | 'SERVICE_ACCOUNT'
  | 'ROLE'
  | 'CLUSTER_ROLE'
  | 'ROLE_BINDING'
  | 'CLUSTER_ROLE_BINDING'
  | 'NAMESPACE'
  | 'POD'
  | 'NODE'
  | 'SECRET';

/** Every kind, in the order the console lists them (subjects, roles, bindings, objects). */
export const KINDS: readonly KindName[] = [
  'USER',
  'GROUP',
  'SERVICE_ACCOUNT',
  'ROLE',
  'CLUSTER_ROLE',
  'ROLE_BINDING',
  'CLUSTER_ROLE_BINDING',
  'NAMESPACE',
  'POD',
  'NODE',
  'SECRET',
];

const palette: Record<KindName, { color: string; label: string; short: string }> = {
  USER: { color: '#2f6fdd', label: 'User', short: 'U' },
  GROUP: { color: '#7a4fd0', label: 'Group', short: 'G' },
  SERVICE_ACCOUNT: { color: '#0f8f8a', label: 'ServiceAccount', short: 'SA' },
  ROLE: { color: '#c77800', label: 'Role', short: 'R' },
  CLUSTER_ROLE: { color: '#b8461b', label: 'ClusterRole', short: 'CR' },
  ROLE_BINDING: { color: '#5f8a1e', label: 'RoleBinding', short: 'RB' },
  CLUSTER_ROLE_BINDING: { color: '#2e7d32', label: 'ClusterRoleBinding', short: 'CRB' },
  NAMESPACE: { color: '#6b7280', label: 'Namespace', short: 'NS' },
  POD: { color: '#c2185b', label: 'Pod', short: 'P' },
  NODE: { color: '#455a64', label: 'Node', short: 'N' },
  SECRET: { color: '#d32f2f', label: 'Secret', short: 'S' },
};

const fallback = { color: '#808080', label: '', short: '?' };

// Kubernetes kind names (as BindingSubject.kind and RoleRef.kind spell them) → the GraphQL enum.
const fromK8s: Record<string, KindName> = {
  User: 'USER',
  Group: 'GROUP',
  ServiceAccount: 'SERVICE_ACCOUNT',
  Role: 'ROLE',
  ClusterRole: 'CLUSTER_ROLE',
  RoleBinding: 'ROLE_BINDING',
  ClusterRoleBinding: 'CLUSTER_ROLE_BINDING',
  Namespace: 'NAMESPACE',
  Pod: 'POD',
  Node: 'NODE',
  Secret: 'SECRET',
};

/** normKind maps a GraphQL Kind (USER) or a Kubernetes kind (User) to the GraphQL enum string; unknown: as given. */
export function normKind(kind: string): string {
  if (kind in palette) return kind;
  return fromK8s[kind] ?? kind;
}

/** kindColor is the colour of a kind (GraphQL enum, or the Kubernetes spelling); grey for unknown kinds. */
export function kindColor(kind: string): string {
  return (palette[normKind(kind) as KindName] ?? fallback).color;
}

/** kindLabel is the readable name of a kind ("ServiceAccount"); unknown kinds come back as given. */
export function kindLabel(kind: string): string {
  return (palette[normKind(kind) as KindName] ?? fallback).label || kind;
}

/** kindShort is a one-to-three letter abbreviation of a kind, for dense places (graph nodes, chips). */
export function kindShort(kind: string): string {
  return (palette[normKind(kind) as KindName] ?? fallback).short;
}

/** isSubjectKind: User, Group or ServiceAccount (what bindings name). */
export function isSubjectKind(kind: string): boolean {
  const k = normKind(kind);
  return k === 'USER' || k === 'GROUP' || k === 'SERVICE_ACCOUNT';
}

// GraphQL fragments the views share, and the TypeScript shapes of what they select.

export const REF = 'fragment Ref on Node { id kind name namespace }';

export const RULE_FIELDS = 'index verbs apiGroups resources resourceNames nonResourceURLs text';

// GrantPath.since (when the grant started to hold) is asked everywhere a grant is shown.
export const GRANT = `fragment Grant on GrantPath {
  text
  binding { id kind name namespace }
  subject { kind name namespace node { id } }
  role { id kind name namespace }
  rule { ${RULE_FIELDS} }
  aggregatedFrom { id kind name namespace }
  since { revision time atHorizon }
}`;

export const HOP = `fragment Hop on AttackHop {
  from { id kind name namespace }
  fromRef { kind namespace name }
  to { id kind name namespace }
  toRef { kind namespace name }
  edge namespace technique note potential
  evidence { ...Grant }
  partialEvidence { text }
}`;

export interface NodeRef {
  id: string;
  kind: string;
  name: string;
  namespace: string;
}

export interface ObjectRef {
  kind: string;
  namespace: string;
  name: string;
}

export interface Label {
  key: string;
  value: string;
}

export interface Rule {
  index: number;
  verbs: string[];
  apiGroups: string[];
  resources: string[];
  resourceNames: string[];
  nonResourceURLs: string[];
  text: string;
}

export interface Since {
  revision: number;
  time: string;
  atHorizon: boolean;
}

export interface GrantPath {
  text: string;
  binding: NodeRef;
  subject: { kind: string; name: string; namespace: string; node?: { id: string } | null };
  role: NodeRef;
  rule: Rule;
  aggregatedFrom: NodeRef | null;
  since: Since | null;
}

export interface Permission {
  namespace: string | null;
  grant: GrantPath;
}

export interface AttackHop {
  from: NodeRef | null;
  fromRef: ObjectRef;
  to: NodeRef | null;
  toRef: ObjectRef;
  edge: string;
  namespace: string | null;
  technique: string | null;
  note: string | null;
  potential: boolean;
  evidence: GrantPath[];
  partialEvidence: { text: string }[];
}

export interface AttackPathT {
  text: string;
  hops: AttackHop[];
}

export interface PageInfoT {
  hasNextPage: boolean;
  endCursor: string | null;
}

export interface RevisionInfo {
  revision: number;
  time: string;
  source: string;
  changes: number;
  summary: { kind: string; added: number; updated: number; deleted: number }[];
}

export const REVISION_FIELDS = 'revision time source changes summary { kind added updated deleted }';

export interface AlertT {
  id: string;
  filterId: string;
  filterName: string;
  target: string;
  from: number;
  revision: number;
  time: string;
  entered: { key: string; text: string }[];
  enteredTotal: number;
  left: { key: string; text: string }[];
  leftTotal: number;
  causes: { revision: number; seq: number; op: string; kind: string; namespace: string | null; name: string; actor: string | null }[];
  causesTotal: number;
}

export const ALERT_FIELDS = `id filterId filterName target from revision time
  entered { key text } enteredTotal left { key text } leftTotal
  causes { revision seq op kind namespace name actor } causesTotal`;

/** Who made a change, from the audit event of the write (Change.actor, ObjectChange.actors). */
export interface ActorT {
  user: string;
  groups: string[];
  impersonatedBy: string | null;
  userAgent: string;
  sourceIP: string;
  auditID: string;
}

export const ACTOR_FIELDS = 'user groups impersonatedBy userAgent sourceIP auditID';

/** When audit events first and last showed a user, a group, a ServiceAccount or a membership. */
export interface SeenT {
  first: string;
  last: string;
}

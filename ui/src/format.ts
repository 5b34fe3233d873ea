// Formatting helpers: times, counts, severities, object references. Everything returns plain strings that the
// views render as text.

/** ago renders a time relative to now: "3 min ago", "2 days ago", "in 5 s" (clock skew). */
export function ago(time: string | Date | null | undefined, now = Date.now()): string {
  if (!time) return '';
  const t = typeof time === 'string' ? Date.parse(time) : time.getTime();
  if (Number.isNaN(t)) return '';
  let s = Math.round((now - t) / 1000);
  const future = s < 0;
  s = Math.abs(s);
  let v: string;
  if (s < 45) v = `${s} s`;
  else if (s < 45 * 60) v = `${Math.round(s / 60)} min`;
  else if (s < 36 * 3600) v = `${Math.round(s / 3600)} h`;
  else if (s < 45 * 86400) v = `${Math.round(s / 86400)} days`;
  else if (s < 400 * 86400) v = `${Math.round(s / (30 * 86400))} months`;
  else v = `${(s / (365 * 86400)).toFixed(1)} years`;
  return future ? `in ${v}` : `${v} ago`;
}

/** when renders an absolute time in the user's locale, to the minute ("2026-11-20 23:41"). */
export function when(time: string | null | undefined): string {
  if (!time) return '';
  const d = new Date(time);
  if (Number.isNaN(d.getTime())) return time;
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** whenFull is the precise local time with seconds and offset, for title attributes. */
export function whenFull(time: string | null | undefined): string {
  if (!time) return '';
  const d = new Date(time);
  return Number.isNaN(d.getTime()) ? time : `${d.toString()} (${time})`;
}

/** plural: "1 finding", "3 findings". */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

export const SEVERITIES = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'INFO'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** severityLabel: "Critical". */
export function severityLabel(s: string): string {
  return s.charAt(0) + s.slice(1).toLowerCase();
}

/** qualified renders namespace/name, or name alone for cluster-scoped objects. */
export function qualified(namespace: string | null | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

/** subjectKindOf maps a graph kind spelling (ServiceAccount, USER, …) to the SubjectKind enum, or null. */
export function subjectKindOf(kind: string): 'USER' | 'GROUP' | 'SERVICE_ACCOUNT' | null {
  switch (kind) {
    case 'User':
    case 'USER':
      return 'USER';
    case 'Group':
    case 'GROUP':
      return 'GROUP';
    case 'ServiceAccount':
    case 'SERVICE_ACCOUNT':
      return 'SERVICE_ACCOUNT';
    default:
      return null;
  }
}

/** errorText is a readable message of any thrown value. */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}

/** ellipsize shortens s to at most n characters (the full text goes in a title attribute). */
export function ellipsize(s: string, n: number): string {
  const cs = Array.from(s);
  return cs.length <= n ? s : `${cs.slice(0, n - 1).join('')}…`;
}

/** splitList parses a comma- or space-separated list ("a, b c") into its non-empty items. */
export function splitList(s: string | null | undefined): string[] {
  return (s ?? '').split(/[,\s]+/).map((x) => x.trim()).filter(Boolean);
}

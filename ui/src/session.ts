// The signed-in session as the whole console sees it: who the viewer is, the server's cluster, and the head
// revision, which moves live (subscription changes) while the console is open.
import { useEffect, useState } from 'preact/hooks';

export interface Viewer {
  user: string;
  role: 'VIEWER' | 'ADMIN';
}

export interface ServerInfo {
  cluster: string;
  version: string;
  revision: number;
  horizon: number;
  source: string;
  ready: boolean;
  viewer: Viewer;
}

export const SERVER_FIELDS = 'cluster version revision horizon source ready viewer { user role }';

export interface Session {
  server: ServerInfo;
  /** false when the server answers without a token (--insecure-no-auth): no sign-out. */
  token: boolean;
  /** The head revision: the server's at sign-in, then every revision the changes subscription reports. */
  head: number;
  headTime: string | null;
  /** Revisions committed since the console was opened (counted by the subscription). */
  live: boolean;
}

let session: Session | null = null;
const listeners = new Set<() => void>();

export function setSession(s: Session | null): void {
  session = s;
  listeners.forEach((fn) => fn());
}

export function updateSession(patch: Partial<Session>): void {
  if (!session) return;
  session = { ...session, ...patch };
  listeners.forEach((fn) => fn());
}

export function getSession(): Session | null {
  return session;
}

/** useSession re-renders the caller whenever the session changes (sign-in, a new head revision). */
export function useSession(): Session {
  const [, set] = useState(0);
  useEffect(() => {
    const fn = () => set((n) => n + 1);
    listeners.add(fn);
    return () => {
      listeners.delete(fn);
    };
  }, []);
  if (!session) throw new Error('useSession outside a signed-in console');
  return session;
}

/** useHead is the live head revision. */
export function useHead(): number {
  return useSession().head;
}

/** isAdmin: whether the viewer may run admin mutations. */
export function isAdmin(): boolean {
  return session?.server.viewer.role === 'ADMIN';
}

// The GraphQL client: queries and mutations over fetch, subscriptions over graphql-ws. The token lives in
// sessionStorage (gone with the tab) and travels only in the Authorization header or connection_init: never
// in a URL.
import { createClient, type Client } from 'graphql-ws';

const tokenKey = 'kiem.token';

export function getToken(): string | null {
  try {
    return sessionStorage.getItem(tokenKey);
  } catch {
    return null;
  }
}

export function setToken(token: string | null): void {
  if (token) sessionStorage.setItem(tokenKey, token);
  else sessionStorage.removeItem(tokenKey);
  closeSubscriptions();
  authListeners.forEach((fn) => fn());
}

const authListeners = new Set<() => void>();

/** onAuthChange calls fn whenever the token is set or cleared (sign-in, sign-out, a 401). */
export function onAuthChange(fn: () => void): () => void {
  authListeners.add(fn);
  return () => authListeners.delete(fn);
}

/** AuthError: the server refused the token (HTTP 401, websocket 4401); the app sends the user to sign in. */
export class AuthError extends Error {
  constructor(message = 'Your session is not signed in or the token was refused.') {
    super(message);
    this.name = 'AuthError';
  }
}

export interface GraphQLErrorEntry {
  message: string;
  path?: (string | number)[];
  locations?: { line: number; column: number }[];
  extensions?: Record<string, unknown>;
}

/** RequestError: the request reached the server and it answered with GraphQL errors or an HTTP error. */
export class RequestError extends Error {
  readonly errors: GraphQLErrorEntry[];
  readonly status: number;
  constructor(errors: GraphQLErrorEntry[], status: number) {
    super(errors.map((e) => e.message).join('; ') || `HTTP ${status}`);
    this.name = 'RequestError';
    this.errors = errors;
    this.status = status;
  }
}

function authHeader(): Record<string, string> {
  const t = getToken();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

/**
 * gql runs one query or mutation. It throws AuthError on 401 (and clears the token), RequestError when the
 * answer holds errors (data is then discarded: kiem's answers are all-or-nothing), and the fetch error when the
 * server cannot be reached.
 */
export async function gql<T>(query: string, variables?: Record<string, unknown>, signal?: AbortSignal): Promise<T> {
  const res = await fetch('/graphql', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...authHeader() },
    body: JSON.stringify({ query, variables: variables ?? {} }),
    signal,
    credentials: 'omit',
    cache: 'no-store',
  });
  if (res.status === 401) {
    if (getToken()) setToken(null);
    throw new AuthError();
  }
  let body: { data?: T; errors?: GraphQLErrorEntry[] } | undefined;
  try {
    body = await res.json();
  } catch {
    throw new RequestError([{ message: `the server answered HTTP ${res.status} without a GraphQL response` }], res.status);
  }
  if (body?.errors?.length) throw new RequestError(body.errors, res.status);
  if (!res.ok || body?.data === undefined) throw new RequestError([{ message: `HTTP ${res.status}` }], res.status);
  return body.data as T;
}

let client: Client | null = null;

function wsClient(): Client {
  if (client) return client;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
  client = createClient({
    url,
    lazy: true,
    connectionParams: () => authHeader(),
    retryAttempts: 1_000_000,
    // 4401/4403: the token was refused; retrying would only hammer the server.
    shouldRetry: (e) => !(e && typeof e === 'object' && 'code' in e && ((e as CloseEvent).code === 4401 || (e as CloseEvent).code === 4403)),
    on: {
      connecting: () => setStatus('connecting'),
      connected: () => setStatus('connected'),
      closed: () => setStatus('closed'),
    },
  });
  return client;
}

/** The websocket's state: idle (no subscription yet), connecting, connected, closed (retrying unless refused). */
export type ConnectionStatus = 'idle' | 'connecting' | 'connected' | 'closed';

let status: ConnectionStatus = 'idle';
const statusListeners = new Set<(s: ConnectionStatus) => void>();

function setStatus(s: ConnectionStatus): void {
  status = s;
  statusListeners.forEach((fn) => fn(s));
}

/** connectionStatus is the websocket's current state. */
export function connectionStatus(): ConnectionStatus {
  return status;
}

/** onConnectionStatus calls fn whenever the websocket connects or closes (for a live/disconnected indicator). */
export function onConnectionStatus(fn: (s: ConnectionStatus) => void): () => void {
  statusListeners.add(fn);
  return () => statusListeners.delete(fn);
}

/**
 * probeOpenAccess tells whether the server answers without a token (kiem serve --insecure-no-auth), without
 * issuing a request the browser would log as a failed 401: it opens a websocket, sends connection_init with no
 * Authorization and waits for the ack (open access) or the 4401/4403 close (a token is needed).
 */
export function probeOpenAccess(timeoutMs = 5000): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (open: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        ws.close(1000);
      } catch {
        /* already closed */
      }
      resolve(open);
    };
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`, 'graphql-transport-ws');
    const timer = setTimeout(() => finish(false), timeoutMs);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'connection_init', payload: {} }));
    ws.onmessage = (ev) => {
      try {
        finish(JSON.parse(String(ev.data))?.type === 'connection_ack');
      } catch {
        finish(false);
      }
    };
    ws.onclose = () => finish(false);
    ws.onerror = () => finish(false);
  });
}

function closeSubscriptions(): void {
  client?.dispose();
  client = null;
  setStatus('idle');
}

export interface Sink<T> {
  next(data: T): void;
  error(err: Error): void;
  complete?(): void;
}

/** subscribe starts a subscription; the returned function ends it. Reconnects resume with the caller's own since. */
export function subscribe<T>(query: string, variables: Record<string, unknown>, sink: Sink<T>): () => void {
  return wsClient().subscribe<T>(
    { query, variables },
    {
      next: (v) => {
        if (v.errors?.length) sink.error(new RequestError(v.errors as GraphQLErrorEntry[], 200));
        else if (v.data) sink.next(v.data as T);
      },
      error: (e) => {
        if (e && typeof e === 'object' && 'code' in e && (e as CloseEvent).code === 4401) {
          setToken(null);
          sink.error(new AuthError());
        } else if (Array.isArray(e)) sink.error(new RequestError(e as GraphQLErrorEntry[], 200));
        else sink.error(e instanceof Error ? e : new Error(`subscription closed (${(e as CloseEvent)?.code ?? 'network'})`));
      },
      complete: () => sink.complete?.(),
    },
  );
}

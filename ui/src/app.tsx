// The console shell: sign-in gate, header (navigation, global search, time travel, viewer) and the route table.
import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { AuthError, getToken, gql, onAuthChange, probeOpenAccess, setToken, subscribe } from './api';
import { errorText } from './format';
import { href, Link, match, navigate, useAt, useLocation } from './router';
import { getSession, SERVER_FIELDS, setSession, updateSession, useSession, type ServerInfo } from './session';
import { SearchBox } from './components/search';
import { TimeTravel, TimeTravelBanner } from './components/timetravel';
import { Loading, Name } from './components/ui';
import { Explore } from './views/explore';
import { Home } from './views/home';
import { SignIn } from './views/signin';
import { SearchPage } from './views/search';
import { EntityView, LookupView } from './views/entity';
import { WhoCan } from './views/whocan';
import { CanI } from './views/cani';
import { Risks } from './views/risks';
import { FindingView } from './views/finding';
import { History, RevisionView } from './views/history';
import { DiffView } from './views/diff';
import { Filters } from './views/filters';
import { NotFound } from './views/notfound';

type View = (props: { params: Record<string, string> }) => JSX.Element;

// Route table: pattern → view. Every view reads the rest of its state (?at=, form fields) from the URL.
const routes: [string, View][] = [
  ['/', Home],
  ['/explore', Explore],
  ['/explore/:id', Explore],
  ['/search', SearchPage],
  ['/e/:id', EntityView],
  ['/lookup', LookupView],
  ['/who-can', WhoCan],
  ['/can-i', CanI],
  ['/risks', Risks],
  ['/findings/:fingerprint', FindingView],
  ['/history', History],
  ['/history/:rev', RevisionView],
  ['/diff', DiffView],
  ['/filters', Filters],
];

const nav: [string, string, string][] = [
  ['/explore', 'Explore', 'nav-explore'],
  ['/who-can', 'Who can', 'nav-who-can'],
  ['/can-i', 'Can I', 'nav-can-i'],
  ['/risks', 'Risks', 'nav-risks'],
  ['/history', 'History', 'nav-history'],
  ['/filters', 'Filters & alerts', 'nav-filters'],
];

type Gate = { state: 'checking' } | { state: 'signin' } | { state: 'ok' } | { state: 'error'; message: string };

/** safeNext keeps a return path on this origin (a path, never //host or a scheme). */
function safeNext(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : '/';
}

export function App(): JSX.Element {
  const loc = useLocation();
  const [gate, setGate] = useState<Gate>({ state: 'checking' });

  useEffect(() => {
    let current = 0;
    const check = async () => {
      const mine = ++current;
      const token = getToken();
      if (!token && !(await probeOpenAccess())) {
        if (mine === current) {
          setSession(null);
          setGate({ state: 'signin' });
        }
        return;
      }
      try {
        const d = await gql<{ server: ServerInfo }>(`{ server { ${SERVER_FIELDS} } }`);
        if (mine !== current) return;
        setSession({ server: d.server, token: !!token, head: d.server.revision, headTime: null, live: false });
        setGate({ state: 'ok' });
      } catch (e) {
        if (mine !== current) return;
        setSession(null);
        setGate(e instanceof AuthError ? { state: 'signin' } : { state: 'error', message: errorText(e) });
      }
    };
    check();
    return onAuthChange(check);
  }, []);

  if (gate.state === 'checking') return <div class="gate"><Loading label="Connecting to kiem…" /></div>;
  if (gate.state === 'error') {
    return (
      <div class="gate">
        <div class="state error" role="alert" data-testid="error">
          <strong>kiem cannot be reached</strong>
          <pre class="error-text">{gate.message}</pre>
          <button type="button" onClick={() => location.reload()}>
            Retry
          </button>
        </div>
      </div>
    );
  }
  if (gate.state === 'signin') {
    // Shown in place: once signed in, the page the user asked for is already in the address bar.
    return <SignIn onDone={() => loc.path === '/signin' && goNext(loc.params.get('next'))} />;
  }
  if (loc.path === '/signin') {
    const next = safeNext(loc.params.get('next'));
    return (
      <Shell>
        <section class="page narrow">
          <h1>Signed in</h1>
          <p>
            You are signed in as <strong>{getSession()?.server.viewer.user}</strong>.{' '}
            <a href={next} onClick={(e) => { e.preventDefault(); goNext(next); }}>Continue</a>
          </p>
        </section>
      </Shell>
    );
  }
  for (const [pattern, View] of routes) {
    const params = match(pattern, loc.path);
    if (params) {
      // Keyed by the path so a view's state starts afresh on another entity.
      return (
        <Shell>
          <View key={pattern === '/explore/:id' ? '/explore' : loc.path} params={params} />
        </Shell>
      );
    }
  }
  return (
    <Shell>
      <NotFound />
    </Shell>
  );
}

/** goNext returns to where sign-in was asked from: in place for the app's routes, a real load for /graphiql. */
function goNext(next: string | null): void {
  const to = safeNext(next);
  if (to === '/graphiql' || to.startsWith('/graphiql?') || to.startsWith('/graphiql/')) location.assign(to);
  else navigate(to, { replace: true });
}

function Shell({ children }: { children: ComponentChildren }): JSX.Element {
  useHeadSubscription();
  const loc = useLocation();
  useEffect(() => {
    const section = nav.find(([p]) => loc.path === p || loc.path.startsWith(`${p}/`))?.[1];
    document.title = section ? `${section} · kiem` : 'kiem';
  }, [loc.path]);
  return (
    <div class="shell">
      <Header />
      <TimeTravelBanner />
      <main class={loc.path === '/explore' || loc.path.startsWith('/explore/') ? 'main main-wide' : 'main'} id="main">
        {children}
      </main>
    </div>
  );
}

/** useHeadSubscription follows the head revision live (subscription changes), resuming after reconnects. */
function useHeadSubscription(): void {
  const s = getSession();
  const start = s?.head ?? null;
  useEffect(() => {
    if (start === null) return;
    // The variables object is the subscription's payload: graphql-ws sends it again on every reconnect, so
    // moving since forward makes a reconnect resume after the last revision seen.
    const vars: { since: number } = { since: start };
    const stop = subscribe<{ changes: { revision: number; time: string } }>('subscription Head($since: Revision) { changes(since: $since) { revision time } }', vars, {
      next: (d) => {
        const r = d.changes.revision;
        vars.since = Math.max(vars.since, r);
        const cur = getSession();
        if (cur && r > cur.head) updateSession({ head: r, headTime: d.changes.time, live: true });
      },
      error: () => undefined,
    });
    return stop;
  }, [start === null]);
}

function Header(): JSX.Element {
  const loc = useLocation();
  const s = useSession();
  const at = useAt();
  return (
    <header class="topbar" data-testid="topbar">
      <Link href={href('/')} class="brand" data-testid="nav-home" title="kiem — Kubernetes RBAC entitlements">
        <svg viewBox="0 0 16 16" width="18" height="18" aria-hidden="true">
          <path d="M8 1 2 4v4c0 3.5 2.6 6.4 6 7 3.4-.6 6-3.5 6-7V4z" fill="currentColor" />
        </svg>
        <span>kiem</span>
        <span class="cluster" title={`cluster ${s.server.cluster} · ${s.server.source}`}>{s.server.cluster}</span>
      </Link>
      <nav class="nav" aria-label="Main">
        {nav.map(([path, label, testid]) => (
          <Link
            href={href(path)}
            class={loc.path === path || loc.path.startsWith(`${path}/`) ? 'active' : ''}
            aria-current={loc.path === path ? 'page' : undefined}
            data-testid={testid}
          >
            {label}
          </Link>
        ))}
        <a href="/graphiql" data-testid="nav-graphiql" rel="noopener">
          GraphiQL
        </a>
      </nav>
      <div class="topbar-tools">
        <SearchBox />
        <TimeTravel />
        <div class="viewer" data-testid="viewer" title={`${s.server.viewer.user} (${s.server.viewer.role.toLowerCase()})`}>
          <span data-testid="viewer-user"><Name text={s.server.viewer.user} class="viewer-name" /></span>
          <span class={`role role-${s.server.viewer.role.toLowerCase()}`} data-testid="viewer-role">
            {s.server.viewer.role.toLowerCase()}
          </span>
          {s.token ? (
            <button type="button" class="link-button" data-testid="signout" onClick={() => setToken(null)}>
              Sign out
            </button>
          ) : (
            <span class="muted small" title="kiem serve --insecure-no-auth">no auth</span>
          )}
        </div>
      </div>
      {at === null && s.live ? <span class="sr-only" aria-live="polite">{`Revision ${s.head} committed`}</span> : null}
    </header>
  );
}

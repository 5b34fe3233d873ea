/** @jsxImportSource react */
// GraphiQL on kiem's API (React: the pragma above wins over tsconfig's jsxImportSource, which is Preact's): the schema comes with the bundle (kiem serves no introspection by default), queries and
// mutations go over fetch and subscriptions over graphql-ws, both with the console's token (sessionStorage
// kiem.token, the Authorization header; never a URL).
import { createRoot } from 'react-dom/client';
import { useEffect, useState } from 'react';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { buildSchema } from 'graphql';
import sdl from 'kiem:schema';
import { probeOpenAccess } from '../api';
import 'graphiql/graphiql.css';
import './graphiql.css';

const schema = buildSchema(sdl);

const defaultQuery = `# kiem's GraphQL API. The schema's descriptions are in the Docs panel (the book icon).
# Who can read secrets in kube-system, why, and since when:
query WhoCanReadSecrets {
  whoCan(action: {verb: "get", resource: "secrets", namespace: "kube-system"}, first: 20) {
    totalCount
    revision
    nodes {
      subject { kind name namespace }
      superuser
      paths { text aggregatedFrom { name } since { revision time atHorizon } }
    }
  }
}
`;

function token(): string | null {
  try {
    return sessionStorage.getItem('kiem.token');
  } catch {
    return null;
  }
}

function fetcherFor(t: string | null) {
  const auth: Record<string, string> = t ? { Authorization: `Bearer ${t}` } : {};
  return createGraphiQLFetcher({
    url: '/graphql',
    subscriptionUrl: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`,
    headers: auth,
    wsConnectionParams: auth,
  });
}

function App() {
  const t = token();
  // Without a token, the server may not need one (--insecure-no-auth): ask it, without a failing request.
  const [anonymous, setAnonymous] = useState<boolean | null>(t ? false : null);
  useEffect(() => {
    if (!t) probeOpenAccess().then(setAnonymous);
  }, []);
  if (!t && anonymous === null) return <p className="kiem-signin-note">Connecting…</p>;
  if (!t && !anonymous) {
    return (
      <div className="kiem-signin-note">
        <h1>kiem · GraphiQL</h1>
        <p>
          GraphiQL sends your console token with every request. You are not signed in in this tab:{' '}
          <a href="/signin?next=%2Fgraphiql">sign in</a> first, then come back.
        </p>
        <p>
          <a href="/">Back to the console</a>
        </p>
      </div>
    );
  }
  return (
    <GraphiQL fetcher={fetcherFor(t)} schema={schema} defaultQuery={defaultQuery} shouldPersistHeaders={false} isHeadersEditorEnabled={false}>
      <GraphiQL.Logo>
        <a href="/" className="kiem-logo" title="Back to the kiem console">
          kiem
        </a>{' '}
        GraphiQL
      </GraphiQL.Logo>
    </GraphiQL>
  );
}

createRoot(document.getElementById('graphiql')!).render(<App />);

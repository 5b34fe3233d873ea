// Browser tests of the relationship explorer against a real `kiem serve --demo`: loading a neighbourhood,
// expanding (through the side panel and by a real double-click on the WebGL canvas), filtering, highlighting a
// path, time travel, and names from a hostile identity provider. The explorer exposes its state through the DOM
// (the status line's data attributes, the side panel), so every wait is on what the page shows, never a sleep.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { artifact, hostile, launchBrowser, newPage, signIn, startKiem } from './harness.mjs';

let kiem;
let browser;

before(async () => {
  kiem = await startKiem();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await kiem?.stop();
});

async function lookup(kind, name, namespace) {
  const d = await kiem.gql('query($k: Kind!, $n: String!, $ns: String) { lookup(kind: $k, name: $n, namespace: $ns) { id } }', { k: kind, n: name, ns: namespace });
  assert.ok(d.lookup, `the demo has ${kind} ${namespace ? `${namespace}/` : ''}${name}`);
  return d.lookup.id;
}

/** open signs in straight onto an explorer URL and returns the page with its problem recorder. */
async function open(path) {
  const { page, problems } = await newPage(browser);
  await page.addInitScript(() => {
    // CSP violations also reach the console, but record them where a test can name them.
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
    // The explorer's status line, or null while it loads or lays out. (A test helper: kiem's CSP forbids eval,
    // so predicates are page functions that call this rather than strings.)
    window.__status = () => {
      const el = document.querySelector('[data-testid=explorer-status]');
      if (!el || el.dataset.state !== 'ready' || el.dataset.layout !== 'idle') return null;
      const d = el.dataset;
      return { nodes: Number(d.nodes), edges: Number(d.edges), total: Number(d.totalNodes), revision: Number(d.revision) };
    };
  });
  await signIn(page, kiem, path);
  return { page, problems };
}

/** until waits for fn(arg) to return a status (fn calls window.__status) and returns it. */
async function until(page, fn, arg) {
  return (await page.waitForFunction(fn, arg, { timeout: 60_000 })).jsonValue();
}

/**
 * pick selects a loaded node through the find box (query: what to type; kindLabel narrows the hits) and waits
 * for the side panel to show it (its name element carries the exact name in data-name).
 */
async function pick(page, name, { query = name, kindLabel } = {}) {
  await page.getByTestId('explorer-find').fill(query);
  let hits = page.getByTestId('explorer-find-hit');
  if (kindLabel) hits = hits.filter({ hasText: kindLabel });
  await hits.first().click();
  await page.waitForFunction((n) => document.querySelector('[data-testid=explorer-selected-name] [data-name]')?.dataset.name === n, name);
}

async function clean(page, problems) {
  assert.deepEqual(await page.evaluate(() => window.__csp), [], 'no CSP violations');
  assert.deepEqual(problems(), [], 'no page errors, console errors or failed requests');
}

test('explore, expand, click the canvas, filter and highlight a path', async () => {
  const sa = await lookup('SERVICE_ACCOUNT', 'argocd-application-controller', 'argocd');
  const { page, problems } = await open(`/explore/${encodeURIComponent(sa)}`);
  const first = await until(page, () => { const s = window.__status(); return s?.total > 1 && s; });
  assert.ok(first.nodes > 1 && first.edges > 0, `the neighbourhood rendered (${first.nodes} nodes, ${first.edges} edges)`);
  await page.getByTestId('explorer-status').filter({ hasText: `${first.nodes} nodes · ${first.edges} edges` }).waitFor();

  // Expand through the side panel.
  await pick(page, 'system:serviceaccounts');
  await page.getByTestId('explorer-expand').click();
  const expanded = await until(page, (n) => { const s = window.__status(); return s?.total > n && s; }, first.total);

  // A real click on the canvas, where sigma draws the node (graphToViewport, published on the container).
  await pick(page, 'argocd', { kindLabel: 'Namespace' });
  // The camera glides to the picked node; take its position once two frames agree.
  const at = await page.evaluate(async () => {
    const d = document.querySelector('[data-testid=explorer-canvas]').dataset;
    let last = '';
    for (;;) {
      await new Promise((r) => requestAnimationFrame(r));
      await new Promise((r) => requestAnimationFrame(r));
      const now = `${d.selectedX},${d.selectedY}`;
      if (d.selectedX !== undefined && now === last) return { x: Number(d.selectedX), y: Number(d.selectedY) };
      last = now;
    }
  });
  await page.keyboard.press('Escape');
  await page.getByTestId('explorer-panel').waitFor({ state: 'detached' });
  const box = await page.getByTestId('explorer-canvas').boundingBox();
  await page.mouse.click(box.x + at.x, box.y + at.y);
  await page.waitForFunction(() => document.querySelector('[data-testid=explorer-selected-name]')?.textContent === 'argocd');
  assert.equal(await page.getByTestId('explorer-panel').getAttribute('data-id'), await lookup('NAMESPACE', 'argocd'));

  // A double-click on it expands the namespace.
  await page.mouse.dblclick(box.x + at.x, box.y + at.y);
  const all = await until(page, (n) => { const s = window.__status(); return s?.total > n && s; }, expanded.total);

  // Filter by kind: hiding ServiceAccounts hides exactly them, and the filter is in the URL.
  const sas = Number(await page.getByTestId('explorer-kind-SERVICE_ACCOUNT').locator('.ex-count').textContent());
  await page.getByTestId('explorer-kind-SERVICE_ACCOUNT').locator('input').uncheck();
  const filtered = await until(page, () => { const s = window.__status(); return s && s.nodes < s.total && s; });
  assert.equal(filtered.nodes, all.total - sas);
  assert.ok(!new URL(page.url()).searchParams.get('kinds').includes('SERVICE_ACCOUNT'));
  await page.getByRole('button', { name: 'Show all kinds' }).click();
  await until(page, () => { const s = window.__status(); return s?.nodes === s?.total && s; });

  // Filter by namespace.
  await page.getByTestId('explorer-ns-argocd').locator('input').uncheck();
  const nsFiltered = await until(page, () => { const s = window.__status(); return s && s.nodes < s.total && s; });
  assert.ok(nsFiltered.nodes < all.total);
  assert.ok(!new URL(page.url()).searchParams.get('ns').split(',').includes('argocd'));
  await page.getByRole('button', { name: 'Show all namespaces' }).click();
  await until(page, () => { const s = window.__status(); return s?.nodes === s?.total && s; });

  // A path between two loaded nodes: binding → ServiceAccount → group, kept in the URL.
  await pick(page, 'argocd-application-controller', { kindLabel: 'ClusterRoleBinding' });
  await page.getByTestId('explorer-path-from').click();
  await pick(page, 'system:serviceaccounts:argocd');
  await page.getByTestId('explorer-path-to').click();
  await page.getByTestId('explorer-path').waitFor();
  assert.equal(await page.getByTestId('explorer-path').getAttribute('data-hops'), '3');
  const path = new URL(page.url()).searchParams.get('path');
  assert.equal(path.split(',').length, 3);
  await page.mouse.move(box.x + 2, box.y + 2);
  await page.screenshot({ path: artifact('explorer.png') });

  // The same path from a deep link, on a fresh load: the hops that are not in the root's neighbourhood are fetched.
  await page.goto(`${kiem.url}/explore/${encodeURIComponent(sa)}?path=${encodeURIComponent(path)}`);
  await until(page, () => window.__status());
  await page.getByTestId('explorer-path').filter({ hasText: 'system:serviceaccounts:argocd' }).waitFor();
  assert.equal(await page.getByTestId('explorer-path').getAttribute('data-hops'), '3');
  await page.getByTestId('explorer-path').locator('.muted').filter({ hasText: 'not loaded' }).waitFor({ state: 'detached' });
  await clean(page, problems);
});

test('time travel reloads the graph at the revision', async () => {
  const role = await lookup('CLUSTER_ROLE', 'cluster-admin');
  const q = 'query($id: ID!, $at: Revision) { neighbourhood(id: $id, at: $at) { nodes { id } edges { from } revision } }';
  const head = (await kiem.gql(q, { id: role })).neighbourhood;
  const { revisions } = await kiem.gql('{ revisions(first: 100) { nodes { revision } } }');
  // The newest revision at which cluster-admin's neighbourhood differs from today's (a binding was added since).
  let past = null;
  for (const { revision } of revisions.nodes) {
    const n = await kiem.gql(q, { id: role, at: revision }).then((d) => d.neighbourhood, () => null);
    if (n && n.nodes.length !== head.nodes.length) {
      past = n;
      break;
    }
  }
  assert.ok(past, 'the demo history changes cluster-admin’s bindings');

  const { page, problems } = await open(`/explore/${encodeURIComponent(role)}`);
  const now = await until(page, () => { const s = window.__status(); return s?.total > 1 && s; });
  assert.deepEqual([now.total, now.edges, now.revision], [head.nodes.length, head.edges.length, head.revision]);

  // In-page navigation to ?at= (what the console's time-travel control does) reloads at that revision.
  await page.evaluate((rev) => {
    const u = new URL(location.href);
    u.searchParams.set('at', String(rev));
    history.pushState(null, '', u);
    dispatchEvent(new PopStateEvent('popstate'));
  }, past.revision);
  const then = await until(page, (rev) => { const s = window.__status(); return s?.revision === rev && s; }, past.revision);
  assert.deepEqual([then.total, then.edges], [past.nodes.length, past.edges.length]);
  assert.notEqual(then.total, now.total);

  // And back to the head.
  await page.goBack();
  const back = await until(page, (rev) => { const s = window.__status(); return s?.revision === rev && s; }, head.revision);
  assert.deepEqual([back.total, back.edges], [head.nodes.length, head.edges.length]);
  await clean(page, problems);
});

test('hostile names render as inert text', async () => {
  const user = await lookup('USER', hostile.markup);
  const { page, problems } = await open(`/explore/${encodeURIComponent(user)}`);
  const first = await until(page, () => { const s = window.__status(); return s?.total > 1 && s; });
  await pick(page, 'oidc:auditors');
  await page.getByTestId('explorer-expand').click();
  await until(page, (n) => { const s = window.__status(); return s?.total > n && s; }, first.total);

  // The unicode name is typed without its bidi characters: the find box matches a prefix.
  for (const [name, query] of [[hostile.markup, hostile.markup], [hostile.long, hostile.long], [hostile.unicode, 'Ünïcødé']]) {
    await pick(page, name, { query });
    assert.equal(await page.getByTestId('explorer-selected-name').textContent(), name, 'the whole name, as text');
  }
  assert.equal(await page.locator('img[src="x"]').count(), 0, 'no element was made from a name');
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  await clean(page, problems);
});

test('the start page searches, and a cut neighbourhood says so', async () => {
  const { page, problems } = await open('/explore');
  // The server bounds neighbourhoods (first ≤ 1000); make it report a cut so the notice can be checked.
  const firsts = [];
  await page.route('**/graphql', async (route) => {
    const req = route.request().postDataJSON();
    if (!req?.query?.includes('neighbourhood(')) return route.continue();
    firsts.push(req.variables.first);
    const res = await route.fetch();
    const body = await res.json();
    body.data.neighbourhood.truncated = req.variables.first < 1000;
    return route.fulfill({ response: res, json: body });
  });
  await page.getByTestId('explorer-start-search').fill('argocd-application-controller');
  await page.getByTestId('explorer-start-hit').filter({ hasText: 'ServiceAccount' }).first().click();
  await until(page, () => window.__status());
  assert.match(new URL(page.url()).pathname, /^\/explore\/.+/);
  const note = page.getByTestId('explorer-truncated');
  await note.filter({ hasText: 'was cut at 200 nodes' }).waitFor();
  await note.getByRole('button', { name: 'Load up to 1,000' }).click();
  await note.waitFor({ state: 'detached' });
  assert.deepEqual(firsts, [200, 1000]);
  await clean(page, problems);
});

test('a live explorer offers the newer revision when the cluster changes', async () => {
  const group = await lookup('GROUP', 'oidc:auditors');
  const { page, problems } = await open(`/explore/${encodeURIComponent(group)}`);
  const before = await until(page, () => { const s = window.__status(); return s?.total > 1 && s; });
  // A user joins the group: a new revision, which the header learns through the changes subscription.
  const { revision } = await kiem.setGroups('live-joiner@example.com', ['oidc:auditors']);
  await page.getByTestId('explorer-update').filter({ hasText: `Update to revision ${revision}` }).click();
  const after = await until(page, (r) => { const s = window.__status(); return s?.revision >= r && s; }, revision);
  assert.equal(after.total, before.total + 1, 'the new member joined the picture');
  await page.getByTestId('explorer-update').waitFor({ state: 'detached' });
  await kiem.setGroups('live-joiner@example.com', []);
  await clean(page, problems);
});

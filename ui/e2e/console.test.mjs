// Browser tests of the console against a real `kiem serve --demo` (the built bin/kiem) in Debian's Chromium: sign-in,
// search, entity pages, who-can and can-i by clicks, diffs, time travel, saved filters with live alerts, and
// hostile names. Every test fails on a page error, a console error (CSP violations are console errors) or a
// failed request. Screenshots of the main views go to artifact(...).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { artifact, hostile, launchBrowser, newPage, openPage, startKiem, waitText } from './harness.mjs';

let kiem;
let browser;
/** The demo's revisions by their step (source), from the API: revision numbers are not fixed. */
let revs;

before(async () => {
  kiem = await startKiem();
  browser = await launchBrowser();
  const d = await kiem.gql('{ revisions(first: 200) { nodes { revision source } } }');
  revs = Object.fromEntries(d.revisions.nodes.map((r) => [r.source, r.revision]));
  assert.ok(revs['demo: view-reads-secrets'] && revs['demo: ci-gets-cluster-admin'], `demo revisions: ${JSON.stringify(revs)}`);
});

after(async () => {
  await browser?.close();
  await kiem?.stop();
});

/** open: a fresh signed-in page at path; check() at the end asserts nothing went wrong in it. */
const open = (path = '/', opts = {}) => openPage(browser, kiem, path, opts);

describe('console', () => {
  test('sign-in refuses a wrong token, keeps the right one in sessionStorage only, returns to the page asked for, signs out', async () => {
    // The refused token is a 401 the browser logs as a failed resource: expected here only.
    const { page, context, problems } = await newPage(browser);
    await page.goto(`${kiem.url}/risks?severity=HIGH`);
    await page.getByTestId('signin-token').fill('not-the-token');
    await page.getByTestId('signin-submit').click();
    await waitText(page.getByTestId('signin-error'), /refused/);
    await page.screenshot({ path: artifact('signin.png') });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('kiem.token')), null);

    await page.getByTestId('signin-token').fill(kiem.token);
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('viewer').waitFor();
    await page.getByTestId('risks').waitFor();
    const url = page.url();
    assert.ok(url.endsWith('/risks?severity=HIGH'), `back on the page asked for: ${url}`);
    assert.ok(!url.includes(kiem.token), 'the token is not in the URL');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('kiem.token')), kiem.token);
    assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
    await waitText(page.getByTestId('viewer'), /admin/);

    // A reload keeps the session (same tab); signing out clears it.
    await page.reload();
    await page.getByTestId('viewer').waitFor();
    await page.getByTestId('signout').click();
    await page.getByTestId('signin-token').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('kiem.token')), null);

    const bad = problems().filter((p) => !/status of 401/.test(p));
    assert.equal(problems().filter((p) => /status of 401/.test(p)).length, 1, `exactly the refused sign-in was a 401: ${problems()}`);
    await context.close();
    assert.deepEqual(bad, []);
  });

  test('search: / focuses, typing shows results, ↓ and Enter open the entity page with permissions, why-paths and since', async () => {
    const { page, check } = await open('/');
    await page.keyboard.press('/');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'search-input');
    await page.keyboard.type('dana@exa');
    const first = page.getByTestId('search-result').first();
    await waitText(first, /dana@example\.com/);
    await waitText(first, /User/);
    await page.screenshot({ path: artifact('search.png') });
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/e\//);
    await waitText(page.getByTestId('entity-title'), /dana@example\.com/);
    // Details: declared groups.
    await waitText(page.getByTestId('details'), /oidc:contractors/);
    // Effective permissions, grouped, each with binding → role → rule and since.
    const perms = page.getByTestId('permissions');
    await waitText(perms, /payments/);
    const exec = page.getByTestId('permission').filter({ hasText: 'pods/exec' }).first();
    await waitText(exec.getByTestId('grant-binding'), /contractors-debug/);
    await waitText(exec.getByTestId('grant-role'), /debugger/);
    await waitText(exec.getByTestId('grant-rule'), /create/);
    await waitText(exec.getByTestId('since'), /since .*rev \d+.*ago/);
    assert.ok((await page.getByTestId('perm-group').count()) >= 2, 'cluster-wide and payments groups');
    // The explorer and who-else shortcuts are there.
    assert.match(await page.getByTestId('explore-from-here').getAttribute('href'), /^\/explore\//);
    assert.ok((await exec.getByTestId('who-else').count()) === 1);
    await page.getByTestId('escalation').waitFor();
    await page.screenshot({ path: artifact('entity-user.png'), fullPage: true });
    // Escape closes the popup; the page's links work (the binding's page shows its role and subject).
    await exec.getByTestId('grant-binding').getByRole('link').click();
    await waitText(page.getByTestId('entity-title'), /contractors-debug/);
    await waitText(page.getByTestId('binding-subjects'), /oidc:contractors/);
    await waitText(page.getByTestId('details'), /debugger/);
    await check();
  });

  test('search: Esc closes the list, Enter without a pick opens the results page, kind chips filter it', async () => {
    const { page, check } = await open('/');
    const input = page.getByTestId('search-input');
    await input.fill('view');
    await page.getByTestId('search-result').first().waitFor();
    await page.keyboard.press('Escape');
    await page.getByTestId('search-results').waitFor({ state: 'detached' });
    await input.press('Enter');
    await page.waitForURL(/\/search\?q=view/);
    await page.getByTestId('search-page-result').first().waitFor();
    const kinds = async () => page.getByTestId('search-page-result').locator('[data-testid=node-link]').evaluateAll((es) => [...new Set(es.map((e) => e.getAttribute('data-kind')))]);
    assert.ok((await kinds()).length > 1, 'several kinds match "view"');
    await page.getByTestId('kind-chip-CLUSTER_ROLE').click();
    await page.waitForURL(/kinds=CLUSTER_ROLE/);
    await waitText(page.getByTestId('search-page-results'), /view/);
    await page.waitForFunction(() => {
      const ks = [...document.querySelectorAll('[data-testid=search-page-result] [data-testid=node-link]')].map((e) => e.getAttribute('data-kind'));
      return ks.length > 0 && ks.every((k) => k === 'CLUSTER_ROLE');
    });
    assert.deepEqual(await kinds(), ['CLUSTER_ROLE']);
    await page.screenshot({ path: artifact('search-page.png') });
    await check();
  });

  test('who can read secrets in kube-system, why and since when: answered from the home page by clicks alone', async () => {
    const { page, check } = await open('/');
    // The home page: questions, risk counts, the newest revisions.
    await page.getByTestId('home-sev-critical').waitFor();
    await page.getByTestId('home-revisions').locator('tr').first().waitFor();
    await waitText(page.getByTestId('home-server'), /ready/);
    await page.screenshot({ path: artifact('home.png') });
    await page.getByTestId('q-secrets-kube-system').click();
    await page.waitForURL(/\/who-can\?/);
    const u = new URL(page.url());
    assert.equal(u.searchParams.get('verb'), 'get');
    assert.equal(u.searchParams.get('resource'), 'secrets');
    assert.equal(u.searchParams.get('ns'), 'kube-system');
    const answer = page.getByTestId('who-can-answer');
    await waitText(page.getByTestId('who-can-total'), /\d+ subjects can get secrets in kube-system/);
    // system:masters first, flagged as superuser, with its cluster-admin path.
    const masters = page.getByTestId('who-can-entry').first();
    assert.equal(await masters.getAttribute('data-subject'), 'system:masters');
    await masters.getByTestId('superuser').waitFor();
    await waitText(masters.getByTestId('grant-role'), /cluster-admin/);
    await waitText(masters.getByTestId('since'), /since/);
    // The demo's step 04: every viewer reads secrets through secret-peeker aggregated into view.
    const peek = answer.getByTestId('grant-path').filter({ has: page.getByTestId('aggregated-from').filter({ hasText: 'secret-peeker' }) }).first();
    await waitText(peek.getByTestId('grant-role'), /view/);
    await waitText(peek.getByTestId('since'), new RegExp(`rev ${revs['demo: view-reads-secrets']}\\b`));
    // The form holds the question (deep link), and the answer links to the explorer.
    assert.equal(await page.getByTestId('verb').inputValue(), 'get');
    assert.equal(await page.getByTestId('ns').inputValue(), 'kube-system');
    assert.match(await page.getByTestId('draw-in-explorer').getAttribute('href'), /^\/explore\/[^?]+\?.*path=/);
    await page.screenshot({ path: artifact('who-can.png'), fullPage: true });

    // Another question with the form's selects only: who can exec into pods in payments.
    await page.getByTestId('verb').selectOption('create');
    await page.getByTestId('resource').selectOption('pods/exec|');
    await page.getByTestId('ns').selectOption('payments');
    await page.getByTestId('who-can-submit').click();
    await page.waitForURL(/subresource=exec/);
    await waitText(page.getByTestId('who-can-total'), /can create pods\/exec in payments/);
    await page.getByTestId('who-can-entry').filter({ hasText: 'oidc:contractors' }).waitFor();
    // Back returns to the first question.
    await page.goBack();
    await waitText(page.getByTestId('who-can-total'), /get secrets in kube-system/);
    assert.equal(await page.getByTestId('resource').inputValue(), 'secrets|');
    await check();
  });

  test('can-i: a decision with its reasons and identity', async () => {
    const { page, check } = await open('/can-i');
    await page.getByTestId('cani-kind').selectOption('USER');
    await page.getByTestId('cani-subject').fill('dana@example.com');
    await page.getByTestId('cani-verb').selectOption('create');
    await page.getByTestId('cani-resource').selectOption('pods/exec|');
    await page.getByTestId('cani-ns').selectOption('payments');
    await page.getByTestId('can-i-submit').click();
    const decision = page.getByTestId('decision');
    await decision.waitFor();
    assert.equal(await decision.getAttribute('data-allowed'), 'true');
    await waitText(decision, /Yes/);
    await waitText(page.getByTestId('identity'), /oidc:contractors/);
    await waitText(page.getByTestId('can-i-answer').getByTestId('grant-binding').first(), /contractors-debug/);
    await page.screenshot({ path: artifact('can-i.png') });
    // Not in another namespace.
    await page.getByTestId('cani-ns').selectOption('kube-system');
    await page.getByTestId('can-i-submit').click();
    await page.waitForURL(/ns=kube-system/);
    await waitText(page.getByTestId('decision'), /No/);
    assert.equal(await page.getByTestId('decision').getAttribute('data-allowed'), 'false');
    await check();
  });

  test('history → diff of two revisions: the object change and the permission deltas of step 04', async () => {
    const { page, check } = await open('/history');
    const from = revs['demo: ci-gets-cluster-admin'];
    const to = revs['demo: view-reads-secrets'];
    await page.locator(`[data-testid=revision-row][data-revision="${to}"] [data-testid=pick-revision]`).check();
    await page.locator(`[data-testid=revision-row][data-revision="${from}"] [data-testid=pick-revision]`).check();
    await page.screenshot({ path: artifact('history.png') });
    await page.getByTestId('compare').click();
    await page.waitForURL(new RegExp(`/diff\\?from=${from}&to=${to}`));
    const change = page.getByTestId('object-change').filter({ hasText: 'secret-peeker' });
    await change.waitFor();
    assert.equal(await change.getAttribute('data-op'), 'ADD');
    await change.getByTestId('toggle-change').click();
    await waitText(change.getByTestId('json-after'), /aggregate-to-view/);
    // Permission deltas: kyverno's controllers gained secrets through view ← secret-peeker.
    const delta = page.getByTestId('subject-delta').filter({ hasText: 'kyverno-admission-controller' });
    await delta.waitFor();
    const gained = delta.getByTestId('gained').filter({ hasText: 'secrets' }).first();
    await waitText(gained.getByTestId('aggregated-from'), /secret-peeker/);
    await waitText(page.getByTestId('finding-deltas'), /Secrets readable|secret/i);
    await page.screenshot({ path: artifact('diff.png'), fullPage: true });
    await check();
  });

  test('time travel: an object made later does not exist at an old revision, and who-can answers differ', async () => {
    const { page, check } = await open('/lookup?kind=CLUSTER_ROLE&name=secret-peeker');
    await waitText(page.getByTestId('entity-title'), /secret-peeker/);
    const old = revs['demo: ci-gets-cluster-admin'];
    await page.getByTestId('timetravel').selectOption(String(old));
    await page.waitForURL(new RegExp(`[?&]at=${old}\\b`));
    await waitText(page.getByTestId('time-travel-banner'), new RegExp(`Viewing revision ${old}`));
    await waitText(page.getByTestId('not-at-revision'), new RegExp(`does not exist at revision ${old}`));
    await page.screenshot({ path: artifact('time-travel.png') });

    // Who-can at the old revision (the ?at= rides along every link) against live.
    await page.getByTestId('nav-home').click();
    await page.getByTestId('q-secrets-kube-system').click();
    await page.waitForURL(new RegExp(`/who-can\\?.*at=${old}`));
    const oldTotal = Number((await waitText(page.getByTestId('who-can-total'), /^\d+ subjects/)).match(/^(\d+)/)[1]);
    await waitText(page.getByTestId('answer-revision'), new RegExp(`at revision ${old}\\b`));
    assert.equal(await page.getByTestId('aggregated-from').filter({ hasText: 'secret-peeker' }).count(), 0, 'no secret-peeker path before step 04');
    await page.getByTestId('back-to-live').click();
    await page.waitForURL((u) => !u.searchParams.has('at'));
    await page.getByTestId('time-travel-banner').waitFor({ state: 'detached' });
    await waitText(page.getByTestId('answer-revision'), new RegExp(`at revision (?!${old}\\b)\\d+`));
    const liveText = await waitText(page.getByTestId('who-can-total'), /^\d+ subjects/);
    await page.getByTestId('aggregated-from').filter({ hasText: 'secret-peeker' }).first().waitFor();
    const liveTotal = Number(liveText.match(/^(\d+)/)[1]);
    assert.ok(liveTotal > oldTotal, `live ${liveTotal} > old ${oldTotal}`);
    await check();
  });

  test('risks: counts, trend, filters, and a finding drilled down to its attack path', async () => {
    const { page, check } = await open('/risks');
    await page.getByTestId('trend').waitFor();
    assert.ok((await page.getByTestId('trend-bar').count()) >= 2, 'trend bars');
    assert.equal(await page.locator('[data-testid=trend] svg rect').first().evaluate((e) => e instanceof SVGElement), true);
    const total = Number(await page.getByTestId('findings-total').textContent());
    assert.ok(total > 0);
    await page.getByTestId('ns-count').filter({ hasText: 'payments' }).click();
    await page.waitForURL(/ns=payments/);
    await waitText(page.getByTestId('findings').getByTestId('finding-row').first(), /payments/);
    await page.screenshot({ path: artifact('risks.png'), fullPage: true });
    // Drill down: the finding about payments/ci-deployer's cluster-admin binding has a path to cluster-admin.
    await page.goto(`${kiem.url}/risks?pack=cis-5.1`);
    const row = page.getByTestId('finding-row').filter({ hasText: 'ci-deployer' }).first();
    await row.getByTestId('finding-link').click();
    await page.waitForURL(/\/findings\//);
    await page.getByTestId('finding-title').waitFor();
    await page.getByTestId('remediation').waitFor();
    await page.getByTestId('evidence-item').first().waitFor();
    await page.getByTestId('subject-attack-paths').getByTestId('attack-graph').waitFor();
    await page.screenshot({ path: artifact('finding.png'), fullPage: true });
    await check();
  });

  test('filters: a CEL error shows its line and column; a saved filter raises an alert live after a change', async () => {
    const { page, check } = await open('/filters');
    await page.getByTestId('live-indicator').waitFor();
    await page.getByTestId('new-filter').click();
    await page.getByTestId('filter-id').fill('e2e-users');
    await page.getByTestId('filter-name').fill('users joining oidc:e2e');
    await page.getByTestId('filter-target').selectOption('ENTITIES');
    await page.getByTestId('filter-kind').selectOption('User');
    await page.getByTestId('filter-expression').fill("object.name != '' &&\n  object.grups.exists(g, g == 'oidc:e2e')");
    await page.getByTestId('save-filter').click();
    const err = page.getByTestId('expression-error');
    await waitText(err, /line 2, column \d+/);
    const pre = await err.locator('pre').textContent();
    assert.match(pre, /\^/, 'the caret under the fault is kept');
    assert.match(pre, /grups/);
    assert.equal(await err.locator('pre').evaluate((e) => getComputedStyle(e).whiteSpace), 'pre-wrap');
    await page.screenshot({ path: artifact('filter-error.png') });

    await page.getByTestId('filter-expression').fill("object.groups.exists(g, g == 'oidc:e2e')");
    await page.getByTestId('save-filter').click();
    await page.locator('[data-testid=filter-item][data-id=e2e-users]').waitFor();
    await waitText(page.getByTestId('live-indicator'), /live/);

    // A change: a user joins oidc:e2e (groups file + reload). The alert arrives without reloading the page.
    await kiem.setGroups('e2e-joiner@example.com', ['oidc:e2e']);
    const alert = page.locator('[data-testid=alert][data-fresh=true][data-filter=e2e-users]');
    await waitText(alert, /e2e-joiner@example\.com/, 30_000);
    await page.screenshot({ path: artifact('filters.png'), fullPage: true });

    // Delete asks first.
    const item = page.locator('[data-testid=filter-item][data-id=e2e-users]');
    await item.getByTestId('delete-filter').click();
    await item.getByTestId('confirm-delete').click();
    await item.waitFor({ state: 'detached' });
    await check();
  });

  test('hostile names render inert and readable', async () => {
    const { page, check } = await open('/');
    const names = [hostile.markup, hostile.long, hostile.unicode];
    for (const [q, name] of [['onerror', hostile.markup], ['very-long-user', hostile.long], ['Ünïcødé', hostile.unicode]]) {
      await page.getByTestId('search-input').fill(q);
      const hit = page.getByTestId('search-result').filter({ hasText: q }).first();
      await hit.waitFor();
      await hit.click();
      await page.waitForURL(/\/e\//);
      const title = page.getByTestId('entity-title');
      await waitText(title, /\S/);
      const shown = title.locator('bdi.name').last();
      assert.equal(await shown.getAttribute('title'), name, 'the whole name is the title');
      assert.ok(await shown.isVisible());
      assert.equal(await shown.textContent(), name, 'the name is the text, whole');
      if (name === hostile.unicode) {
        // The bidi override and its pop are isolated (applied to nothing) and labelled: the name reads as stored.
        const ctl = shown.locator('.bidi-ctl');
        assert.deepEqual(await ctl.evaluateAll((es) => es.map((e) => e.getAttribute('data-ctl'))), ['RLO', 'PDF']);
        assert.equal(await ctl.first().evaluate((e) => getComputedStyle(e, '::before').content), '"RLO"');
        // "evil" is drawn left to right: its first letter is left of its last.
        const [l, r] = await shown.evaluate((e) => {
          const t = [...e.childNodes].find((n) => n.nodeType === 3 && n.textContent.startsWith('evil'));
          const box = (a, b) => { const rg = document.createRange(); rg.setStart(t, a); rg.setEnd(t, b); return rg.getBoundingClientRect().left; };
          return [box(0, 1), box(3, 4)];
        });
        assert.ok(l < r, `evil reads left to right (${l} < ${r})`);
      }
      await page.getByTestId('permissions').waitFor();
      assert.equal(await page.evaluate(() => window.__pwned), undefined);
      assert.equal(await page.locator('main img').count(), 0, 'no <img> was created');
    }
    await page.screenshot({ path: artifact('hostile-entity.png') });
    // All three in one list: the members of oidc:auditors.
    await page.goto(`${kiem.url}/lookup?kind=GROUP&name=${encodeURIComponent('oidc:auditors')}`);
    const members = page.getByTestId('members');
    await members.waitFor();
    for (const n of names) {
      // Playwright's attribute selectors take any string as a quoted value (CSS.escape-like quoting via JSON).
      const el = members.locator(`bdi.name[data-name=${JSON.stringify(n)}]`).first();
      assert.equal(await el.getAttribute('title'), n, 'the full name is in the title');
      assert.ok(await el.isVisible());
      const box = await el.boundingBox();
      assert.ok(box && box.width < 600, `long names are clipped (${box?.width}px)`);
      assert.equal(await el.evaluate((e) => getComputedStyle(e).unicodeBidi), 'isolate');
    }
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.equal(await page.locator('img').count(), 0);
    await page.screenshot({ path: artifact('hostile-members.png') });
    await check();
  });

  test('unknown paths show a not-found page; GraphiQL needs a token and has the schema', async () => {
    const { page, check } = await open('/no/such/page');
    await page.getByTestId('not-found').waitFor();
    await page.goto(`${kiem.url}/graphiql`);
    await page.locator('.graphiql-container').waitFor();
    // The default query runs with the console's token and answers.
    await page.locator('.graphiql-execute-button').click();
    await waitText(page.locator('.graphiql-response'), /"totalCount": \d+/);
    await page.screenshot({ path: artifact('graphiql.png') });
    await check();
  });
});

// Browser tests of what the console shows from audit events, against a real kiem fed through POST /audit as the
// apiserver's webhook feeds it. The cluster is a snapshot of our own (the demo may grow an audit trail of its own):
// its objects carry the UIDs and resourceVersions audit events are matched by, and no audit event exists before the
// tests post them. Covered: the empty state, the Usage panel (usage records, least privilege over a window,
// suggested YAML), last-seen times and observed group memberships, and who made a change (history, diff, alerts).
// Hostile user names arrive through audit events here, and must render inert.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { artifact, auditEvent, hostile, launchBrowser, openPage, startKiem, waitText } from './harness.mjs';

const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const ago = (ms) => new Date(Date.now() - ms);

const saGroups = ['system:serviceaccounts', 'system:serviceaccounts:payments', 'system:authenticated'];
const ciDeployer = { username: 'system:serviceaccount:payments:ci-deployer', groups: saGroups };
const apiSA = { username: 'system:serviceaccount:payments:api', groups: saGroups };
const dana = { username: 'dana@example.com', groups: ['oidc:contractors', 'oidc:e2e-observed', 'system:authenticated'] };

const READER_UID = '9d0c0c52-0000-4000-8000-00000000e2e1';

/**
 * cluster is the snapshot: payments/ci-deployer holds a deployer Role and (by mistake) cluster-admin, every
 * ServiceAccount gets discovery through a group binding, and erin reads configmaps through e2e-reader, whose
 * resourceVersion and verbs the changed-by test moves.
 */
const cluster = (readerRV, readerVerbs) => `apiVersion: v1
kind: Namespace
metadata: {name: payments, uid: 9d0c0c52-0000-4000-8000-0000000000a0, resourceVersion: "10"}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ci-deployer, namespace: payments, uid: 9d0c0c52-0000-4000-8000-0000000000a1, resourceVersion: "11"}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: api, namespace: payments, uid: 9d0c0c52-0000-4000-8000-0000000000a2, resourceVersion: "12"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deployer, namespace: payments, uid: 9d0c0c52-0000-4000-8000-0000000000a3, resourceVersion: "13"}
rules:
- {apiGroups: [apps], resources: [deployments, statefulsets], verbs: [get, list, watch, create, update, patch]}
- {apiGroups: [""], resources: [configmaps, services], verbs: [get, list, watch, create, update, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ci-deployer, namespace: payments, uid: 9d0c0c52-0000-4000-8000-0000000000a4, resourceVersion: "14"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}
subjects: [{kind: ServiceAccount, name: ci-deployer, namespace: payments}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cluster-admin, uid: 9d0c0c52-0000-4000-8000-0000000000a5, resourceVersion: "15"}
rules:
- {apiGroups: ["*"], resources: ["*"], verbs: ["*"]}
- {nonResourceURLs: ["*"], verbs: ["*"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: payments-ci-admin, uid: 9d0c0c52-0000-4000-8000-0000000000a6, resourceVersion: "16"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: ci-deployer, namespace: payments}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-discovery, uid: 9d0c0c52-0000-4000-8000-0000000000a7, resourceVersion: "17"}
rules:
- {nonResourceURLs: [/api, /version], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-discovery, uid: 9d0c0c52-0000-4000-8000-0000000000a8, resourceVersion: "18"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-discovery}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:serviceaccounts"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-reader, uid: ${READER_UID}, resourceVersion: "${readerRV}"}
rules:
- {apiGroups: [""], resources: [configmaps], verbs: [${readerVerbs.join(', ')}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-reader, uid: 9d0c0c52-0000-4000-8000-00000000e2e2, resourceVersion: "101"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "erin@example.com"}]
`;

/** noMarkup asserts the hostile markup ran nowhere: no handler fired and no <img> was made. */
async function noMarkup(page) {
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no injected handler ran');
  assert.equal(await page.locator('img').count(), 0, 'no <img> was created');
}

describe('audit events in the console (a snapshot, events posted as the apiserver webhook does)', () => {
  let kiem;
  let browser;
  let dir;
  const open = (path, opts) => openPage(browser, kiem, path, opts);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kiem-ui-snapshot-'));
    writeFileSync(join(dir, 'cluster.yaml'), cluster('100', ['get']));
    kiem = await startKiem({ snapshot: dir });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await kiem?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // Posted once, by the first test that needs audit data (the empty state is tested before it).
  let posted = null;
  const postAudit = () => {
    posted ??= kiem.postAudit([
      // Observation began 60 days ago: a 90-day window is not fully observed, a 30-day one is.
      auditEvent({ user: { username: 'early-bird@example.com', groups: ['system:authenticated'] }, verb: 'get', uri: '/version', at: ago(60 * DAY) }),
      auditEvent({ user: ciDeployer, verb: 'list', objectRef: { resource: 'deployments', apiGroup: 'apps', namespace: 'payments' }, at: ago(180 * MIN) }),
      auditEvent({ user: ciDeployer, verb: 'patch', objectRef: { resource: 'deployments', apiGroup: 'apps', namespace: 'payments', name: 'api' }, at: ago(120 * MIN) }),
      auditEvent({ user: ciDeployer, verb: 'get', objectRef: { resource: 'configmaps', namespace: 'payments', name: 'settings' }, at: ago(10 * MIN) }),
      // 60 distinct requests of payments/api: more than a page of usage records.
      ...Array.from({ length: 60 }, (_, i) => auditEvent({ user: apiSA, verb: 'get', objectRef: { resource: `widgets${i}`, apiGroup: 'e2e.example.com', namespace: 'payments' }, at: ago((100 - i) * MIN) })),
      // dana authenticates with a declared group and one the groups file does not know.
      auditEvent({ user: dana, verb: 'create', objectRef: { resource: 'pods', subresource: 'exec', namespace: 'payments', name: 'api-7d9f8-abcde' }, at: ago(30 * MIN) }),
      // Hostile user names, as an identity provider could assert them.
      auditEvent({ user: { username: hostile.markup, groups: ['oidc:auditors', 'system:authenticated'] }, verb: 'list', objectRef: { resource: 'pods', namespace: 'payments' }, at: ago(5 * MIN) }),
      auditEvent({ user: { username: hostile.unicode, groups: ['oidc:auditors', 'system:authenticated'] }, verb: 'list', objectRef: { resource: 'pods', namespace: 'payments' }, at: ago(4 * MIN) }),
    ]);
    return posted;
  };

  test('without audit events the Usage panel says how to send them, and nobody has a last-seen time', async () => {
    const { page, check } = await open('/lookup?kind=SERVICE_ACCOUNT&name=ci-deployer&ns=payments');
    const usage = page.getByTestId('usage');
    await waitText(usage.getByTestId('no-audit'), /^No audit events yet — see docs\/audit\.md to point the apiserver's audit webhook at kiem\.$/);
    assert.equal(await usage.getByTestId('least-privilege').count(), 0, 'no least-privilege report without audit data');
    await page.getByTestId('details').waitFor();
    assert.equal(await page.getByTestId('last-seen').count(), 0);
    await page.screenshot({ path: artifact('usage-empty.png'), fullPage: true });
    // A user's page too; a group has no Usage panel.
    await page.goto(`${kiem.url}/lookup?kind=USER&name=dana%40example.com`);
    await page.getByTestId('usage').getByTestId('no-audit').waitFor();
    await page.goto(`${kiem.url}/lookup?kind=GROUP&name=oidc%3Acontractors`);
    await page.getByTestId('details').waitFor();
    assert.equal(await page.getByTestId('usage').count(), 0);
    await check();
  });

  test('a ServiceAccount: usage most recent first, least privilege by window, unused grants by binding and role, YAML copied, kept list', async () => {
    await postAudit();
    const { page, context, check } = await open('/lookup?kind=SERVICE_ACCOUNT&name=ci-deployer&ns=payments');
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: kiem.url });
    await waitText(page.getByTestId('last-seen'), /ago/);
    const usage = page.getByTestId('usage');
    await waitText(usage.getByTestId('audit-coverage'), /audit events from .* · \d+ events/);
    // The three requests, the most recent first.
    await waitText(usage.getByTestId('usage-total'), /^3$/);
    const rows = usage.getByTestId('usage-row');
    assert.deepEqual(
      await rows.evaluateAll((rs) => rs.map((r) => `${r.dataset.verb} ${r.dataset.resource}`)),
      ['get configmaps', 'patch deployments', 'list deployments'],
    );
    await waitText(rows.first(), /get\s*configmaps\s*payments/);

    // Least privilege over the default 90 days: observation began 60 days ago, which the report says.
    const lp = usage.getByTestId('least-privilege');
    assert.equal(await lp.getAttribute('data-window'), '90d');
    assert.equal(await lp.getByTestId('lp-window-90d').getAttribute('aria-pressed'), 'true');
    await waitText(lp.getByTestId('lp-incomplete'), /not fully observed.*observed only since/);
    assert.equal(Number(await lp.getByTestId('lp-count-used').getAttribute('data-count')) >= 3, true);
    // Unused grants, by binding → role: cluster-admin through payments-ci-admin, and the deployer Role's other verbs.
    const admin = lp.locator('[data-testid=unused-binding][data-binding=payments-ci-admin] [data-testid=unused-role][data-role=cluster-admin]');
    await waitText(admin, /payments-ci-admin.*cluster-admin/);
    const deployer = lp.locator('[data-testid=unused-binding][data-binding=ci-deployer] [data-testid=unused-role][data-role=deployer]');
    // One row per rule and resource, with the verbs never used: not list and patch on deployments, which were.
    const deployments = deployer.locator('[data-testid=unused-permission][data-resource=deployments]');
    await waitText(deployments, /^get, watch, create, update on deployments \(apps\)/);
    assert.equal(await deployments.getAttribute('data-verbs'), 'get,watch,create,update');
    // Grants shared through a group binding start folded.
    assert.equal(await lp.locator('[data-testid=unused-role][data-role=e2e-discovery]').getAttribute('data-shared'), 'true');
    assert.equal(await lp.locator('[data-testid=unused-role][data-role=e2e-discovery] [data-testid=unused-permission]').first().isVisible(), false);
    // The suggested RBAC, copied to the clipboard whole.
    const yaml = await waitText(lp.getByTestId('lp-yaml'), /kind: Role\n[\s\S]*name: kiem-least-payments\.ci-deployer[\s\S]*- patch/);
    await lp.getByTestId('copy-yaml').click();
    await waitText(lp.getByTestId('copy-status'), /Copied/);
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), yaml);
    // Kept: the used grants; cluster-admin's wildcard is narrowed, the deployer Role's verbs are kept as they are.
    const narrowed = lp.locator('[data-testid=kept-permission][data-narrowed=true]').filter({ hasText: 'cluster-admin' });
    await waitText(narrowed, /narrowed by verb/);
    await lp.locator('[data-testid=kept-permission][data-narrowed=false]').filter({ hasText: 'deployer' }).first().waitFor();
    await page.screenshot({ path: artifact('usage-sa.png'), fullPage: true });

    // 30 days are fully observed: no warning, and the window rides in the URL.
    await lp.getByTestId('lp-window-30d').click();
    await page.waitForURL(/[?&]unused=30d/);
    await page.locator('[data-testid=least-privilege][data-window="30d"] [data-testid=lp-window]').waitFor();
    await waitText(lp.getByTestId('lp-window'), /the whole window/);
    assert.equal(await lp.getByTestId('lp-incomplete').count(), 0);
    assert.equal(await lp.getByTestId('lp-window-30d').getAttribute('aria-pressed'), 'true');
    // Reloaded, the page keeps the window.
    await page.reload();
    await page.locator('[data-testid=least-privilege][data-window="30d"] [data-testid=lp-window]').waitFor();
    await check();
  });

  test('usage records come in pages of 50', async () => {
    await postAudit();
    const { page, check } = await open('/lookup?kind=SERVICE_ACCOUNT&name=api&ns=payments');
    const usage = page.getByTestId('usage');
    await waitText(usage.getByTestId('usage-total'), /^60$/);
    const rows = usage.getByTestId('usage-row');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=usage] [data-testid=usage-row]').length === 50);
    assert.equal(await rows.first().getAttribute('data-resource'), 'widgets59', 'the most recent first');
    await usage.getByTestId('load-more').click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=usage] [data-testid=usage-row]').length === 60);
    assert.equal(await rows.last().getAttribute('data-resource'), 'widgets0');
    assert.equal(await usage.getByTestId('load-more').count(), 0);
    // Requests RBAC does not grant are left out of the suggestion, and listed.
    await waitText(usage.getByTestId('lp-not-granted'), /widgets0/);
    await check();
  });

  test('a user: last seen, memberships declared and observed; hostile user names from audit events render inert', async () => {
    await postAudit();
    const { page, check } = await open('/lookup?kind=USER&name=dana%40example.com');
    await waitText(page.getByTestId('last-seen'), /ago.*first seen/);
    const declared = page.locator('[data-testid=membership][data-group="oidc:contractors"]');
    assert.equal(await declared.getAttribute('data-declared'), 'true');
    assert.equal(await declared.getAttribute('data-observed'), 'true');
    await waitText(declared.getByTestId('observed'), /observed\s*first seen .*last seen .*ago/);
    const observed = page.locator('[data-testid=membership][data-group="oidc:e2e-observed"]');
    assert.equal(await observed.getAttribute('data-declared'), 'false');
    assert.equal(await observed.getAttribute('data-observed'), 'true');
    assert.equal(await observed.getByTestId('declared').count(), 0);
    await waitText(page.getByTestId('usage').getByTestId('usage-row').first(), /create\s*pods\/exec\s*payments/);
    await page.getByTestId('usage').getByTestId('lp-summary').waitFor();
    await page.screenshot({ path: artifact('usage-user.png'), fullPage: true });
    // A group audit events showed has a last-seen time too.
    await page.goto(`${kiem.url}/lookup?kind=GROUP&name=${encodeURIComponent('oidc:e2e-observed')}`);
    await waitText(page.getByTestId('last-seen'), /ago/);

    for (const name of [hostile.markup, hostile.unicode]) {
      await page.goto(`${kiem.url}/lookup?kind=USER&name=${encodeURIComponent(name)}`);
      await waitText(page.getByTestId('last-seen'), /ago/);
      await waitText(page.getByTestId('usage').getByTestId('usage-row').first(), /list\s*pods\s*payments/);
      const judged = page.getByTestId('least-privilege').locator('.lp-report > p').first().locator('bdi.name').first();
      await judged.waitFor();
      assert.equal(await judged.textContent(), name, 'the name is the text, whole');
      assert.equal(await judged.getAttribute('title'), name);
      assert.equal(await judged.evaluate((e) => getComputedStyle(e).unicodeBidi), 'isolate');
      if (name === hostile.unicode) {
        assert.deepEqual(await judged.locator('.bidi-ctl').evaluateAll((es) => es.map((e) => e.getAttribute('data-ctl'))), ['RLO', 'PDF']);
      }
      await noMarkup(page);
    }
    await page.screenshot({ path: artifact('usage-hostile.png'), fullPage: true });
    await check();
  });

  test('alerts, history and diff name who changed a ClusterRole, impersonation and details included, a hostile name inert', async () => {
    await kiem.gql(`mutation { saveFilter(input: { id: "e2e-role-changes", name: "ClusterRole changes", target: CHANGES, expression: "change.kind == 'ClusterRole'" }) { id } }`);
    const { page, check } = await open('/filters?filter=e2e-role-changes');
    await waitText(page.getByTestId('live-indicator'), /live/);
    // The role changes (a watch would see resourceVersion 205) and raises an alert; then the apiserver's audit event
    // of the write arrives: an impersonated update, the impersonated name hostile.
    writeFileSync(join(dir, 'cluster.yaml'), cluster('205', ['get', 'list']));
    const { revision: rev } = await kiem.reload();
    await kiem.postAudit([
      auditEvent({
        level: 'RequestResponse', verb: 'update',
        user: { username: 'ops-admin@example.com', groups: ['oidc:ops', 'system:authenticated'] },
        impersonatedUser: { username: hostile.markup, groups: ['oidc:auditors', 'system:authenticated'] },
        sourceIPs: ['10.9.8.7'], userAgent: 'kubectl/v1.33.0 (linux/amd64)',
        objectRef: { resource: 'clusterroles', apiGroup: 'rbac.authorization.k8s.io', name: 'e2e-reader' },
        responseObject: { kind: 'ClusterRole', apiVersion: 'rbac.authorization.k8s.io/v1', metadata: { name: 'e2e-reader', uid: READER_UID, resourceVersion: '205' } },
      }),
    ]);

    // The alert arrived live, maybe before the audit event: opening its details reads its causes again.
    const alert = page.locator(`[data-testid=alert][data-fresh=true][data-filter=e2e-role-changes]`).first();
    await waitText(alert, new RegExp(`rev ${rev}\\b`), 30_000);
    await alert.getByRole('button', { name: /details/ }).click();
    await waitText(alert.getByTestId('cause-actor'), /by/);
    assert.equal(await alert.getByTestId('cause-actor').locator('bdi.name').textContent(), hostile.markup);
    assert.equal(await alert.getByTestId('alert-actors').locator('bdi.name').textContent(), hostile.markup);
    await noMarkup(page);
    await page.screenshot({ path: artifact('alert-actor.png') });

    // The revision's change list: changed by the impersonated user, as impersonated by the one who did it.
    await page.goto(`${kiem.url}/history/${rev}`);
    const change = page.locator('[data-testid=object-change][data-name=e2e-reader]');
    const actor = change.getByTestId('actor');
    await waitText(change.getByTestId('actors'), /^changed by /);
    assert.equal(await actor.locator('summary').textContent(), `${hostile.markup} (as impersonated by ops-admin@example.com)`);
    assert.equal(await actor.getAttribute('data-user'), hostile.markup);
    assert.equal(await actor.locator('summary bdi.name').first().textContent(), hostile.markup, 'the name is the text, whole');
    // Hovering tells the rest; a click opens it.
    assert.match(await actor.locator('summary').getAttribute('title'), /groups: oidc:auditors, system:authenticated\nuser agent: kubectl\/v1\.33\.0 \(linux\/amd64\)\nsource IP: 10\.9\.8\.7\naudit ID: /);
    assert.equal(await change.getByTestId('actor-details').isVisible(), false);
    await actor.locator('summary').click();
    const details = change.getByTestId('actor-details');
    await details.waitFor();
    await waitText(details.getByTestId('actor-groups'), /oidc:auditors/);
    await waitText(details.getByTestId('actor-user-agent'), /^kubectl\/v1\.33\.0 \(linux\/amd64\)$/);
    await waitText(details.getByTestId('actor-source-ip'), /^10\.9\.8\.7$/);
    await waitText(details.getByTestId('actor-audit-id'), /^[0-9a-f-]{36}$/);
    await noMarkup(page);
    await page.screenshot({ path: artifact('changed-by.png') });

    // The diff of the two revisions: the object change lists its actors.
    await page.goto(`${kiem.url}/diff?from=${rev - 1}&to=${rev}`);
    const diffChange = page.getByTestId('object-changes').locator('[data-testid=object-change][data-name=e2e-reader]');
    await waitText(diffChange.getByTestId('actors'), /changed by .*\(as impersonated by ops-admin@example\.com\)/);
    assert.equal(await diffChange.getByTestId('actor').getAttribute('data-user'), hostile.markup);
    await noMarkup(page);
    await check();
  });
});

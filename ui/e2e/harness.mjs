// Test harness for the console's browser tests and the explorer benchmark: a real `kiem serve --demo` (the
// binary the Makefile builds) on a loopback port with its own store, and Debian's Chromium driven by
// playwright-core. Nothing is mocked: the pages talk to the real GraphQL API.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');

/** Names a hostile identity provider (or binding author) could give users: they must render inert and readable. */
export const hostile = {
  markup: '<img src=x onerror=window.__pwned=1>',
  long: `very-long-user-${'x'.repeat(280)}@example.com`,
  unicode: 'Ünïcødé‮evil‬-名前-🔐@example.com',
};

/** The demo's own groups file (internal/demo/groups.yaml) as a map. */
function demoGroups() {
  const out = {};
  for (const line of readFileSync(join(repo, 'internal', 'demo', 'groups.yaml'), 'utf8').split('\n')) {
    const m = /^([^#\s][^:]*):\s*(\[.*\])\s*$/.exec(line);
    if (m) out[m[1]] = JSON.parse(m[2]);
  }
  return out;
}

/**
 * startKiem starts `kiem serve --demo` (or, with snapshot, `kiem serve --snapshot DIR`) on 127.0.0.1:0 with a fresh
 * store and a groups file holding the demo's users plus the hostile names (each in oidc:auditors), and resolves
 * once the source is indexed. It returns the console URL, the printed admin token, and helpers to change the groups
 * file and commit it (the reload mutation, which also re-reads a snapshot), which is how tests make a change
 * happen, and to post audit events as the apiserver's webhook does.
 */
export async function startKiem({ args = [], groups = {}, snapshot = null } = {}) {
  const bin = process.env.KIEM_BIN || join(repo, 'bin', 'kiem');
  const dir = mkdtempSync(join(tmpdir(), 'kiem-ui-test-'));
  const groupsFile = join(dir, 'groups.json');
  let members = { ...demoGroups(), [hostile.markup]: ['oidc:auditors'], [hostile.long]: ['oidc:auditors'], [hostile.unicode]: ['oidc:auditors'], ...groups };
  const writeGroups = () => writeFileSync(groupsFile, JSON.stringify(members, null, 1));
  writeGroups();
  const source = snapshot ? ['--snapshot', snapshot] : ['--demo'];
  const proc = spawn(bin, ['serve', ...source, '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data'), '--groups-file', groupsFile, '--log-level', 'warn', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise((res) => proc.once('exit', (code, sig) => res({ code, sig })));
  const started = new Promise((res, rej) => {
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (/indexed at revision \d+; serving on/.test(stderr)) res();
    });
    exited.then(({ code, sig }) => rej(new Error(`kiem serve exited (${code ?? sig}) before it was ready:\n${stderr}`)));
  });
  let timer;
  const bound = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error(`kiem serve was not ready within 120 s:\n${stderr}`)), 120_000);
  });
  try {
    await Promise.race([started, bound]);
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  } finally {
    clearTimeout(timer);
  }
  const url = /console at (http:\/\/[^/\s]+)\//.exec(stderr)?.[1];
  const token = /admin token[^\n]*\n\s*\n\s*(\S+)/.exec(stderr)?.[1];
  if (!url || !token) throw new Error(`could not read the URL and token kiem printed:\n${stderr}`);

  const kiem = {
    url,
    token,
    dir,
    groupsFile,
    stderr: () => stderr,
    /** gql runs a GraphQL operation as the admin from Node (test setup and checks, not what the page does). */
    async gql(query, variables = {}) {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
      });
      const body = await res.json();
      if (body.errors?.length) throw new Error(`GraphQL: ${body.errors.map((e) => e.message).join('; ')}`);
      return body.data;
    },
    /** setGroups replaces the groups of user (an empty list removes the user) and commits the file: a new revision. */
    async setGroups(user, list) {
      members = { ...members };
      if (list.length) members[user] = list;
      else delete members[user];
      writeGroups();
      return kiem.reload();
    },
    /** reload commits what changed in the groups file (and the snapshot): the new head revision. */
    async reload() {
      const { reload } = await kiem.gql('mutation { reload { revision changes } }');
      return reload;
    },
    /**
     * postAudit posts audit.k8s.io/v1 events to /audit as the apiserver's audit webhook does (the admin token may
     * write audit events); it resolves once kiem has ingested them durably.
     */
    async postAudit(items) {
      const res = await fetch(`${url}/audit`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items }),
      });
      const body = await res.text();
      if (!res.ok) throw new Error(`POST /audit: HTTP ${res.status}: ${body}`);
      const { accepted, malformed } = JSON.parse(body);
      if (accepted !== items.length || malformed) throw new Error(`POST /audit: ${body} for ${items.length} events`);
      return { accepted };
    },
    async stop() {
      proc.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return kiem;
}

/**
 * auditEvent makes one audit.k8s.io/v1 Event as the apiserver's audit webhook sends it: the ResponseComplete stage of
 * a request RBAC allowed, made by user ({ username, groups }) with verb on objectRef (resource, namespace, apiGroup,
 * name, subresource) or on a non-resource uri, received at at. extra adds or overrides fields (impersonatedUser,
 * responseObject, level, sourceIPs, userAgent).
 */
export function auditEvent({ user, verb, objectRef, uri, at = new Date(), ...extra }) {
  const t = at.toISOString();
  const o = objectRef ? { apiGroup: '', apiVersion: 'v1', ...objectRef } : undefined;
  const path = uri ?? `/${o.apiGroup ? `apis/${o.apiGroup}` : 'api'}/v1${o.namespace ? `/namespaces/${o.namespace}` : ''}/${o.resource}${o.name ? `/${o.name}` : ''}${o.subresource ? `/${o.subresource}` : ''}`;
  return {
    kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Metadata', auditID: randomUUID(), stage: 'ResponseComplete',
    requestURI: path, verb, user, sourceIPs: ['10.0.0.7'], userAgent: 'kiem-e2e/1.0', objectRef: o,
    responseStatus: { code: 200 }, requestReceivedTimestamp: t, stageTimestamp: t,
    annotations: { 'authorization.k8s.io/decision': 'allow' }, ...extra,
  };
}

/**
 * launchBrowser starts Debian's Chromium headless (never a downloaded browser). There is no GPU here: WebGL runs
 * on SwiftShader, which Chromium only uses for WebGL when told to.
 */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.KIEM_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
      '--disable-default-apps', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist',
    ],
  });
}

/**
 * newPage opens a page of a fresh context and records everything that must fail a test: uncaught errors,
 * console errors (CSP violations are reported there) and failed requests to kiem. problems() lists them.
 */
export async function newPage(browser, { viewport = { width: 1440, height: 900 } } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const seen = [];
  page.on('pageerror', (e) => seen.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') seen.push(`console error: ${m.text()}`);
  });
  page.on('requestfailed', (r) => {
    // Requests the page itself cancels (a newer search superseding an older one) are not failures.
    if (!/ERR_ABORTED/.test(r.failure()?.errorText ?? '')) seen.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  return { page, context, problems: () => [...seen] };
}

/**
 * signIn signs page in to kiem with its admin token through the sign-in form and waits for the signed-in header.
 * The form's elements carry data-testid signin-token and signin-submit; the header shows data-testid viewer.
 */
export async function signIn(page, kiem, path = '/') {
  await page.goto(kiem.url + path);
  await page.getByTestId('signin-token').fill(kiem.token);
  await page.getByTestId('signin-submit').click();
  await page.getByTestId('viewer').waitFor();
}

/**
 * openPage is a fresh signed-in page at path that records CSP violations; check() at the end closes it and asserts that
 * nothing went wrong in it (page errors, console errors, failed requests, CSP violations), except problems matching
 * one of allow.
 */
export async function openPage(browser, kiem, path = '/', { allow = [] } = {}) {
  const { page, context, problems } = await newPage(browser);
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await signIn(page, kiem, path);
  const check = async () => {
    const csp = await page.evaluate(() => window.__csp ?? []);
    const bad = [...problems().filter((p) => !allow.some((re) => re.test(p))), ...csp.map((c) => `CSP violation: ${c}`)];
    await context.close();
    if (bad.length) throw new Error(`the page had errors:\n${bad.join('\n')}`);
  };
  return { page, context, check };
}

/** waitText waits until locator's text matches re (auto-retrying, no fixed sleep) and returns the text. */
export async function waitText(locator, re, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  let last = '';
  for (;;) {
    last = (await locator.textContent().catch(() => '')) ?? '';
    if (re.test(last)) return last;
    if (Date.now() > deadline) throw new Error(`text ${re} not found; last: ${last.slice(0, 400)}`);
    await locator.page().waitForTimeout(50);
  }
}

/** artifact returns where to write a test artifact (screenshots): $KIEM_UI_ARTIFACTS or ui/e2e/artifacts. */
export function artifact(name) {
  const d = process.env.KIEM_UI_ARTIFACTS || join(here, 'artifacts');
  mkdirSync(d, { recursive: true });
  return join(d, name);
}

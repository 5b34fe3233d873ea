// Benchmark of the relationship explorer on a graph of 5,000 nodes: how long the layout worker takes, how soon
// the laid-out graph is on screen, and how smooth panning is. It runs the real console (kiem serve --demo,
// headless Chromium, WebGL on SwiftShader: no GPU here, so a workstation does better) and answers only the
// explorer's neighbourhood query with a synthetic RBAC-shaped graph; every other request reaches kiem.
//
//   cd ui && node bench/explorer.mjs        (the Makefile's bench target runs it)
//   BENCH_NODES=10000 node bench/explorer.mjs
import { artifact, launchBrowser, newPage, signIn, startKiem } from '../e2e/harness.mjs';

const NODES = Number(process.env.BENCH_NODES || 5000);
const PAN_MS = 3000;

/**
 * rbacGraph builds a cluster-shaped graph of n nodes: namespaces holding ServiceAccounts, Roles, RoleBindings and
 * pods; cluster-wide ClusterRoles (some aggregated), ClusterRoleBindings, Nodes, groups and users. Edges follow
 * kiem's edge types, about 1.9 per node, and the generator is seeded so every run measures the same graph.
 */
function rbacGraph(n) {
  let seed = 42;
  const rnd = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
  const pick = (list) => list[Math.floor(rnd() * list.length)];
  const nodes = [];
  const edges = [];
  const add = (kind, name, namespace = '') => {
    const id = `bench/${kind}/${namespace}/${name}`;
    nodes.push({ id, kind, name, namespace });
    return id;
  };
  const edge = (from, to, type) => edges.push({ from, to, type });

  // Proportions of a mid-sized cluster: per namespace 10 ServiceAccounts, 5 Roles, 8 RoleBindings, 25 pods.
  const nsCount = Math.max(1, Math.round(n / 83));
  const clusterNodes = Array.from({ length: Math.max(3, Math.round(n / 170)) }, (_, i) => add('NODE', `node-${i}`));
  const groups = Array.from({ length: Math.max(3, Math.round(n / 60)) }, (_, i) => add('GROUP', i === 0 ? 'system:authenticated' : `oidc:team-${i}`));
  const saGroup = add('GROUP', 'system:serviceaccounts');
  const clusterRoles = Array.from({ length: Math.round(n / 10) }, (_, i) => add('CLUSTER_ROLE', `cluster-role-${i}`));
  for (let i = 0; i < clusterRoles.length / 20; i++) {
    for (let j = 0; j < 3; j++) edge(clusterRoles[i], pick(clusterRoles), 'AGGREGATES');
  }
  const sas = [];
  for (let k = 0; k < nsCount; k++) {
    const ns = `team-${k}`;
    const nsId = add('NAMESPACE', ns);
    const mine = [];
    const scoped = (kind, name) => {
      const id = add(kind, name, ns);
      edge(id, nsId, 'SCOPED_TO');
      return id;
    };
    for (let i = 0; i < 10; i++) {
      const sa = scoped('SERVICE_ACCOUNT', `sa-${i}`);
      mine.push(sa);
      sas.push(sa);
      edge(sa, saGroup, 'MEMBER_OF');
    }
    const roles = Array.from({ length: 5 }, (_, i) => scoped('ROLE', `role-${i}`));
    for (let i = 0; i < 8; i++) {
      const rb = scoped('ROLE_BINDING', `binding-${i}`);
      edge(rb, rnd() < 0.7 ? pick(roles) : pick(clusterRoles), 'GRANTS');
      edge(rb, pick(mine), 'SUBJECT_OF');
      if (rnd() < 0.4) edge(rb, pick(groups), 'SUBJECT_OF');
    }
    for (let i = 0; i < 25; i++) {
      const pod = scoped('POD', `pod-${i}`);
      edge(pod, pick(mine), 'RUNS_AS');
      edge(pod, pick(clusterNodes), 'RUNS_ON');
    }
  }
  const crbCount = Math.round(n / 12);
  const users = [];
  // Users fill the rest, so the graph has exactly n nodes.
  const userCount = n - nodes.length - crbCount;
  for (let i = 0; i < userCount; i++) {
    const u = add('USER', `user-${i}@example.com`);
    users.push(u);
    edge(u, pick(groups), 'MEMBER_OF');
    if (rnd() < 0.3) edge(u, pick(groups), 'MEMBER_OF');
  }
  for (let i = 0; i < crbCount; i++) {
    const crb = add('CLUSTER_ROLE_BINDING', `cluster-binding-${i}`);
    edge(crb, pick(clusterRoles), 'GRANTS');
    edge(crb, rnd() < 0.5 ? pick(groups) : rnd() < 0.5 ? pick(users) : pick(sas), 'SUBJECT_OF');
  }
  return { nodes, edges };
}

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const graph = rbacGraph(NODES);
const root = graph.nodes[0].id;
const kiem = await startKiem();
const browser = await launchBrowser();
try {
  const { page, problems } = await newPage(browser);
  await page.route('**/graphql', async (route) => {
    const body = route.request().postDataJSON();
    if (!body?.query?.includes('neighbourhood(')) return route.continue();
    return route.fulfill({ json: { data: { neighbourhood: { truncated: false, revision: 1, ...graph } } } });
  });
  await signIn(page, kiem);
  const webgl = await page.evaluate(() => {
    const gl = document.createElement('canvas').getContext('webgl2') ?? document.createElement('canvas').getContext('webgl');
    const info = gl?.getExtension('WEBGL_debug_renderer_info');
    return gl ? String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER)) : null;
  });
  if (!webgl) throw new Error('WebGL is not available in this Chromium');

  const started = Date.now();
  await page.goto(`${kiem.url}/explore/${encodeURIComponent(root)}`);
  const status = page.locator(`[data-testid=explorer-status][data-state=ready][data-layout=idle][data-total-nodes="${NODES}"]`);
  await status.waitFor({ timeout: 300_000 });
  const loadedMs = Date.now() - started;
  // kiem:render lands on the first frame after the layout; wait for it rather than for a fixed time.
  await page.waitForFunction(() => performance.getEntriesByName('kiem:render').length > 0);
  const measures = await page.evaluate(() => {
    const last = (name) => {
      const all = performance.getEntriesByName(name).filter((m) => m.detail?.full);
      const m = all[all.length - 1];
      return m ? { ms: m.duration, detail: m.detail } : null;
    };
    return { layout: last('kiem:layout'), render: last('kiem:render') };
  });
  const shown = await status.evaluate((el) => ({ nodes: Number(el.dataset.nodes), edges: Number(el.dataset.edges) }));

  // Panning: drag the stage back and forth for PAN_MS while the page records every frame's timestamp.
  const canvas = page.getByTestId('explorer-canvas');
  const box = await canvas.boundingBox();
  await page.evaluate(() => {
    const w = window;
    w.__benchFrames = [];
    const tick = (t) => {
      w.__benchFrames.push(t);
      if (w.__benchFrames.length < 100_000 && !w.__benchStop) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const cx = box.x + box.width * 0.4;
  const cy = box.y + box.height / 2;
  // Each drag sweeps 20 steps out and back; the clock is checked at every step, so a slow renderer still ends
  // the measurement after PAN_MS (mid-drag if need be).
  const t0 = Date.now();
  let drags = 0;
  let steps = 0;
  while (Date.now() - t0 < PAN_MS) {
    await page.mouse.move(cx, cy);
    await page.mouse.down();
    for (let i = 1; i <= 20 && Date.now() - t0 < PAN_MS; i++, steps++) {
      await page.mouse.move(cx + Math.sin((i / 20) * Math.PI) * 220 * (drags % 2 ? -1 : 1), cy + Math.sin((i / 10) * Math.PI) * 60);
    }
    await page.mouse.up();
    drags++;
  }
  const frames = await page.evaluate(() => {
    window.__benchStop = true;
    return window.__benchFrames;
  });
  const intervals = frames.slice(1).map((t, i) => t - frames[i]).sort((a, b) => a - b);
  const seconds = (frames[frames.length - 1] - frames[0]) / 1000;
  // Rest the pointer on the toolbar so the screenshot shows the graph, not a hover highlight.
  await page.getByTestId('explorer-fit').hover();
  await page.screenshot({ path: artifact('explorer-bench.png') });

  const row = (k, v) => console.log(`  ${k.padEnd(42)} ${v}`);
  console.log(`\nkiem explorer benchmark: ${NODES.toLocaleString()} synthetic nodes, ${graph.edges.length.toLocaleString()} edges`);
  console.log(`  (headless Chromium, WebGL renderer: ${webgl})\n`);
  row('nodes / edges rendered', `${shown.nodes.toLocaleString()} / ${shown.edges.toLocaleString()} (repeated edges merged)`);
  row('layout (kiem:layout)', `${measures.layout.ms.toFixed(0)} ms  (${measures.layout.detail.iterations} ForceAtlas2 iterations + noverlap, in the worker)`);
  row('first render after layout (kiem:render)', `${measures.render.ms.toFixed(1)} ms`);
  row('navigation to laid-out graph', `${loadedMs} ms`);
  row(`panning (${drags} drags, ${steps} pointer moves)`, `${intervals.length} frames in ${seconds.toFixed(1)} s: ${(intervals.length / seconds).toFixed(1)} fps`);
  row('frame time p50 / p95 / max', `${quantile(intervals, 0.5).toFixed(1)} / ${quantile(intervals, 0.95).toFixed(1)} / ${intervals[intervals.length - 1].toFixed(1)} ms`);
  console.log(`\n  screenshot: ${artifact('explorer-bench.png')}`);
  const bad = problems();
  if (bad.length) {
    console.error(`\nthe page reported problems:\n${bad.join('\n')}`);
    process.exitCode = 1;
  }
} finally {
  await browser.close();
  await kiem.stop();
}

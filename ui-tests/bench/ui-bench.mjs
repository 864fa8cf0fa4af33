// Figures of the web UI, measured in the system Chromium against the real binary (a
// benchmark program, not a test). Prints one line per figure.
//
//   WANLLMDB_BIN=../target/release/wanllmdb node bench/ui-bench.mjs [--scale 0.1] [--only parcoords,lineage]
//
// --scale shrinks every data size (runs, points, trials, nodes) for a quick look; figures for
// docs/BENCHMARKS.md are taken at scale 1. --only runs some of the parts: table, run, compare,
// size, live, parcoords, lineage.

import { gzipSync } from 'node:zlib';

import { api, browser, login, repo, startServer, user, PASSWORD } from '../lib/harness.mjs';
import { refVersion, run, seedSweep, use } from '../lib/seed.mjs';
import { breakdown, median, navigate, seedCurves, traceNavigation } from './measure.mjs';

const flag = (/** @type {string} */ name) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const scale = Number(flag('--scale') ?? 1);
const only = flag('--only')?.split(',');
const part = (/** @type {string} */ name) => !only || only.includes(name);
/** With --trace, one more navigation of each page under Chromium's tracing (target/ui-traces/). */
const tracing = process.argv.includes('--trace');
const trace = async (/** @type {any} */ page, /** @type {string} */ name, /** @type {string} */ url, /** @type {string} */ selector) => {
  if (!tracing) return;
  const t = await traceNavigation(page, url, selector, `${repo}/target/ui-traces/${name}.json`);
  console.log(`  traced (${t.total} ms): ${t.top}`);
};
const n = (/** @type {number} */ x) => Math.max(1, Math.round(x * scale));

async function main() {
  const server = await startServer();
  const chrome = await browser();
  const me = await user(server, 'bench');
  await api(server, 'POST', '/api/v1/projects', me.key, { name: 'table', visibility: 'private' });
  await api(server, 'POST', '/api/v1/projects', me.key, { name: 'curves', visibility: 'private' });
  const page = await chrome.context.newPage();
  await login(page, server, { username: 'bench', password: PASSWORD });

  if (part('table')) await tablePart(server, me, page);
  if (part('run')) await runPart(server, me, page);
  if (part('compare')) await comparePart(server, me, page);
  if (part('size')) await sizePart(server, page);
  if (part('live')) await livePart(server, me, page);
  if (part('parcoords')) await parcoordsPart(server, me, page);
  if (part('lineage')) await lineagePart(server, me, page);

  await chrome.close();
  await server.stop();
}

/** Run table with 10,000 runs. */
async function tablePart(server, me, page) {
  const runCount = n(10_000);
  for (let i = 0; i < runCount; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, runCount - i) }, (_, j) =>
        api(server, 'POST', '/api/v1/runs', me.key, { project: 'table', name: `run-${i + j}`, config: { lr: 10 ** -(1 + ((i + j) % 4)), seed: i + j } }),
      ),
    );
  }
  const table = [];
  for (let i = 0; i < 5; i++) table.push(await navigate(page, `${server.url}/projects/table`, '#run-table tbody tr'));
  console.log(`run table, ${runCount} runs: first rows painted ${median(table)} ms after navigation (median of 5)`);
  console.log('  last one:', JSON.stringify(await breakdown(page)));
  await trace(page, 'run-table', `${server.url}/projects/table`, '#run-table tbody tr');
}

/** Run page, 20 keys x 1,000,000 points. */
async function runPart(server, me, page) {
  const steps = n(1_000_000);
  const big = await api(server, 'POST', '/api/v1/runs', me.key, { project: 'curves', name: 'big' });
  const t = Date.now();
  await seedCurves(server, me.key, big.id, 20, steps);
  console.log(`(seeded 20 keys x ${steps} points in ${((Date.now() - t) / 1000).toFixed(1)} s)`);
  const runPage = [];
  for (let i = 0; i < 5; i++) runPage.push(await navigate(page, `${server.url}/runs/${big.id}`, '[data-chart][data-ready=true]'));
  console.log(`run page, 20 keys x ${steps} points: first chart drawn ${median(runPage)} ms after navigation (median of 5)`);
  console.log('  last one:', JSON.stringify(await breakdown(page)));
  await trace(page, 'run-page', `${server.url}/runs/${big.id}`, '[data-chart][data-ready=true]');
}

/** Compare 50 runs x 100,000 points. */
async function comparePart(server, me, page) {
  const ids = [];
  const t = Date.now();
  for (let i = 0; i < 50; i++) {
    const r = await api(server, 'POST', '/api/v1/runs', me.key, { project: 'curves', name: `cmp-${i}`, config: { lr: i } });
    await seedCurves(server, me.key, r.id, 1, n(100_000));
    ids.push(r.id);
  }
  console.log(`(seeded 50 runs x ${n(100_000)} points in ${((Date.now() - t) / 1000).toFixed(1)} s)`);
  const cmp = [];
  for (let i = 0; i < 5; i++) cmp.push(await navigate(page, `${server.url}/projects/curves/compare?runs=${ids.join(',')}`, '[data-chart][data-ready=true]'));
  console.log(`compare, 50 runs x ${n(100_000)} points on one chart: drawn ${median(cmp)} ms after navigation (median of 5)`);
  console.log('  last one:', JSON.stringify(await breakdown(page)));
  await trace(page, 'compare', `${server.url}/projects/curves/compare?runs=${ids.join(',')}`, '[data-chart][data-ready=true]');
}

/** What a first visit downloads: every JS and CSS file of the bundle but the lineage graph's layout library, which only its pages import. */
async function sizePart(server, page) {
  await page.goto(`${server.url}/projects`);
  const assets = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name).filter((u) => /\.(js|css)$/.test(u)));
  let gz = 0;
  for (const u of new Set(assets)) gz += gzipSync(Buffer.from(await (await fetch(u)).arrayBuffer())).length;
  console.log(`JS + CSS a first visit downloads: ${(gz / 1024).toFixed(1)} KB gzipped (${new Set(assets).size} files)`);
}

/** Live: a point logged to a running run, and a log line, until on screen. */
async function livePart(server, me, page) {
  let t = 0;
  const live = await api(server, 'POST', '/api/v1/runs', me.key, { project: 'curves', name: 'live' });
  await seedCurves(server, me.key, live.id, 1, 100);
  await page.goto(`${server.url}/runs/${live.id}`);
  await page.waitForSelector('[data-chart][data-ready=true]');
  const point = [];
  for (let i = 0; i < 5; i++) {
    const before = await page.getAttribute('[data-chart]', 'data-points');
    t = Date.now();
    await api(server, 'POST', `/api/v1/runs/${live.id}/history`, me.key, { points: [{ step: 100 + i, values: { metric_00: 1 } }] });
    await page.waitForFunction((b) => document.querySelector('[data-chart]').dataset.points !== b, before);
    point.push(Date.now() - t);
  }
  console.log(`live point on its open chart: ${median(point)} ms (median of 5; charts poll every second)`);
  await page.goto(`${server.url}/runs/${live.id}/logs`);
  await page.waitForSelector('[data-logs][data-ready=true]');
  const line = [];
  for (let i = 0; i < 5; i++) {
    t = Date.now();
    await api(server, 'POST', `/api/v1/runs/${live.id}/logs`, me.key, { lines: [{ message: `bench line ${i}` }] });
    await page.waitForFunction((m) => document.querySelector('#logs').textContent.includes(m), `bench line ${i}`);
    line.push(Date.now() - t);
  }
  console.log(`live log line in the open tail: ${median(line)} ms (median of 5)`);
}

/** Parallel coordinates of 1,000 trials x 8 parameters: drawn, and brushing. */
async function parcoordsPart(server, me, page) {
  const trials = n(1000);
  const parameters = {};
  for (let k = 0; k < 8; k++) {
    parameters[`p${k}`] = k % 3 === 0 ? { distribution: 'log_uniform_values', min: 1e-5, max: 1 } : k % 3 === 1 ? { distribution: 'uniform', min: 0, max: 1 } : { values: [16, 32, 64, 128] };
  }
  const config = { method: 'random', metric: { name: 'acc', goal: 'maximize' }, parameters };
  await api(server, 'POST', '/api/v1/projects', me.key, { name: 'sweeps', visibility: 'private' });
  const t = Date.now();
  const sw = await seedSweep(server, me.key, 'sweeps', config, trials, (p) => Math.sin(Math.log(p.p0)) + p.p1 - p.p2 / 256, 16);
  console.log(`(seeded a sweep of ${trials} trials x 8 parameters in ${((Date.now() - t) / 1000).toFixed(1)} s)`);
  const drawn = [];
  const draw = [];
  const loadMs = [];
  for (let i = 0; i < 5; i++) {
    drawn.push(await navigate(page, `${server.url}/sweeps/${sw.id}`, '[data-parcoords][data-ready=true]'));
    draw.push(Number(await page.getAttribute('[data-parcoords]', 'data-draw-ms')));
    loadMs.push(Number(await page.getAttribute('[data-parcoords]', 'data-load-ms')));
  }
  console.log(`parallel coordinates, ${trials} trials x 8 parameters: page to drawn ${median(drawn)} ms (median of 5); the canvas itself ${median(draw).toFixed(1)} ms, the analysis read in ${median(loadMs).toFixed(1)} ms`);
  console.log('  last one:', JSON.stringify(await breakdown(page)));
  await trace(page, 'sweep', `${server.url}/sweeps/${sw.id}`, '[data-parcoords][data-ready=true]');
  // Brushing: a drag along the first axis, 30 moves; each from the event to the next frame
  // (lines redrawn and the trials table filtered).
  const times = await page.evaluate(async () => {
    const el = /** @type {HTMLElement} */ (document.querySelector('[data-parcoords]'));
    const canvas = /** @type {HTMLCanvasElement} */ (el.querySelector('canvas'));
    const head = /** @type {HTMLElement} */ (el.querySelector('.pc-axis')).getBoundingClientRect();
    const box = canvas.getBoundingClientRect();
    const x = head.left + head.width / 2;
    const at = (/** @type {string} */ type, /** @type {number} */ f) =>
      canvas.dispatchEvent(new PointerEvent(type, { clientX: x, clientY: box.top + box.height * f, pointerId: 7, bubbles: true }));
    at('pointerdown', 0.1);
    const out = [];
    for (let k = 0; k < 30; k++) {
      const t0 = performance.now();
      at('pointermove', 0.15 + k * 0.02);
      await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
      out.push(performance.now() - t0);
    }
    at('pointerup', 0.75);
    return out;
  });
  const table = Number(await page.getAttribute('[data-parcoords]', 'data-brush-ms'));
  const update = Number(await page.getAttribute('[data-parcoords] canvas', 'data-update-ms'));
  console.log(`brushing 1 axis of ${trials} trials: ${median(times).toFixed(1)} ms from the pointer event to the next frame (median of 30 moves, max ${Math.max(...times).toFixed(1)} ms); the last update took ${update.toFixed(1)} ms of script, ${table.toFixed(1)} ms of it filtering the table`);
}

/** A lineage graph of about 500 runs and versions. */
async function lineagePart(server, me, page) {
  const target = n(500);
  await api(server, 'POST', '/api/v1/projects', me.key, { name: 'lineage', visibility: 'private' });
  const t = Date.now();
  const key = me.key;
  const p = 'lineage';
  // Upstream: 27 versions from 27 runs, reduced by runs that use 3 and produce 1, to one
  // run that produces the version shown.
  let layer = [];
  for (let i = 0; i < 27; i++) layer.push(await refVersion(server, key, p, 'data', { run: await run(server, key, p, `source-${i}`) }));
  let count = 54;
  while (layer.length > 1) {
    const next = [];
    for (let i = 0; i < layer.length; i += 3) {
      const r = await run(server, key, p, `merge-${count}`);
      for (const v of layer.slice(i, i + 3)) await use(server, key, p, 'data', v, r);
      next.push(await refVersion(server, key, p, 'data', { run: r }));
      count += 2;
    }
    layer = next;
  }
  const start = layer[0];
  // Downstream: each version used by 3 runs, each producing a version, until the target.
  let frontier = [start];
  while (count < target) {
    const next = [];
    for (const v of frontier) {
      for (let k = 0; k < 3 && count < target; k++) {
        const r = await run(server, key, p, `use-${count}`);
        await use(server, key, p, 'data', v, r);
        count++;
        if (count < target) {
          next.push(await refVersion(server, key, p, 'data', { run: r }));
          count++;
        }
      }
    }
    frontier = next;
  }
  console.log(`(seeded a lineage of ${count} runs and versions in ${((Date.now() - t) / 1000).toFixed(1)} s)`);
  const drawn = [];
  const layout = [];
  let nodes = 0;
  for (let i = 0; i < 5; i++) {
    drawn.push(await navigate(page, `${server.url}/projects/${p}/artifacts/data/${start}?depth=20`, '[data-lineage][data-ready=true]'));
    layout.push(Number(await page.getAttribute('[data-lineage]', 'data-layout-ms')));
    nodes = Number(await page.getAttribute('[data-lineage]', 'data-nodes'));
  }
  console.log(`lineage graph of ${nodes} nodes: laid out by dagre in ${median(layout).toFixed(0)} ms; page to drawn ${median(drawn)} ms (median of 5)`);
  console.log('  last one:', JSON.stringify(await breakdown(page)));
  await trace(page, 'lineage', `${server.url}/projects/${p}/artifacts/data/${start}?depth=20`, '[data-lineage][data-ready=true]');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

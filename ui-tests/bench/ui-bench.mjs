// Figures of the web UI, measured in the system Chromium against the real binary (a
// benchmark program, not a test). Prints one line per figure.
//
//   WANLLMDB_BIN=../target/release/wanllmdb node bench/ui-bench.mjs [--scale 0.1]
//
// --scale shrinks every data size (runs, points) for a quick look; figures for
// docs/BENCHMARKS.md are taken at scale 1.

import { gzipSync } from 'node:zlib';

import { api, browser, login, startServer, user, PASSWORD } from '../lib/harness.mjs';

const arg = process.argv.indexOf('--scale');
const scale = arg > 0 ? Number(process.argv[arg + 1]) : 1;
const n = (/** @type {number} */ x) => Math.max(1, Math.round(x * scale));

/** Appends `steps` steps of `keys` keys, columnar batches of 10,000 steps. */
async function seedCurves(server, key, run, keys, steps) {
  for (let s0 = 0; s0 < steps; s0 += 10_000) {
    const points = [];
    for (let s = s0; s < Math.min(steps, s0 + 10_000); s++) {
      /** @type {Record<string, number>} */
      const values = {};
      for (let k = 0; k < keys; k++) values[`metric_${String(k).padStart(2, '0')}`] = Math.exp(-s / 200_000) + 0.01 * Math.sin(s + k);
      points.push({ step: s, timestamp: 1764250000 + s * 0.01, values });
    }
    await api(server, 'POST', `/api/v1/runs/${run}/history`, key, { points });
  }
}

/**
 * Milliseconds from navigation start until `selector` is in the page and painted.
 * @param {import('playwright-core').Page} page
 */
async function navigate(page, url, selector) {
  await page.goto('about:blank');
  const t0 = Date.now();
  await page.goto(url, { waitUntil: 'commit' });
  await page.waitForSelector(selector, { timeout: 120_000 });
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(null))));
  return Date.now() - t0;
}

const median = (/** @type {number[]} */ xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const server = await startServer();
  const chrome = await browser();
  const me = await user(server, 'bench');
  await api(server, 'POST', '/api/v1/projects', me.key, { name: 'table', visibility: 'private' });
  await api(server, 'POST', '/api/v1/projects', me.key, { name: 'curves', visibility: 'private' });
  const page = await chrome.context.newPage();
  await login(page, server, { username: 'bench', password: PASSWORD });

  // Run table with 10,000 runs.
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

  // Run page, 20 keys x 1,000,000 points.
  const steps = n(1_000_000);
  const big = await api(server, 'POST', '/api/v1/runs', me.key, { project: 'curves', name: 'big' });
  let t = Date.now();
  await seedCurves(server, me.key, big.id, 20, steps);
  console.log(`(seeded 20 keys x ${steps} points in ${((Date.now() - t) / 1000).toFixed(1)} s)`);
  const runPage = [];
  for (let i = 0; i < 5; i++) runPage.push(await navigate(page, `${server.url}/runs/${big.id}`, '[data-chart][data-ready=true]'));
  console.log(`run page, 20 keys x ${steps} points: first chart drawn ${median(runPage)} ms after navigation (median of 5)`);

  // Compare 50 runs x 100,000 points.
  const ids = [];
  t = Date.now();
  for (let i = 0; i < 50; i++) {
    const r = await api(server, 'POST', '/api/v1/runs', me.key, { project: 'curves', name: `cmp-${i}`, config: { lr: i } });
    await seedCurves(server, me.key, r.id, 1, n(100_000));
    ids.push(r.id);
  }
  console.log(`(seeded 50 runs x ${n(100_000)} points in ${((Date.now() - t) / 1000).toFixed(1)} s)`);
  const cmp = [];
  for (let i = 0; i < 5; i++) cmp.push(await navigate(page, `${server.url}/projects/curves/compare?runs=${ids.join(',')}`, '[data-chart][data-ready=true]'));
  console.log(`compare, 50 runs x ${n(100_000)} points on one chart: drawn ${median(cmp)} ms after navigation (median of 5)`);

  // What a first visit downloads.
  const assets = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name).filter((u) => /\.(js|css)$/.test(u)));
  let gz = 0;
  for (const u of new Set(assets)) gz += gzipSync(Buffer.from(await (await fetch(u)).arrayBuffer())).length;
  console.log(`JS + CSS shipped: ${(gz / 1024).toFixed(1)} KB gzipped (${new Set(assets).size} files)`);

  // Live: a point logged to a running run, and a log line, until on screen.
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

  await chrome.close();
  await server.stop();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

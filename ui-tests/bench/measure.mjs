// What the browser benchmarks share: seeding curves and timing a navigation.

import { api } from '../lib/harness.mjs';

/** Appends `steps` steps of `keys` keys, columnar batches of 10,000 steps. */
export async function seedCurves(server, key, run, keys, steps) {
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
export async function navigate(page, url, selector) {
  await page.goto('about:blank');
  const t0 = Date.now();
  await page.goto(url, { waitUntil: 'commit' });
  await page.waitForSelector(selector, { timeout: 120_000 });
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(null))));
  return Date.now() - t0;
}

/**
 * Where the time of the last navigation went, in ms from navigation start (Navigation and
 * Resource Timing): the first byte of the page, its DOM ready, and the first and last data
 * request (`/api/…`) that the page's scripts made.
 * @param {import('playwright-core').Page} page
 */
export async function breakdown(page) {
  return page.evaluate(() => {
    const nav = /** @type {PerformanceNavigationTiming} */ (performance.getEntriesByType('navigation')[0]);
    const data = /** @type {PerformanceResourceTiming[]} */ (performance.getEntriesByType('resource')).filter((e) => e.name.includes('/api/'));
    const r = (/** @type {number} */ x) => Math.round(x);
    return {
      firstByte: r(nav.responseStart),
      html: r(nav.responseEnd),
      domReady: r(nav.domContentLoadedEventEnd),
      dataStart: data.length ? r(Math.min(...data.map((e) => e.startTime))) : null,
      dataEnd: data.length ? r(Math.max(...data.map((e) => e.responseEnd))) : null,
      requests: data.length,
    };
  });
}

export const median = (/** @type {number[]} */ xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];


/**
 * Navigates like `navigate` under Chromium's tracing (the performance panel's categories),
 * writes the trace to `file` (open it in the performance panel), and returns the renderer's
 * main-thread time by event name, largest first: where a page's time goes.
 * @param {import('playwright-core').Page} page
 * @param {string} url
 * @param {string} selector
 * @param {string} file
 */
export async function traceNavigation(page, url, selector, file) {
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const { dirname } = await import('node:path');
  await page.goto('about:blank');
  const cdp = await page.context().newCDPSession(page);
  /** @type {any[]} */
  const events = [];
  cdp.on('Tracing.dataCollected', (d) => events.push(...d.value));
  const done = new Promise((r) => cdp.once('Tracing.tracingComplete', r));
  await cdp.send('Tracing.start', {
    categories: 'devtools.timeline,disabled-by-default-devtools.timeline,v8.execute,blink.user_timing,loading',
    transferMode: 'ReportEvents',
  });
  const total = await navigate(page, url, selector);
  await cdp.send('Tracing.end');
  await done;
  await cdp.detach();
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify({ traceEvents: events }));
  // The renderer's main thread: the one that ran the page's HTML parser.
  const parse = events.find((e) => e.name === 'ParseHTML');
  const main = parse ? `${parse.pid}:${parse.tid}` : '';
  /** @type {Map<string, number>} */
  const byName = new Map();
  for (const e of events) {
    if (e.ph !== 'X' || `${e.pid}:${e.tid}` !== main || !e.dur) continue;
    byName.set(e.name, (byName.get(e.name) || 0) + e.dur / 1000);
  }
  const top = [...byName.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10);
  return { total, top: top.map(([n, ms]) => `${n} ${ms.toFixed(0)} ms`).join(', ') };
}

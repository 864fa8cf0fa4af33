// Browser tests of the web UI against the real binary (see ../README.md in docs/ui.md).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { PASSWORD, api, browser, inkedPixels, logPoints, login, shot, startServer, user } from '../lib/harness.mjs';

const XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">';

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {Awaited<ReturnType<typeof browser>>} */
let chrome;
/** @type {{username: string, key: string}} */
let alice;
const runs = {};

/** @param {number} n @param {(s: number) => number} f @param {string} [key] */
function curve(n, f, key = 'loss') {
  return Array.from({ length: n }, (_, s) => ({ step: s, timestamp: 1764250000 + s * 0.5, values: { [key]: f(s) } }));
}

before(async () => {
  server = await startServer();
  chrome = await browser();
  alice = await user(server, 'alice');
  await api(server, 'POST', '/api/v1/projects', alice.key, { name: 'vision', visibility: 'private' });
  for (const [name, lr, acc] of [['baseline', 0.1, 0.71], ['wide', 0.01, 0.93], ['deep', 0.001, 0.85]]) {
    const r = await api(server, 'POST', '/api/v1/runs', alice.key, { project: 'vision', name, config: { lr, batch: 32 }, tags: ['sweep-a'] });
    runs[name] = r.id;
    await logPoints(server, alice.key, r.id, curve(2000, (s) => acc * (1 - Math.exp(-s / 300)), 'acc'));
    await logPoints(server, alice.key, r.id, curve(2000, (s) => (1 - acc) + Math.exp(-s / (lr * 3000))));
    await api(server, 'POST', `/api/v1/runs/${r.id}/finish`, alice.key, { state: 'finished', exit_code: 0 });
  }
  // 100,000 points of a smooth curve with one spike a chart must not lose.
  const big = await api(server, 'POST', '/api/v1/runs', alice.key, { project: 'vision', name: 'spiky', config: { lr: 0.05, batch: 32 } });
  runs.spiky = big.id;
  await logPoints(server, alice.key, big.id, curve(100_000, (s) => (s === 54_321 ? 100 : 1 + 0.1 * Math.sin(s / 1000))));
  await api(server, 'POST', `/api/v1/runs/${big.id}/finish`, alice.key, { state: 'finished', exit_code: 0 });
});

after(async () => {
  await chrome?.close();
  await server?.stop();
});

test('log in with a password, and with the first-start admin API key', async () => {
  const page = await chrome.context.newPage();
  await login(page, server, { username: 'alice', password: PASSWORD });
  assert.equal(await page.textContent('.who .user'), 'alice');
  await page.click('text=vision');
  await page.waitForSelector('[data-run-table][data-ready=true]');
  await shot(page, 'login-password');
  const cookies = await chrome.context.cookies();
  const session = cookies.find((c) => c.name === 'wanllmdb_session');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict', 'HttpOnly SameSite=Strict cookie');
  const html = await page.content();
  assert.ok(!html.includes(alice.key) && !html.includes(session.value), 'no credential in the page');
  await page.click('text=Log out');
  await page.waitForURL(/\/login/);
  await page.goto(`${server.url}/runs/${runs.baseline}`);
  assert.match(await page.textContent('h1'), /404/, 'the session ended');

  await login(page, server, { key: server.adminKey });
  assert.equal(await page.textContent('.who .user'), 'admin');
  await shot(page, 'login-api-key');
  // A wrong key is refused on the page, with no session.
  await page.click('text=Log out');
  await page.goto(`${server.url}/login`);
  await page.fill('#login-key input[name=api_key]', 'wlk_not-a-key');
  await page.click('#login-key button[type=submit]');
  assert.match(await page.textContent('.error-msg'), /invalid or revoked API key/);
  await page.close();
});

test('a state change without the page\'s CSRF token is refused', async () => {
  const page = await chrome.context.newPage();
  await login(page, server, { username: 'alice', password: PASSWORD });
  const status = await page.evaluate(async (run) => {
    const r = await fetch(`/api/v1/runs/${run}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: '{"notes":"x"}' });
    return r.status;
  }, runs.baseline);
  assert.equal(status, 403);
  const withToken = await page.evaluate(async (run) => {
    const token = document.querySelector('meta[name="csrf-token"]').getAttribute('content');
    const r = await fetch(`/api/v1/runs/${run}`, { method: 'PATCH', headers: { 'content-type': 'application/json', 'x-csrf-token': token }, body: '{"notes":"x"}' });
    return r.status;
  }, runs.baseline);
  assert.equal(withToken, 200);
  const csp = (await page.goto(`${server.url}/projects`)).headers()['content-security-policy'];
  assert.match(csp, /default-src 'self'/);
  await page.close();
});

test('the run table shows the seeded runs and sorts on the server', async () => {
  const page = await chrome.context.newPage();
  await login(page, server, { username: 'alice', password: PASSWORD });
  await page.goto(`${server.url}/projects/vision`);
  const names = await page.$$eval('#run-table tbody .run-name', (els) => els.map((e) => e.textContent));
  assert.deepEqual([...names].sort(), ['baseline', 'deep', 'spiky', 'wide']);
  const headers = await page.$$eval('#run-table thead th', (els) => els.map((e) => e.textContent.trim()));
  assert.ok(headers.some((h) => h.startsWith('lr')), `config that differs is a column: ${headers}`);
  assert.ok(!headers.some((h) => h.startsWith('batch')), 'config that is the same everywhere is not');
  assert.ok(headers.some((h) => h.startsWith('acc')), 'summary metrics are columns');
  await page.click('#run-table thead th a:text-is("acc")');
  await page.waitForURL(/sort=-summary.acc/);
  const sorted = await page.$$eval('#run-table tbody .run-name', (els) => els.map((e) => e.textContent));
  assert.deepEqual(sorted.slice(0, 3), ['wide', 'deep', 'baseline']);
  await page.click('#run-table thead th a:text-is("acc▼")');
  await page.waitForURL(/sort=summary.acc/);
  const asc = await page.$$eval('#run-table tbody .run-name', (els) => els.map((e) => e.textContent));
  assert.deepEqual(asc.slice(0, 3), ['baseline', 'deep', 'wide']);
  // The CLI's query language filters on the server.
  await page.fill('input[name=filter]', 'config.lr < 0.02');
  await page.press('input[name=filter]', 'Enter');
  await page.waitForURL(/filter=config.lr/);
  const filtered = await page.$$eval('#run-table tbody .run-name', (els) => els.map((e) => e.textContent).sort());
  assert.deepEqual(filtered, ['deep', 'wide']);
  await shot(page, 'run-table');
  await page.close();
});

test('a chart is inked after asking for max_points near its width, and a spike survives', async () => {
  const page = await chrome.context.newPage();
  await login(page, server, { username: 'alice', password: PASSWORD });
  /** @type {string[]} */
  const asked = [];
  page.on('request', (r) => {
    if (r.url().includes('/history?')) asked.push(r.url());
  });
  await page.goto(`${server.url}/runs/${runs.spiky}`);
  const chart = page.locator('[data-chart][data-key="loss"]');
  await chart.locator('canvas').waitFor();
  await page.waitForSelector('[data-chart][data-key="loss"][data-ready=true]');
  const width = await chart.evaluate((el) => el.clientWidth);
  const req = new URL(asked.find((u) => u.includes('keys=loss')));
  const maxPoints = Number(req.searchParams.get('max_points'));
  assert.ok(Math.abs(maxPoints - width) <= 2, `max_points ${maxPoints} vs width ${width}`);
  const points = Number(await chart.getAttribute('data-points'));
  assert.ok(points <= maxPoints && points > maxPoints / 2, `${points} buckets drawn`);
  assert.ok((await inkedPixels(chart)) > 200, 'the line is drawn');
  assert.equal(Number(await chart.getAttribute('data-y-max')), 100, 'the spike at step 54,321 is in the band');
  await shot(page, 'chart-spike');
  await page.close();
});

test('charts read the binary history form, which decodes to the JSON answer', async () => {
  const odd = await api(server, 'POST', '/api/v1/runs', alice.key, { project: 'vision', name: 'odd-values' });
  const values = [1.5, 'NaN', 'Infinity', '-Infinity', -2, 0.1];
  await logPoints(server, alice.key, odd.id, values.map((v, s) => ({ step: s * 1000 - 2000, timestamp: 1764250000.25 + s, values: { v } })));
  const page = await chrome.context.newPage();
  await login(page, server, { username: 'alice', password: PASSWORD });
  /** @type {{accept: string, type: string}[]} */
  const seen = [];
  page.on('response', async (r) => {
    if (r.url().includes('/history?')) seen.push({ accept: (await r.request().allHeaders()).accept, type: r.headers()['content-type'] });
  });
  await page.goto(`${server.url}/runs/${runs.spiky}`);
  const chart = page.locator('[data-chart][data-key="loss"]');
  await page.waitForSelector('[data-chart][data-key="loss"][data-ready=true]');
  assert.equal(Number(await chart.getAttribute('data-y-max')), 100, 'the spike survives the binary path');
  assert.ok(seen.length > 0 && seen.every((s) => s.accept === 'application/vnd.wanllmdb.history+binary' && s.type === s.accept), JSON.stringify(seen));

  const paths = [
    `/api/v1/runs/${odd.id}/history`,
    `/api/v1/runs/${runs.spiky}/history?keys=loss&max_points=300`,
    `/api/v1/runs/${runs.baseline}/history?keys=acc,loss&min_step=100&max_step=1500`,
  ];
  const answers = await page.evaluate(async (paths) => {
    const app = /** @type {HTMLScriptElement} */ (document.querySelector('script[type=module]')).src;
    const { decodeHistory } = await import(new URL('series.js', app).href);
    const wire = (/** @type {number} */ v) => (Number.isFinite(v) ? v : Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity');
    const out = [];
    for (const path of paths) {
      const json = await (await fetch(path)).json();
      const r = await fetch(path, { headers: { accept: 'application/vnd.wanllmdb.history+binary' } });
      const [h] = decodeHistory(await r.arrayBuffer());
      const typed = h.series.every((/** @type {any} */ s) => s.values instanceof Float64Array && s.timestamps instanceof Float64Array);
      const series = h.series.map((/** @type {any} */ s) => {
        const o = { key: s.key, steps: Array.from(s.steps), values: Array.from(s.values, wire), timestamps: Array.from(s.timestamps), total_points: s.total_points, downsampled: s.downsampled };
        if (s.downsampled) Object.assign(o, { min: Array.from(s.min, wire), max: Array.from(s.max, wire), last: Array.from(s.values, wire) });
        return o;
      });
      out.push({ json, binary: { run: h.run, series }, typed });
    }
    return out;
  }, paths);
  for (const [i, a] of answers.entries()) {
    assert.ok(a.typed, `${paths[i]}: typed arrays`);
    assert.deepEqual(a.binary, a.json, paths[i]);
  }
  assert.deepEqual(answers[0].json.series[0].values, values.map((v) => v), 'non-finite values as the JSON spells them');
  assert.deepEqual(answers[0].json.series[0].steps, [-2000, -1000, 0, 1000, 2000, 3000], 'negative steps');
  assert.equal(answers[1].json.series[0].downsampled, true);
  await page.close();
});

test('zooming re-fetches the selected step range', async () => {
  const page = await chrome.context.newPage();
  await login(page, server, { username: 'alice', password: PASSWORD });
  /** @type {URL[]} */
  const asked = [];
  page.on('request', (r) => {
    if (r.url().includes('/history?')) asked.push(new URL(r.url()));
  });
  await page.goto(`${server.url}/runs/${runs.spiky}`);
  const chart = page.locator('[data-chart][data-key="loss"]');
  await page.waitForSelector('[data-chart][data-key="loss"][data-ready=true]');
  const over = await chart.locator('.u-over').boundingBox();
  const before = asked.length;
  await page.mouse.move(over.x + over.width * 0.5, over.y + over.height / 2);
  await page.mouse.down();
  await page.mouse.move(over.x + over.width * 0.6, over.y + over.height / 2, { steps: 5 });
  await page.mouse.up();
  await page.waitForSelector('[data-chart][data-key="loss"][data-zoom][data-ready=true]');
  const zoomed = asked.slice(before).find((u) => u.searchParams.get('keys') === 'loss');
  const lo = Number(zoomed.searchParams.get('min_step'));
  const hi = Number(zoomed.searchParams.get('max_step'));
  assert.ok(lo > 40_000 && lo < 60_000 && hi > lo && hi < 70_000, `zoomed to ${lo}..${hi}`);
  assert.ok(Number(zoomed.searchParams.get('max_points')) > 100, 'still one bucket per pixel');
  await shot(page, 'chart-zoomed');
  await page.close();
});

test('a new point and a new log line arrive live; the run table sees the state change', async () => {
  const run = await api(server, 'POST', '/api/v1/runs', alice.key, { project: 'vision', name: 'live', config: { lr: 0.2 } });
  await logPoints(server, alice.key, run.id, curve(50, (s) => 1 / (s + 1)));
  await api(server, 'POST', `/api/v1/runs/${run.id}/logs`, alice.key, { lines: [{ message: 'epoch 0 done', level: 'INFO' }] });
  const page = await chrome.context.newPage();
  await login(page, server, { username: 'alice', password: PASSWORD });
  await page.goto(`${server.url}/runs/${run.id}`);
  const chart = page.locator('[data-chart][data-key="loss"]');
  await page.waitForSelector('[data-chart][data-key="loss"][data-ready=true]');
  assert.equal(Number(await chart.getAttribute('data-points')), 50);
  await logPoints(server, alice.key, run.id, [{ step: 50, values: { loss: 0.5 } }]);
  await page.waitForFunction(() => document.querySelector('[data-chart][data-key="loss"]').dataset.points === '51', null, { timeout: 10_000 });
  await shot(page, 'live-chart');

  await page.goto(`${server.url}/runs/${run.id}/logs`);
  await page.waitForSelector('[data-logs][data-ready=true]');
  assert.match(await page.textContent('#logs'), /epoch 0 done/);
  await api(server, 'POST', `/api/v1/runs/${run.id}/logs`, alice.key, { lines: [{ message: 'epoch 1 <b>done</b>', level: 'WARNING' }] });
  await page.waitForFunction(() => document.querySelector('#logs').textContent.includes('epoch 1 <b>done</b>'), null, { timeout: 10_000 });
  assert.equal(await page.locator('#logs b').count(), 0, 'log text is never markup');
  await shot(page, 'live-logs');

  await page.goto(`${server.url}/projects/vision`);
  const cell = page.locator(`tr[data-run="${run.id}"] [data-state]`);
  assert.equal(await cell.textContent(), 'running');
  await api(server, 'POST', `/api/v1/runs/${run.id}/finish`, alice.key, { state: 'finished', exit_code: 0 });
  await page.waitForFunction((id) => document.querySelector(`tr[data-run="${id}"] [data-state]`).textContent === 'finished', run.id, { timeout: 10_000 });
  await page.close();
});

test('compare overlays the selected runs and lists their config differences', async () => {
  const page = await chrome.context.newPage();
  await login(page, server, { username: 'alice', password: PASSWORD });
  await page.goto(`${server.url}/projects/vision?filter=config.lr%20%3E%3D%200.01`);
  await page.check(`input[name=runs][value="${runs.baseline}"]`);
  await page.check(`input[name=runs][value="${runs.wide}"]`);
  /** @type {any[]} */
  const bodies = [];
  page.on('request', (r) => {
    if (r.url().endsWith('/history/query')) bodies.push(JSON.parse(r.postData()));
  });
  await page.click('#compare-button');
  await page.waitForURL(/compare\?runs=/);
  await page.waitForSelector('[data-chart][data-key="loss"][data-ready=true]');
  const chart = page.locator('[data-chart][data-key="loss"]');
  const body = bodies.find((b) => b.keys[0] === 'loss');
  assert.deepEqual([...body.runs].sort(), [runs.baseline, runs.wide].sort());
  assert.ok(Math.abs(body.max_points - (await chart.evaluate((el) => el.clientWidth))) <= 2);
  const drawn = await chart.evaluate((el) => el.querySelectorAll('canvas').length);
  assert.equal(drawn, 1);
  assert.equal(await page.locator('#legend li').count(), 2);
  assert.match(await page.textContent('#config-diff'), /lr/);
  assert.doesNotMatch(await page.textContent('#config-diff'), /batch/);
  await shot(page, 'compare');
  await page.close();
});

test('an outsider gets 404 on a private run, over the page and the API', async () => {
  const bob = await user(server, 'bob');
  const page = await chrome.context.newPage();
  await login(page, server, { username: bob.username, password: PASSWORD });
  const resp = await page.goto(`${server.url}/runs/${runs.baseline}`);
  assert.equal(resp.status(), 404);
  assert.doesNotMatch(await page.content(), /baseline/);
  assert.equal((await page.goto(`${server.url}/projects/vision`)).status(), 404);
  const api404 = await page.evaluate(async (id) => (await fetch(`/api/v1/runs/${id}/history?keys=loss`)).status, runs.baseline);
  assert.equal(api404, 404);
  await page.goto(`${server.url}/projects`);
  assert.doesNotMatch(await page.content(), /vision/);
  await shot(page, 'outsider-404');
  await page.close();
});

test('an XSS payload in names, tags and config renders as inert text', async () => {
  const run = await api(server, 'POST', '/api/v1/runs', alice.key, {
    project: 'vision',
    name: XSS,
    tags: [XSS],
    config: { note: XSS, [XSS]: 1 },
  });
  await logPoints(server, alice.key, run.id, curve(10, (s) => s, XSS));
  const page = await chrome.context.newPage();
  /** @type {string[]} */
  const dialogs = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    d.dismiss();
  });
  await login(page, server, { username: 'alice', password: PASSWORD });
  await page.goto(`${server.url}/projects/vision`);
  assert.equal(await page.textContent(`tr[data-run="${run.id}"] .run-name`), XSS);
  await page.goto(`${server.url}/runs/${run.id}`);
  await page.waitForSelector('[data-chart][data-ready=true]');
  assert.equal(await page.textContent('.run-head .run-name'), XSS);
  assert.ok((await page.textContent('#config')).includes(XSS));
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.deepEqual(dialogs, []);
  await shot(page, 'xss-inert');
  await page.close();
});

test('the CLI prints a run\'s page and draws its curves in the terminal', async () => {
  const { execFileSync } = await import('node:child_process');
  const { binary } = await import('../lib/harness.mjs');
  const env = { ...process.env, WANLLMDB_BASE_URL: server.url, WANLLMDB_API_KEY: alice.key, NO_COLOR: '1', HOME: server.dataDir };
  const url = execFileSync(binary(), ['open', runs.spiky, '--print'], { env }).toString().trim();
  assert.equal(url, `${server.url}/runs/${runs.spiky}`);
  const page = await chrome.context.newPage();
  await login(page, server, { username: 'alice', password: PASSWORD });
  assert.equal((await page.goto(url)).status(), 200);
  await page.close();
  const plot = execFileSync(binary(), ['runs', 'plot', runs.spiky, runs.baseline, '--keys', 'loss', '--width', '80', '--height', '10'], { env }).toString();
  const lines = plot.split('\n');
  assert.equal(lines[0], 'loss');
  assert.ok(lines.slice(1, 11).every((l) => [...l].length === 80), plot);
  assert.match(lines[1], /^\s+100\b/, 'the spike sets the top of the axis');
  assert.match(plot, /[\u2801-\u28ff]/);
  assert.match(plot, new RegExp(`#2 ${runs.baseline}`));
});

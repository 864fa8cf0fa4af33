// Browser tests of the sweep, artifact, registry and administration pages against the real
// binary, and a crawl of every link a member can reach.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { PASSWORD, api, browser, login, shot, startServer, user } from '../lib/harness.mjs';
import { fileVersion, member, refVersion, run, seedSweep, use } from '../lib/seed.mjs';

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {Awaited<ReturnType<typeof browser>>} */
let chrome;
/** @type {Record<string, {username: string, key: string}>} */
const people = {};
/** @type {{id: string, trials: {number: number, run_id: string, params: Record<string, any>}[]}} */
let sweep;
/** @type {Record<string, string>} */
const runs = {};
const EVALS = 12;
const CSV = 'x,y\n1,2\n3,4\n';

before(async () => {
  server = await startServer();
  chrome = await browser();
  for (const name of ['alice', 'bob', 'carol', 'dave']) people[name] = await user(server, name);
  const alice = people.alice.key;
  await api(server, 'POST', '/api/v1/projects', alice, { name: 'vision', visibility: 'private', description: 'Image classifiers' });
  await member(server, alice, 'vision', 'bob', 'viewer');
  await member(server, alice, 'vision', 'carol', 'admin');

  const config = {
    name: 'lr-search',
    method: 'random',
    metric: { name: 'acc', goal: 'maximize' },
    parameters: {
      lr: { distribution: 'log_uniform_values', min: 0.0001, max: 0.1 },
      batch: { values: [16, 32, 64] },
      dropout: { distribution: 'uniform', min: 0, max: 0.5 },
      optimizer: { values: ['adam', 'sgd'] },
    },
  };
  sweep = await seedSweep(server, alice, 'vision', config, 40, (p) =>
    0.9 - 0.1 * Math.abs(Math.log10(p.lr) + 2.5) - 0.2 * p.dropout + (p.optimizer === 'adam' ? 0.02 : 0),
  );

  runs.prep = await run(server, alice, 'vision', 'prepare-data');
  runs.train = await run(server, alice, 'vision', 'train');
  await fileVersion(server, alice, 'vision', 'mnist', { 'data.csv': CSV, 'README.txt': 'digits' }, { type: 'dataset', run: runs.prep, metadata: { rows: 2 } });
  await api(server, 'PATCH', '/api/v1/projects/vision/artifacts/mnist', alice, { tags: ['raw'] });
  await use(server, alice, 'vision', 'mnist', 'v1', runs.train);
  await refVersion(server, alice, 'vision', 'clf', { type: 'model', run: runs.train, metadata: { framework: 'torch' } });
  runs.evals = [];
  for (let i = 0; i < EVALS; i++) {
    const id = await run(server, alice, 'vision', `eval-${i}`);
    await use(server, alice, 'vision', 'clf', 'v1', id);
    runs.evals.push(id);
  }
  await api(server, 'POST', '/api/v1/models', alice, { name: 'clf-model', project: 'vision', description: 'Digit classifier', require_approval: true });
  await api(server, 'POST', '/api/v1/models/clf-model/versions', alice, { artifact: 'clf:v1', run: runs.train, metrics: { acc: 0.93, f1: 0.91 }, description: 'first' });
});

after(async () => {
  await chrome?.close();
  await server?.stop();
});

/** @param {string} who */
async function pageAs(who) {
  const page = await chrome.context.newPage();
  if (who === 'admin') await login(page, server, { key: server.adminKey });
  else await login(page, server, { username: who, password: PASSWORD });
  return page;
}

/**
 * The numbers in one column of the trials table, with each row's visibility.
 * @param {import('playwright-core').Page} page
 * @param {string} column
 */
async function trialColumn(page, column) {
  return page.evaluate((col) => {
    const heads = Array.from(document.querySelectorAll('#trials .head > *')).map((th) => th.textContent?.trim());
    const k = heads.indexOf(col);
    return Array.from(document.querySelectorAll('#trials [data-trial]')).map((tr) => ({
      value: Number(tr.children[k].textContent),
      hidden: /** @type {HTMLElement} */ (tr).hidden,
    }));
  }, column);
}

test('a sweep page shows its state, counts, best run, importance and parallel coordinates', async () => {
  const page = await pageAs('alice');
  await page.goto(`${server.url}/projects/vision/sweeps`);
  await page.click('#sweeps a:text("lr-search")');
  await page.waitForSelector('[data-parcoords][data-ready=true]');
  assert.match(await page.textContent('#sweep-counts'), /Finished\s*40/);
  const best = await page.getAttribute('#best-run a', 'href');
  assert.ok(sweep.trials.some((t) => best === `/runs/${t.run_id}`), best);
  const bars = await page.$$eval('#importance tbody tr td:first-child', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual([...bars].sort(), ['batch', 'dropout', 'lr', 'optimizer']);
  assert.equal(await page.locator('#trials [data-trial]').count(), 40);
  const links = await page.$$eval('#trials [data-trial] a', (as) => as.map((a) => a.getAttribute('href')));
  assert.equal(links.length, 40, 'every trial links to its run');
  // lr is sampled on a log scale, so its axis starts logarithmic.
  assert.ok(await page.isChecked('.pc-axis[data-axis="lr"] input[data-log]'));
  assert.ok(!(await page.isChecked('.pc-axis[data-axis="dropout"] input[data-log]')));
  await shot(page, 'sweep');
  await page.close();
});

test('brushing an axis filters the trials table, and the selection is in the URL', async () => {
  const page = await pageAs('alice');
  await page.goto(`${server.url}/sweeps/${sweep.id}`);
  await page.waitForSelector('[data-parcoords][data-ready=true]');
  const head = await page.locator('.pc-axis[data-axis="lr"]').boundingBox();
  const canvas = await page.locator('.pc-canvas').boundingBox();
  const x = head.x + head.width / 2;
  await page.mouse.move(x, canvas.y + canvas.height * 0.2);
  await page.mouse.down();
  await page.mouse.move(x, canvas.y + canvas.height * 0.6, { steps: 6 });
  await page.mouse.up();
  await page.waitForURL(/brush=lr/);
  const brush = new URL(page.url()).searchParams.get('brush');
  const [, lo, hi] = /^lr:([^:]+):([^:]+)$/.exec(brush).map(Number);
  assert.ok(lo > 0.0001 && hi < 0.1 && lo < hi, brush);
  const rows = await trialColumn(page, 'lr');
  const shown = rows.filter((r) => !r.hidden);
  assert.ok(shown.length > 0 && shown.length < rows.length, `${shown.length} of ${rows.length} shown`);
  const eps = 1e-5;
  for (const r of rows) {
    const inside = r.value >= lo * (1 - eps) && r.value <= hi * (1 + eps);
    const outside = r.value < lo * (1 + eps) || r.value > hi * (1 - eps);
    assert.ok(r.hidden ? outside : inside, `lr ${r.value} ${r.hidden ? 'hidden' : 'shown'} with ${lo}..${hi}`);
  }
  assert.equal(Number(await page.getAttribute('[data-parcoords]', 'data-selected')), shown.length);
  await shot(page, 'sweep-brushed');

  // A second brush narrows the selection further.
  const opt = await page.locator('.pc-axis[data-axis="optimizer"]').boundingBox();
  await page.mouse.move(opt.x + opt.width / 2, canvas.y + canvas.height * 0.85);
  await page.mouse.down();
  await page.mouse.move(opt.x + opt.width / 2, canvas.y + canvas.height * 0.99, { steps: 4 });
  await page.mouse.up();
  await page.waitForURL(/brush=optimizer/);
  const both = (await trialColumn(page, 'lr')).filter((r) => !r.hidden).length;
  assert.ok(both <= shown.length);

  // The link restores it; flipping an axis keeps the selection and goes into the URL too.
  const link = page.url();
  const again = await chrome.context.newPage();
  await again.goto(link);
  await again.waitForSelector('[data-parcoords][data-ready=true]');
  assert.deepEqual(
    (await trialColumn(again, 'lr')).map((r) => r.hidden),
    (await trialColumn(page, 'lr')).map((r) => r.hidden),
  );
  await again.check('.pc-axis[data-axis="lr"] input[data-flip]');
  await again.waitForURL(/flip=lr/);
  assert.equal((await trialColumn(again, 'lr')).filter((r) => !r.hidden).length, both);
  await again.uncheck('.pc-axis[data-axis="lr"] input[data-log]');
  await again.waitForURL(/log=&|log=$/);
  await again.click('[data-clear]');
  await again.waitForFunction(() => !window.location.search.includes('brush='));
  assert.equal((await trialColumn(again, 'lr')).filter((r) => r.hidden).length, 0);
  await again.close();
  await page.close();
});

test('pause and resume a sweep from its page', async () => {
  const page = await pageAs('alice');
  await page.goto(`${server.url}/sweeps/${sweep.id}`);
  await page.click('#sweep-controls button[data-action="pause"]');
  await page.waitForSelector('#notice');
  assert.equal(await page.textContent('#sweep-state'), 'paused');
  assert.match(await page.textContent('#notice'), /paused now/);
  assert.equal(new URL(page.url()).pathname, `/sweeps/${sweep.id}`, 'the address bar shows the sweep');
  await page.click('#sweep-controls button[data-action="resume"]');
  await page.waitForFunction(() => document.querySelector('#sweep-state')?.textContent === 'running');
  await page.close();
});

test('artifacts are listed by type and tag; a version lists its files for download', async () => {
  const page = await pageAs('alice');
  await page.goto(`${server.url}/projects/vision`);
  await page.click('nav.tabs a:text("Artifacts")');
  await page.waitForSelector('#artifacts');
  const names = async () => (await page.$$eval('#artifacts tbody tr td:first-child', (tds) => tds.map((t) => t.textContent))).sort();
  assert.deepEqual(await names(), ['clf', 'mnist']);
  await page.fill('#artifact-filter input[name=type]', 'dataset');
  await page.click('#artifact-filter button');
  await page.waitForURL(/type=dataset/);
  assert.deepEqual(await names(), ['mnist']);
  await page.goto(`${server.url}/projects/vision/artifacts`);
  await page.click('#artifacts a.tag:text("raw")');
  await page.waitForURL(/tag=raw/);
  assert.deepEqual(await names(), ['mnist']);
  await page.click('#artifacts a:text("mnist")');
  await page.waitForSelector('#versions');
  await page.click('#versions a:text("v1")');
  await page.waitForSelector('#files');
  assert.equal(await page.textContent('#version-label'), 'v1');
  assert.match(await page.textContent('#produced-by'), /prepare-data/);
  assert.match(await page.textContent('#metadata'), /rows/);
  const href = await page.getAttribute('#files a:text("data.csv")', 'href');
  const body = await page.evaluate(async (u) => (await fetch(u)).text(), href);
  assert.equal(body, CSV);
  await shot(page, 'artifact-version');
  await page.close();
});

test('the lineage graph shows the runs and versions around a version and folds a fan-out', async () => {
  const page = await pageAs('alice');
  await page.goto(`${server.url}/projects/vision/artifacts/clf/v1`);
  await page.waitForSelector('[data-lineage][data-ready=true]');
  const nodes = await page.$$eval('[data-lineage] a.node', (as) => as.map((a) => a.getAttribute('data-node')));
  for (const want of ['artifact:vision/clf:v1', `run:${runs.train}`, 'artifact:vision/mnist:v1', `run:${runs.prep}`]) {
    assert.ok(nodes.includes(want), `${want} in ${nodes}`);
  }
  const evals = nodes.filter((n) => runs.evals.includes(n.slice(4)));
  assert.equal(evals.length, 7, 'a fan-out of 12 shows 7 and one more node');
  assert.equal(await page.textContent('[data-lineage] a.node.more text'), `${EVALS - 7} more`);
  assert.equal(await page.getAttribute(`[data-lineage] a[data-node="run:${runs.train}"]`, 'href'), `/runs/${runs.train}`);
  assert.equal(await page.getAttribute('[data-lineage] a[data-node="artifact:vision/mnist:v1"]', 'href'), '/projects/vision/artifacts/mnist/v1');
  assert.equal(await page.locator('[data-lineage] a.start').count(), 1);
  await shot(page, 'lineage');
  await page.click('[data-lineage] a.node.more');
  await page.waitForURL(/expand=/);
  await page.waitForSelector('[data-lineage][data-ready=true]');
  const all = await page.$$eval('[data-lineage] a.node', (as) => as.map((a) => a.getAttribute('data-node')));
  assert.equal(all.filter((n) => runs.evals.includes(n.slice(4))).length, EVALS);
  assert.equal(await page.locator('[data-lineage] a.node.more').count(), 0);
  await shot(page, 'lineage-expanded');
  await page.close();
});

test('a stage transition made on the model page lands in the audit log', async () => {
  // The browser holds one session at a time: each user's page logs in when it opens.
  let alice = await pageAs('alice');
  await alice.goto(`${server.url}/models?project=vision`);
  await alice.click('#models a:text("clf-model")');
  await alice.waitForSelector('#model-versions');
  const row = alice.locator('#model-versions tr[data-version="v1"]');
  assert.match(await row.textContent(), /acc/);
  assert.equal(await row.locator(`a[href="/runs/${runs.train}"]`).count(), 1, 'source run');
  assert.equal(await row.locator('a[href="/projects/vision/artifacts/clf/v1"]').count(), 1, 'artifact');
  assert.equal(await row.locator('[data-approve]').count(), 0, 'no approving a version of your own');
  await row.locator('[data-transition] select').selectOption('Staging');
  await row.locator('[data-transition] input[name=comment]').fill('ready for eval');
  await row.locator('[data-transition] button').click();
  await alice.waitForSelector('#notice');
  assert.match(await alice.textContent('#notice'), /v1 is in Staging now/);
  assert.match(await alice.textContent('#waiting'), /v1/);
  // Production needs an approval first: the page says so, and nothing changes.
  await alice.locator('#model-versions tr[data-version="v1"] [data-transition] select').selectOption('Production');
  await alice.locator('#model-versions tr[data-version="v1"] [data-transition] button').click();
  await alice.waitForSelector('#notice.error');
  assert.match(await alice.textContent('#notice'), /not approved for Production/);
  await alice.close();

  const carol = await pageAs('carol');
  await carol.goto(`${server.url}/models/clf-model`);
  await carol.fill('#model-versions tr[data-version="v1"] [data-approve] input[name=comment]', 'eval looks good');
  await carol.click('#model-versions tr[data-version="v1"] [data-approve] button');
  await carol.waitForSelector('#notice.ok');
  assert.match(await carol.textContent('#approvals'), /carol[\s\S]*eval looks good/);
  await carol.close();

  alice = await pageAs('alice');
  await alice.goto(`${server.url}/models/clf-model`);
  await alice.locator('#model-versions tr[data-version="v1"] [data-transition] select').selectOption('Production');
  await alice.locator('#model-versions tr[data-version="v1"] [data-transition] button').click();
  await alice.waitForSelector('#notice.ok');
  assert.equal(await alice.textContent('#model-versions tr[data-version="v1"] [data-stage]'), 'Production');
  assert.equal(await alice.locator('#stage-timeline rect.tl-stage').count(), 3, 'None, Staging, Production');
  await shot(alice, 'model');
  await alice.close();

  const admin = await pageAs('admin');
  await admin.click('#admin-link');
  await admin.waitForSelector('#audit-filters');
  await admin.fill('#audit-filters input[name=event_type]', 'model_version.transition');
  await admin.click('#audit-filters button');
  await admin.waitForURL(/event_type=model_version.transition/);
  const rows = await admin.$$eval('#audit-events tbody tr', (trs) => trs.map((tr) => tr.textContent || ''));
  assert.equal(rows.length, 2, rows.join('\n'));
  assert.ok(rows.every((r) => r.includes('alice') && r.includes('model_version') && r.includes('clf-model')), rows.join('\n'));
  await shot(admin, 'admin-audit');
  await admin.close();
});

test('a viewer sees no edit controls', async () => {
  const page = await pageAs('bob');
  for (const path of [`/sweeps/${sweep.id}`, '/models/clf-model', '/projects/vision/artifacts/clf/v1', '/projects/vision/artifacts/mnist', '/projects/vision/sweeps']) {
    const resp = await page.goto(`${server.url}${path}`);
    assert.equal(resp.status(), 200, path);
    const forms = await page.$$eval('main form[method=post]', (fs) => fs.map((f) => f.getAttribute('action')));
    assert.deepEqual(forms, [], `${path} offers ${forms}`);
  }
  await page.goto(`${server.url}/models/clf-model`);
  await shot(page, 'viewer-model');
  // The forms' routes refuse a viewer too (with the page's own CSRF token).
  const status = await page.evaluate(async () => {
    const token = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') || '';
    const r = await fetch('/models/clf-model/versions/v1/transition', { method: 'POST', body: new URLSearchParams({ csrf: token, to: 'Archived' }) });
    return r.status;
  });
  assert.equal(status, 403);
  await page.close();
});

test('administration pages are a 404 to everyone but server administrators', async () => {
  for (const who of ['dave', 'alice']) {
    const page = await pageAs(who);
    assert.equal(await page.locator('#admin-link').count(), 0);
    for (const path of ['/admin', '/admin/audit', '/admin/users', '/admin/api-keys']) {
      const resp = await page.goto(`${server.url}${path}`);
      assert.equal(resp.status(), 404, `${who} ${path}`);
    }
    if (who === 'dave') await shot(page, 'admin-404');
    await page.close();
  }
  const anonymous = await chrome.context.newPage();
  await chrome.context.clearCookies();
  assert.equal((await anonymous.goto(`${server.url}/admin/users`)).status(), 404);
  await anonymous.close();

  const admin = await pageAs('admin');
  await admin.goto(`${server.url}/admin/users`);
  await admin.fill('#create-user input[name=username]', 'erin');
  await admin.fill('#create-user input[name=email]', 'erin@example.com');
  await admin.click('#create-user button');
  await admin.waitForSelector('#notice.ok');
  const said = await admin.textContent('#notice');
  const password = /shown only now: (\S+)/.exec(said)?.[1];
  assert.ok(password, said);
  assert.equal(new URL(admin.url()).pathname, '/admin/users');
  // The generated password works.
  const tokens = await api(server, 'POST', '/api/v1/auth/login', null, { username: 'erin', password });
  assert.ok(tokens.access_token);
  await admin.click('tr[data-user="erin"] button[data-user-action="disable"]');
  await admin.waitForSelector('tr[data-user="erin"] button[data-user-action="enable"]');
  await admin.click('tr[data-user="dave"] button[data-user-action="promote"]');
  await admin.waitForSelector('tr[data-user="dave"] button[data-user-action="demote"]');
  await shot(admin, 'admin-users');
  await admin.goto(`${server.url}/admin/api-keys?user=bob`);
  assert.equal(await admin.locator('#api-keys tbody tr').count(), 1);
  await admin.click('#api-keys button:text("Revoke")');
  await admin.waitForSelector('#notice.ok');
  await api(server, 'GET', '/api/v1/auth/me', people.bob.key, undefined, [401]);
  await shot(admin, 'admin-keys');
  await admin.close();
});

test('no link on any page a member can reach leads to a 404', async () => {
  const page = await pageAs('alice');
  const seen = new Set(['/projects']);
  const queue = ['/projects'];
  /** @type {string[]} */
  const broken = [];
  let visited = 0;
  /** @param {string[]} hrefs @param {string} from */
  const enqueue = (hrefs, from) => {
    for (const h of hrefs) {
      const u = new URL(h, `${server.url}${from}`);
      if (u.origin !== server.url || u.pathname.startsWith('/static/') || u.pathname === '/logout') continue;
      const key = `${u.pathname}${u.search}`;
      if (!seen.has(key)) {
        seen.add(key);
        queue.push(key);
      }
    }
  };
  while (queue.length && visited < 500) {
    const path = /** @type {string} */ (queue.shift());
    visited++;
    const got = await page.evaluate(async (p) => {
      const r = await fetch(p, { credentials: 'same-origin' });
      const html = (r.headers.get('content-type') || '').includes('text/html') ? await r.text() : '';
      const doc = new DOMParser().parseFromString(html, 'text/html');
      return { status: r.status, hrefs: Array.from(doc.querySelectorAll('a[href]')).map((a) => a.getAttribute('href') || '') };
    }, path);
    if (got.status === 404) broken.push(path);
    enqueue(got.hrefs, path);
    // Links a script draws: the lineage graph's nodes.
    if (/^\/projects\/[^/]+\/artifacts\/[^/]+\/[^/?]+$/.test(path.split('?')[0])) {
      await page.goto(`${server.url}${path}`);
      await page.waitForSelector('[data-lineage][data-ready=true]');
      enqueue(await page.$$eval('[data-lineage] a', (as) => as.map((a) => a.getAttribute('href') || '')), path);
    }
  }
  assert.deepEqual(broken, []);
  assert.ok(visited > 60, `crawled ${visited} pages`);
  for (const p of [`/sweeps/${sweep.id}`, '/models/clf-model', '/projects/vision/artifacts/clf/v1', `/runs/${runs.evals[11]}`]) {
    assert.ok(seen.has(p), `${p} reached`);
  }
  await page.close();
});

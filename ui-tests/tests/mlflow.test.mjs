// Browser tests of what MLflow clients leave in the UI: the run's key→value tags, the project's
// MLflow name, and the links MLflow clients print (`/#/experiments/N/runs/ID`).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { PASSWORD, api, browser, login, shot, startServer, user } from '../lib/harness.mjs';

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {Awaited<ReturnType<typeof browser>>} */
let chrome;
/** @type {{username: string, key: string}} */
let ana;
let experimentId = '';
let runId = '';

/**
 * One MLflow REST call, as an MLflow client makes it.
 * @param {string} path
 * @param {unknown} body
 */
async function mlflow(path, body) {
  return api(server, 'POST', `/api/2.0/mlflow/${path}`, ana.key, body);
}

before(async () => {
  server = await startServer();
  chrome = await browser();
  ana = await user(server, 'ana');
  experimentId = (await mlflow('experiments/create', { name: 'Fraud model / v2' })).experiment_id;
  const created = await mlflow('runs/create', {
    experiment_id: experimentId,
    run_name: 'baseline',
    start_time: Date.now(),
    tags: [
      { key: 'mlflow.user', value: 'ana' },
      { key: 'dataset', value: 'transactions-2026-11' },
    ],
  });
  runId = created.run.info.run_id;
  const now = Date.now();
  const metrics = [];
  for (let i = 0; i < 200; i++) metrics.push({ key: 'auc', value: 0.5 + i / 500, timestamp: now + i, step: i });
  await mlflow('runs/log-batch', { run_id: runId, metrics, params: [{ key: 'lr', value: '0.01' }] });
});

after(async () => {
  await chrome?.close();
  await server?.stop();
});

test('the run page lists the key-to-value tags an MLflow client set', async () => {
  const page = await chrome.context.newPage();
  await login(page, server, { username: 'ana', password: PASSWORD });
  await page.goto(`${server.url}/runs/${runId}`);
  const rows = await page.locator('#tag-values tr').allInnerTexts();
  assert.ok(rows.some((r) => r.includes('dataset') && r.includes('transactions-2026-11')), rows.join('\n'));
  assert.ok(rows.some((r) => r.includes('mlflow.user')), rows.join('\n'));
  assert.match(await page.locator('#config').innerText(), /lr\s+0\.01/);
  await shot(page, 'mlflow-run-tags');
  await page.close();
});

test('the projects page shows the MLflow experiment name beside the project name', async () => {
  const page = await chrome.context.newPage();
  await login(page, server, { username: 'ana', password: PASSWORD });
  await page.goto(`${server.url}/projects`);
  const row = page.locator('tr', { hasText: 'fraud-model-v2' });
  assert.match(await row.innerText(), /Fraud model \/ v2/);
  await shot(page, 'mlflow-projects');
  await page.close();
});

test('the links MLflow clients print open the run and the project', async () => {
  const page = await chrome.context.newPage();
  await login(page, server, { username: 'ana', password: PASSWORD });
  await page.goto(`${server.url}/#/experiments/${experimentId}/runs/${runId}`);
  await page.waitForURL(new RegExp(`/runs/${runId}$`));
  await page.goto(`${server.url}/#/experiments/${experimentId}`);
  await page.waitForURL(/\/projects\/fraud-model-v2$/);
  await page.close();
});

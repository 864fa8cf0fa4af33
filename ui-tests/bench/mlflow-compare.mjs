// The same run in two UIs: wanLLMDB's run page and MLflow's (`mlflow server` from PyPI), each
// opened in the system Chromium until its first chart is drawn. A benchmark program, not a test.
//
//   WANLLMDB_BIN=../target/release/wanllmdb node bench/mlflow-compare.mjs [--keys 20] [--points 1000000]
//
// MLflow runs from a bench-only virtual environment: MLFLOW_VENV, or target/mlflow-venv, made
// with `pip install mlflow==3.17.2` when missing. Its database is seeded through its own store
// (bench/mlflow_seed.py), not its REST API; wanLLMDB's over its API. Both hold the same curves.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { PASSWORD, api, browser, login, repo, startServer, user } from '../lib/harness.mjs';
import { median, navigate, seedCurves } from './measure.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const flag = (/** @type {string} */ name, /** @type {number} */ fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const KEYS = flag('--keys', 20);
const POINTS = flag('--points', 1_000_000);
const REPEAT = 5;
const MLFLOW_VERSION = '3.17.2';
/** A drawn MLflow chart: a Plotly line with a path. */
const MLFLOW_CHART = '.js-plotly-plot .scatterlayer path.js-line[d^="M"]';

/** The bench venv's directory, made when missing. */
function mlflowVenv() {
  const venv = process.env.MLFLOW_VENV || join(repo, 'target', 'mlflow-venv');
  if (!existsSync(join(venv, 'bin', 'mlflow'))) {
    console.log(`(installing mlflow ${MLFLOW_VERSION} into ${venv})`);
    for (const cmd of [['python3', ['-m', 'venv', venv]], [join(venv, 'bin', 'pip'), ['install', '-q', `mlflow==${MLFLOW_VERSION}`]]]) {
      const r = spawnSync(/** @type {string} */ (cmd[0]), /** @type {string[]} */ (cmd[1]), { stdio: 'inherit' });
      if (r.status !== 0) throw new Error(`${cmd[0]} failed`);
    }
  }
  return venv;
}

/** A free TCP port on 127.0.0.1. */
async function freePort() {
  return new Promise((ok) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = /** @type {import('node:net').AddressInfo} */ (s.address()).port;
      s.close(() => ok(port));
    });
  });
}

/** Starts `mlflow server` over a seeded database and waits until its UI answers. */
async function startMlflow(venv, dir) {
  const port = await freePort();
  const child = spawn(join(venv, 'bin', 'mlflow'), ['server', '--backend-store-uri', `sqlite:///${join(dir, 'mlflow.db')}`, '--default-artifact-root', join(dir, 'artifacts'), '--host', '127.0.0.1', '--port', String(port)], {
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const url = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  for (;;) {
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() - t0 > 180_000) throw new Error('mlflow server did not start');
    await new Promise((r) => setTimeout(r, 500));
  }
  return {
    url,
    startedIn: Date.now() - t0,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

async function main() {
  const venv = mlflowVenv();
  const dir = mkdtempSync(join(tmpdir(), 'wanllmdb-mlflow-'));
  let t = Date.now();
  const seeded = spawnSync(join(venv, 'bin', 'python'), [join(here, 'mlflow_seed.py'), join(dir, 'mlflow.db'), join(dir, 'artifacts'), String(KEYS), String(POINTS)], { encoding: 'utf8' });
  if (seeded.status !== 0) throw new Error(`seeding MLflow failed:\n${seeded.stderr}`);
  const ids = JSON.parse(seeded.stdout.trim().split('\n').pop() || '{}');
  console.log(`(MLflow: seeded ${KEYS} keys x ${POINTS} points through its store in ${((Date.now() - t) / 1000).toFixed(1)} s)`);
  const mlflow = await startMlflow(venv, dir);
  console.log(`(MLflow: server answered ${(mlflow.startedIn / 1000).toFixed(1)} s after start)`);

  const server = await startServer();
  const me = await user(server, 'bench');
  await api(server, 'POST', '/api/v1/projects', me.key, { name: 'curves', visibility: 'private' });
  const big = await api(server, 'POST', '/api/v1/runs', me.key, { project: 'curves', name: 'big' });
  t = Date.now();
  await seedCurves(server, me.key, big.id, KEYS, POINTS);
  await api(server, 'POST', `/api/v1/runs/${big.id}/finish`, me.key, { state: 'finished', exit_code: 0 });
  console.log(`(wanLLMDB: seeded ${KEYS} keys x ${POINTS} points over its API in ${((Date.now() - t) / 1000).toFixed(1)} s)`);

  const chrome = await browser();
  const page = await chrome.context.newPage();
  await login(page, server, { username: 'bench', password: PASSWORD });
  const ours = `${server.url}/runs/${big.id}`;
  const theirs = `${mlflow.url}/#/experiments/${ids.experiment_id}/runs/${ids.run_id}/model-metrics`;
  // One visit each first, so both are measured with their files in the browser's cache.
  await navigate(page, ours, '[data-chart][data-ready=true]');
  await navigate(page, theirs, MLFLOW_CHART);
  const a = [];
  const b = [];
  for (let i = 0; i < REPEAT; i++) {
    a.push(await navigate(page, ours, '[data-chart][data-ready=true]'));
    b.push(await navigate(page, theirs, MLFLOW_CHART));
  }
  const ma = median(a);
  const mb = median(b);
  console.log(`run page, ${KEYS} keys x ${POINTS} points, first chart drawn (median of ${REPEAT}, warm cache):`);
  console.log(`  wanLLMDB ${ma} ms [${a.join(', ')}]`);
  console.log(`  MLflow ${MLFLOW_VERSION} ${mb} ms [${b.join(', ')}]`);
  console.log(`  MLflow / wanLLMDB = ${(mb / ma).toFixed(1)}`);

  await chrome.close();
  await server.stop();
  await mlflow.stop();
  rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

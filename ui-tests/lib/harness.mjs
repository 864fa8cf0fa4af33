// Starts the real wanllmdb binary on a free port, seeds it over the API, and drives the
// system Chromium with playwright-core.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, '..', '..');
export const shotsDir = join(repo, 'target', 'ui-shots');
export const PASSWORD = 'Correct-Horse-9-Battery';

/** The binary under test: WANLLMDB_BIN, or the debug build. */
export function binary() {
  return process.env.WANLLMDB_BIN || join(repo, 'target', 'debug', 'wanllmdb');
}

/**
 * Starts `wanllmdb server` on 127.0.0.1:0 over a fresh data directory and waits until it
 * says where it listens.
 * @param {string[]} [extra] more server arguments
 */
export async function startServer(extra = []) {
  const dataDir = mkdtempSync(join(tmpdir(), 'wanllmdb-ui-'));
  const child = spawn(binary(), ['server', '--bind', '127.0.0.1:0', '--data-dir', dataDir, ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, RUST_LOG: 'warn' },
  });
  let said = '';
  const started = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`server did not start:\n${said}`)), 60_000);
    child.stderr.on('data', (b) => {
      said += b.toString();
      const url = /listening on (http:\/\/[^\s]+)/.exec(said);
      const key = /(wlk_[A-Za-z0-9_-]+)/.exec(said);
      if (url && key) {
        clearTimeout(timer);
        ok({ url: url[1], adminKey: key[1] });
      }
    });
    child.on('exit', (code) => fail(new Error(`server exited with ${code}:\n${said}`)));
  });
  return {
    .../** @type {{url: string, adminKey: string}} */ (started),
    dataDir,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * One API call; throws on an unexpected status.
 * @param {{url: string}} server
 * @param {string} method
 * @param {string} path
 * @param {string|null} key bearer credential
 * @param {unknown} [body]
 * @param {number[]} [ok] accepted statuses
 */
export async function api(server, method, path, key, body, ok = [200, 201, 204]) {
  const r = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  if (!ok.includes(r.status)) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/**
 * A user with a password and an API key.
 * @param {{url: string, adminKey: string}} server
 * @param {string} username
 */
export async function user(server, username) {
  await api(server, 'POST', '/api/v1/auth/register', server.adminKey, {
    username,
    email: `${username}@example.com`,
    password: PASSWORD,
  });
  const tokens = await api(server, 'POST', '/api/v1/auth/login', null, { username, password: PASSWORD });
  const created = await api(server, 'POST', '/api/v1/auth/api-keys', tokens.access_token, { name: 'ui-tests' });
  return { username, key: created.key };
}

/**
 * Appends points `{step, values}` in batches.
 * @param {{url: string}} server
 * @param {string} key
 * @param {string} run
 * @param {{step: number, timestamp?: number, values: Record<string, number>}[]} points
 */
export async function logPoints(server, key, run, points) {
  for (let i = 0; i < points.length; i += 20_000) {
    await api(server, 'POST', `/api/v1/runs/${run}/history`, key, { points: points.slice(i, i + 20_000) });
  }
}

/** Launches Chromium with a fresh profile. */
export async function browser() {
  const profile = mkdtempSync(join(tmpdir(), 'wanllmdb-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Logs in through the login page.
 * @param {import('playwright-core').Page} page
 * @param {{url: string}} server
 * @param {{username?: string, password?: string, key?: string}} how
 */
export async function login(page, server, how) {
  await page.goto(`${server.url}/login`);
  if (how.password) {
    await page.fill('#login-password input[name=username]', how.username || '');
    await page.fill('#login-password input[name=password]', how.password);
    await page.click('#login-password button[type=submit]');
  } else {
    await page.fill('#login-key input[name=api_key]', how.key || '');
    await page.click('#login-key button[type=submit]');
  }
  await page.waitForURL(/\/projects/);
}

/**
 * Saves a screenshot under target/ui-shots/.
 * @param {import('playwright-core').Page} page
 * @param {string} name
 */
export async function shot(page, name) {
  mkdirSync(shotsDir, { recursive: true });
  await page.screenshot({ path: join(shotsDir, `${name}.png`), fullPage: false });
}

/**
 * How many pixels of a chart's canvas have the series colour (#2f6fde): whether it is inked.
 * @param {import('playwright-core').Locator} chart
 */
export async function inkedPixels(chart) {
  return chart.evaluate((el) => {
    const canvas = el.querySelector('canvas');
    if (!canvas) return 0;
    const ctx = canvas.getContext('2d');
    if (!ctx) return 0;
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (Math.abs(data[i] - 47) < 40 && Math.abs(data[i + 1] - 111) < 40 && Math.abs(data[i + 2] - 222) < 40 && data[i + 3] > 100) n++;
    }
    return n;
  });
}

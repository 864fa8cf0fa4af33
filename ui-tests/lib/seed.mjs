// Seeding over the API: sweeps with finished trials, artifact versions and their lineage,
// registered models.

import { createHash } from 'node:crypto';

import { api } from './harness.mjs';

/**
 * Creates a sweep and plays `values.length` trials: each reserves a trial, starts its run with
 * the suggested config, logs the metric `acc` from `value(params)`, and finishes.
 * @param {{url: string}} server
 * @param {string} key
 * @param {string} project
 * @param {object} config the sweep configuration
 * @param {number} trials
 * @param {(params: Record<string, any>, i: number) => number} value
 * @param {number} [parallel] trials played at once
 */
export async function seedSweep(server, key, project, config, trials, value, parallel = 8) {
  const sweep = await api(server, 'POST', `/api/v1/projects/${project}/sweeps`, key, { config });
  /** @type {{number: number, run_id: string, params: Record<string, any>}[]} */
  const played = [];
  for (let i = 0; i < trials; i += parallel) {
    const batch = [];
    for (let k = i; k < Math.min(trials, i + parallel); k++) {
      batch.push(api(server, 'POST', `/api/v1/sweeps/${sweep.id}/suggest`, key, {}));
    }
    const suggestions = await Promise.all(batch);
    await Promise.all(
      suggestions.map(async (s, k) => {
        await api(server, 'POST', '/api/v1/runs', key, { id: s.run_id, project, config: s.config });
        const acc = value(s.params, i + k);
        await api(server, 'POST', `/api/v1/runs/${s.run_id}/history`, key, { points: [{ step: 0, values: { acc } }] });
        await api(server, 'POST', `/api/v1/runs/${s.run_id}/finish`, key, { state: 'finished', exit_code: 0 });
        played.push({ number: s.number, run_id: s.run_id, params: s.params });
      }),
    );
  }
  return { id: sweep.id, trials: played };
}

/**
 * An artifact version made of references only (nothing to upload).
 * @param {{url: string}} server
 * @param {string} key
 * @param {string} project
 * @param {string} name
 * @param {{type?: string, run?: string, tags?: string[], metadata?: object}} [opts]
 * @returns {Promise<string>} the version (`v1`, …)
 */
export async function refVersion(server, key, project, name, opts = {}) {
  const body = {
    type: opts.type || 'model',
    run: opts.run,
    metadata: opts.metadata,
    entries: [{ path: 'weights.bin', ref: `s3://bucket/${project}/${name}/${Math.random().toString(36).slice(2)}.bin`, size: 3 }],
  };
  const r = await api(server, 'POST', `/api/v1/projects/${project}/artifacts/${name}/versions`, key, body);
  if (opts.tags) await api(server, 'PATCH', `/api/v1/projects/${project}/artifacts/${name}`, key, { tags: opts.tags });
  return r.version.version;
}

/**
 * An artifact version with real files: uploads what the server asks for and commits.
 * @param {{url: string}} server
 * @param {string} key
 * @param {string} project
 * @param {string} name
 * @param {Record<string, string>} files path → content
 * @param {{type?: string, run?: string, metadata?: object}} [opts]
 */
export async function fileVersion(server, key, project, name, files, opts = {}) {
  const entries = Object.entries(files).map(([path, text]) => ({
    path,
    sha256: createHash('sha256').update(text).digest('hex'),
    size: Buffer.byteLength(text),
  }));
  const byDigest = new Map(entries.map((e) => [e.sha256, files[e.path]]));
  const r = await api(server, 'POST', `/api/v1/projects/${project}/artifacts/${name}/versions`, key, {
    type: opts.type || 'dataset',
    run: opts.run,
    metadata: opts.metadata,
    entries,
  });
  for (const u of r.uploads) {
    const url = u.upload_url.startsWith('http') ? u.upload_url : `${server.url}${u.upload_url}`;
    const put = await fetch(url, { method: 'PUT', body: byDigest.get(u.sha256) });
    if (!put.ok) throw new Error(`upload: ${put.status} ${await put.text()}`);
  }
  if (r.version.state === 'committed') return r.version.version;
  const v = await api(server, 'POST', `/api/v1/projects/${project}/artifacts/${name}/drafts/${r.version.id}/commit`, key, {});
  return v.version;
}

/**
 * Marks `run` as a user of a version.
 * @param {{url: string}} server
 * @param {string} key
 * @param {string} project
 * @param {string} name
 * @param {string} version
 * @param {string} run
 */
export async function use(server, key, project, name, version, run) {
  await api(server, 'POST', `/api/v1/projects/${project}/artifacts/${name}/versions/${version}/use`, key, { run });
}

/**
 * A run, finished unless told otherwise.
 * @param {{url: string}} server
 * @param {string} key
 * @param {string} project
 * @param {string} name
 */
export async function run(server, key, project, name, finish = true) {
  const r = await api(server, 'POST', '/api/v1/runs', key, { project, name });
  if (finish) await api(server, 'POST', `/api/v1/runs/${r.id}/finish`, key, { state: 'finished', exit_code: 0 });
  return r.id;
}

/**
 * Adds a member to a project.
 * @param {{url: string}} server
 * @param {string} key the owner's
 * @param {string} project
 * @param {string} username
 * @param {string} role
 */
export async function member(server, key, project, username, role) {
  await api(server, 'POST', `/api/v1/projects/${project}/members`, key, { username, role });
}

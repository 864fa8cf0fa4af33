// Pure functions over chart data: no DOM, no network.

/**
 * One curve of a chart, columnar. `min`/`max` equal `last` where a read was not downsampled.
 * @typedef {{run: string, steps: number[], ts: number[], last: (number|null)[],
 *            min: (number|null)[], max: (number|null)[]}} Curve
 */

/** The media type of the binary columnar history form (docs/api.md). */
export const HISTORY_BINARY = 'application/vnd.wanllmdb.history+binary';

/**
 * One series of a history answer, columnar: plain arrays from JSON, typed arrays from the
 * binary form.
 * @typedef {{key: string, steps: ArrayLike<number>, timestamps: ArrayLike<number>,
 *            values: ArrayLike<number|string>, min?: ArrayLike<number|string>|null,
 *            max?: ArrayLike<number|string>|null, total_points?: number,
 *            downsampled?: boolean}} SeriesColumns
 * @typedef {{run: string, series: SeriesColumns[]}} RunColumns
 */

/**
 * Numbers off the wire, as a chart line: non-finite values (strings in JSON, IEEE values in
 * the binary form) are gaps.
 * @param {ArrayLike<number|string>} values
 * @returns {(number|null)[]}
 */
export function finite(values) {
  const out = new Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out[i] = typeof v === 'number' && Number.isFinite(v) ? v : null;
  }
  return out;
}

/**
 * A curve from one series of a history answer.
 * @param {string} run
 * @param {SeriesColumns|{steps: number[], timestamps: number[], values: number[]}} s
 * @returns {Curve}
 */
export function curveOf(run, s) {
  const last = finite(s.values);
  return {
    run,
    steps: Array.from(s.steps),
    ts: Array.from(s.timestamps),
    last,
    min: s.min ? finite(s.min) : last.slice(),
    max: s.max ? finite(s.max) : last.slice(),
  };
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The runs of a binary history answer. Float columns are views of `buf` (no copy); steps,
 * 64-bit integers on the wire, become a Float64Array (exact up to 2^53).
 * @param {ArrayBuffer} buf
 * @returns {RunColumns[]}
 */
export function decodeHistory(buf) {
  const dv = new DataView(buf);
  const bytes = new Uint8Array(buf);
  const magic = String.fromCharCode(...bytes.subarray(0, 8));
  if (magic !== 'WLDBHIST' || dv.getUint16(8, true) !== 1) throw new Error('not a version 1 history body');
  const u64 = (/** @type {number} */ at) => dv.getUint32(at, true) + dv.getUint32(at + 4, true) * 4294967296;
  const text = new TextDecoder();
  const name = (/** @type {number} */ at) => text.decode(bytes.subarray(u64(at), u64(at) + dv.getUint32(at + 8, true)));
  const entry = dv.getUint16(10, true);
  const nRuns = dv.getUint32(12, true);
  const nSeries = dv.getUint32(16, true);
  /** @type {RunColumns[]} */
  const runs = [];
  for (let i = 0; i < nRuns; i++) runs.push({ run: name(24 + 16 * i), series: [] });
  const table = 24 + 16 * nRuns;
  for (let i = 0; i < nSeries; i++) {
    const at = table + i * entry;
    const n = u64(at + 16);
    let data = u64(at + 32);
    /** @type {(Float64Array|null)[]} */
    const cols = [];
    for (let c = 0; c < 5; c++) {
      const dtype = bytes[at + 40 + c];
      if (dtype === 0) {
        cols.push(null);
        continue;
      }
      cols.push(dtype === 1 ? int64s(dv, data, n) : float64s(buf, dv, data, n));
      data += 8 * n;
    }
    const [steps, timestamps, values, min, max] = cols;
    if (!steps || !values) throw new Error('a history series without steps or values');
    runs[dv.getUint32(at + 12, true)].series.push({
      key: name(at),
      steps,
      timestamps: timestamps || new Float64Array(0),
      values,
      min,
      max,
      total_points: u64(at + 24),
      downsampled: (bytes[at + 45] & 1) === 1,
    });
  }
  return runs;
}

/**
 * @param {ArrayBuffer} buf @param {DataView} dv @param {number} at @param {number} n
 * @returns {Float64Array}
 */
function float64s(buf, dv, at, n) {
  if (LITTLE_ENDIAN) return new Float64Array(buf, at, n);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = dv.getFloat64(at + 8 * i, true);
  return out;
}

/**
 * @param {DataView} dv @param {number} at @param {number} n
 * @returns {Float64Array}
 */
function int64s(dv, at, n) {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = dv.getUint32(at + 8 * i, true) + dv.getInt32(at + 8 * i + 4, true) * 4294967296;
  return out;
}

/**
 * Appends points read after the curve's last step (live follow).
 * @param {Curve} c
 * @param {Curve} more
 */
export function append(c, more) {
  const after = c.steps.length ? c.steps[c.steps.length - 1] : -Infinity;
  for (let i = 0; i < more.steps.length; i++) {
    if (more.steps[i] <= after) continue;
    c.steps.push(more.steps[i]);
    c.ts.push(more.ts[i]);
    c.last.push(more.last[i]);
    c.min.push(more.min[i]);
    c.max.push(more.max[i]);
  }
}

/**
 * Exponential moving average with the start-up bias removed (as TensorBoard does):
 * s_t = a s_{t-1} + (1 - a) x_t, reported as s_t / (1 - a^t). Gaps stay gaps.
 * @param {(number|null)[]} values
 * @param {number} alpha smoothing weight in [0, 1)
 * @returns {(number|null)[]}
 */
export function ema(values, alpha) {
  if (!(alpha > 0)) return values;
  let s = 0;
  let n = 0;
  return values.map((v) => {
    if (v === null) return null;
    n += 1;
    s = alpha * s + (1 - alpha) * v;
    return s / (1 - Math.pow(alpha, n));
  });
}

/**
 * The x values of a curve for an axis mode: steps, wall-clock seconds, or seconds since the
 * curve's first point.
 * @param {Curve} c
 * @param {'step'|'time'|'relative'} mode
 * @returns {number[]}
 */
export function xsOf(c, mode) {
  if (mode === 'time') return c.ts;
  if (mode === 'relative') {
    const t0 = c.ts.length ? c.ts[0] : 0;
    return c.ts.map((t) => t - t0);
  }
  return c.steps;
}

/**
 * Aligns columns of several curves on the union of their x values (curves of a multi-run
 * read share one step grid, so the union is small); missing cells are null.
 * @param {number[][]} xs one x array per curve, each ascending
 * @param {((number|null)[])[][]} columns per curve, the columns aligned with its xs
 * @returns {{x: number[], cols: ((number|null)[])[][]}}
 */
export function align(xs, columns) {
  if (xs.length === 1) return { x: xs[0], cols: columns };
  const set = new Set();
  for (const a of xs) for (const v of a) set.add(v);
  const x = Array.from(set).sort((a, b) => a - b);
  const index = new Map(x.map((v, i) => [v, i]));
  const cols = columns.map((cs, k) =>
    cs.map((col) => {
      const out = new Array(x.length).fill(null);
      for (let i = 0; i < xs[k].length; i++) out[index.get(xs[k][i])] = col[i];
      return out;
    }),
  );
  return { x, cols };
}

/**
 * A y range that ignores outliers: the 1st to 99th percentile of the values, padded.
 * @param {(number|null)[][]} lines
 * @returns {[number, number]|null}
 */
export function robustRange(lines) {
  const all = [];
  for (const l of lines) for (const v of l) if (v !== null) all.push(v);
  if (all.length < 5) return null;
  all.sort((a, b) => a - b);
  const lo = all[Math.floor(0.01 * (all.length - 1))];
  const hi = all[Math.ceil(0.99 * (all.length - 1))];
  const pad = (hi - lo) * 0.1 || Math.abs(hi) * 0.1 || 1;
  return [lo - pad, hi + pad];
}

/**
 * Seconds as a short duration for the relative-time axis.
 * @param {number} s
 * @returns {string}
 */
export function shortDuration(s) {
  const a = Math.abs(s);
  if (a < 120) return `${Math.round(s)}s`;
  if (a < 7200) return `${Math.round(s / 60)}m`;
  if (a < 172800) return `${(s / 3600).toFixed(1)}h`;
  return `${(s / 86400).toFixed(1)}d`;
}

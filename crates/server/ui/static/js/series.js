// Pure functions over chart data: no DOM, no network.

/**
 * One curve of a chart, columnar. `min`/`max` equal `last` where a read was not downsampled.
 * @typedef {{run: string, steps: number[], ts: number[], last: (number|null)[],
 *            min: (number|null)[], max: (number|null)[]}} Curve
 */

/**
 * Numbers off the wire: non-finite values travel as strings and are not drawn.
 * @param {Array<number|string>} values
 * @returns {(number|null)[]}
 */
export function finite(values) {
  return values.map((v) => (typeof v === 'number' && Number.isFinite(v) ? v : null));
}

/**
 * A curve from one series of a history answer.
 * @param {string} run
 * @param {{steps: number[], timestamps: number[], values: Array<number|string>,
 *          min?: Array<number|string>, max?: Array<number|string>}} s
 * @returns {Curve}
 */
export function curveOf(run, s) {
  const last = finite(s.values);
  return {
    run,
    steps: s.steps.slice(),
    ts: s.timestamps.slice(),
    last,
    min: s.min ? finite(s.min) : last.slice(),
    max: s.max ? finite(s.max) : last.slice(),
  };
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

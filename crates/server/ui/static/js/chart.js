// One metric chart: fetches as many buckets as it is pixels wide, draws each run's min..max
// band and a line through the buckets' last values, re-fetches the range a zoom selects, and
// follows a running run's new points.

import { HISTORY_BINARY, align, append, curveOf, decodeHistory, ema, robustRange, shortDuration, xsOf } from './series.js';

/**
 * @typedef {{smooth: number, x: 'step'|'time'|'relative', logy: boolean, outliers: boolean}} Settings
 * @typedef {import('./series.js').Curve} Curve
 */

const FOLLOW_MS = 1000;
const EMPTY = { steps: [], timestamps: [], values: [] };

/**
 * The runs of a history answer: typed arrays straight from the binary form, or the JSON
 * answer's arrays (a server from before the binary form).
 * @param {Response} r
 * @returns {Promise<import('./series.js').RunColumns[]>}
 */
async function readHistory(r) {
  if ((r.headers.get('content-type') || '').startsWith(HISTORY_BINARY)) return decodeHistory(await r.arrayBuffer());
  const body = await r.json();
  return body.results || [body];
}

/** @returns {string} */
function csrf() {
  const m = document.querySelector('meta[name="csrf-token"]');
  return m ? m.getAttribute('content') || '' : '';
}

/**
 * @param {number} i
 * @returns {string}
 */
function color(i) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(`--c${i % 20}`).trim();
  return v || '#2f6fde';
}

/**
 * @param {string} hex
 * @param {number} alpha
 * @returns {string}
 */
function faded(hex, alpha) {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) return hex;
  return `rgba(${parseInt(m[1], 16)},${parseInt(m[2], 16)},${parseInt(m[3], 16)},${alpha})`;
}

export class Chart {
  /**
   * @param {HTMLElement} el the `[data-chart]` element (its `data-key` names the metric)
   * @param {{mode: 'run'|'compare', runs: string[], live: boolean, settings: Settings}} opts
   */
  constructor(el, opts) {
    this.el = el;
    this.key = el.dataset.key || '';
    this.runs = opts.runs;
    this.mode = opts.mode;
    this.live = opts.live;
    this.settings = opts.settings;
    /** @type {Curve[]} */
    this.curves = [];
    /** @type {[number, number]|null} step range of a zoom */
    this.zoom = null;
    /** @type {any} */
    this.plot = null;
    this.width = 0;
    this.timer = 0;
    this.loading = null;
  }

  /** Fetches and draws; later calls re-fetch. */
  async load() {
    this.width = Math.max(2, Math.round(this.el.clientWidth));
    this.el.dataset.ready = 'false';
    const answer = await this.fetchCurves(this.zoom, this.width);
    this.curves = answer;
    this.draw();
    if (this.live && !this.timer) this.timer = window.setInterval(() => this.follow(), FOLLOW_MS);
  }

  /**
   * @param {[number, number]|null} range
   * @param {number|null} maxPoints
   * @param {number|null} [after] only steps after this one (live follow)
   * @returns {Promise<Curve[]>}
   */
  async fetchCurves(range, maxPoints, after = null) {
    const lo = after !== null ? after + 1 : range ? range[0] : null;
    const hi = range ? range[1] : null;
    if (this.mode === 'run') {
      const q = new URLSearchParams({ keys: this.key });
      if (maxPoints) q.set('max_points', String(maxPoints));
      if (lo !== null) q.set('min_step', String(lo));
      if (hi !== null) q.set('max_step', String(hi));
      this.el.dataset.maxPoints = maxPoints ? String(maxPoints) : '';
      const r = await fetch(`/api/v1/runs/${this.runs[0]}/history?${q}`, {
        credentials: 'same-origin',
        headers: { accept: HISTORY_BINARY },
      });
      if (!r.ok) throw new Error(`history: ${r.status}`);
      const [h] = await readHistory(r);
      const s = h && h.series.find((x) => x.key === this.key);
      return [curveOf(this.runs[0], s || EMPTY)];
    }
    /** @type {Record<string, unknown>} */
    const body = { runs: this.runs, keys: [this.key] };
    if (maxPoints) body.max_points = maxPoints;
    if (lo !== null) body.min_step = lo;
    if (hi !== null) body.max_step = hi;
    this.el.dataset.maxPoints = maxPoints ? String(maxPoints) : '';
    const r = await fetch('/api/v1/history/query', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: HISTORY_BINARY, 'x-csrf-token': csrf() },
      body: JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`history query: ${r.status}`);
    return (await readHistory(r)).map((res) => curveOf(res.run, res.series.find((x) => x.key === this.key) || EMPTY));
  }

  /** Polls the new points of a running run. */
  async follow() {
    if (!this.el.isConnected) {
      window.clearInterval(this.timer);
      return;
    }
    if (this.zoom || !this.el.isConnected || document.hidden || this.loading) return;
    const c = this.curves[0];
    if (!c) return;
    const after = c.steps.length ? c.steps[c.steps.length - 1] : -1;
    this.loading = this.fetchCurves(null, this.width, after)
      .then((more) => {
        if (!more[0] || !more[0].steps.length) return;
        append(c, more[0]);
        // Too many appended points for the width: read the whole curve again, downsampled.
        if (c.steps.length > 2 * this.width) return this.load();
        this.draw();
      })
      .catch(() => {})
      .finally(() => {
        this.loading = null;
      });
  }

  /** Re-draws with new settings. */
  apply(/** @type {Settings} */ settings) {
    this.settings = settings;
    if (this.curves.length) this.draw();
  }

  draw() {
    const s = this.settings;
    const xs = this.curves.map((c) => xsOf(c, s.x));
    const cols = this.curves.map((c) => {
      const clean = (/** @type {(number|null)[]} */ a) => (s.logy ? a.map((v) => (v !== null && v > 0 ? v : null)) : a);
      return [clean(ema(c.last, s.smooth)), clean(c.min), clean(c.max)];
    });
    const { x, cols: aligned } = align(xs, cols);
    const data = [x];
    /** @type {any[]} */
    const series = [{ label: s.x === 'step' ? 'step' : 'time' }];
    /** @type {any[]} */
    const bands = [];
    const many = this.curves.length > 10;
    this.curves.forEach((c, i) => {
      const col = color(i);
      const base = data.length;
      data.push(aligned[i][0], aligned[i][1], aligned[i][2]);
      series.push(
        { label: this.mode === 'run' ? this.key : c.run, stroke: col, width: 1.5, spanGaps: true, points: { show: false } },
        { label: 'min', stroke: 'transparent', width: 0, spanGaps: true, points: { show: false } },
        { label: 'max', stroke: 'transparent', width: 0, spanGaps: true, points: { show: false } },
      );
      if (!many) bands.push({ series: [base + 2, base + 1], fill: faded(col, 0.18) });
    });
    const range = s.outliers ? robustRange(aligned.map((a) => a[0])) : null;
    let yMax = -Infinity;
    for (const a of aligned) for (const v of a[2]) if (v !== null && v > yMax) yMax = v;
    const height = Math.max(120, this.el.clientHeight || 240);
    const width = Math.max(50, this.el.clientWidth);
    const opts = {
      width,
      height,
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false } },
      scales: {
        x: { time: s.x === 'time' },
        y: { distr: s.logy ? 3 : 1, ...(range ? { range } : {}) },
      },
      axes: [
        s.x === 'relative' ? { values: (/** @type {any} */ _u, /** @type {number[]} */ v) => v.map(shortDuration) } : {},
        { size: 60 },
      ],
      series,
      bands,
      hooks: {
        setSelect: [(/** @type {any} */ u) => this.onSelect(u)],
      },
    };
    if (this.plot) this.plot.destroy();
    this.el.replaceChildren();
    // @ts-ignore uPlot is loaded as a classic script before the modules.
    this.plot = new uPlot(opts, data, this.el);
    this.plot.over.addEventListener('dblclick', () => {
      if (!this.zoom) return;
      this.zoom = null;
      delete this.el.dataset.zoom;
      this.load();
    });
    this.el.dataset.points = String(x.length);
    this.el.dataset.yMax = String(yMax);
    this.el.dataset.ready = 'true';
  }

  /** A drag selected an x range: fetch that step range at full width. */
  onSelect(/** @type {any} */ u) {
    if (u.select.width < 3) return;
    const x0 = u.posToVal(u.select.left, 'x');
    const x1 = u.posToVal(u.select.left + u.select.width, 'x');
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    const range = this.stepsBetween(x0, x1);
    if (!range) return;
    this.zoom = range;
    this.el.dataset.zoom = `${range[0]}:${range[1]}`;
    this.load();
  }

  /**
   * The step range of an x range (the axis may show time).
   * @param {number} x0
   * @param {number} x1
   * @returns {[number, number]|null}
   */
  stepsBetween(x0, x1) {
    if (this.settings.x === 'step') return [Math.ceil(x0), Math.floor(x1)];
    let lo = Infinity;
    let hi = -Infinity;
    for (const c of this.curves) {
      const xs = xsOf(c, this.settings.x);
      for (let i = 0; i < xs.length; i++) {
        if (xs[i] >= x0 && xs[i] <= x1) {
          lo = Math.min(lo, c.steps[i]);
          hi = Math.max(hi, c.steps[i]);
        }
      }
    }
    return lo <= hi ? [lo, hi] : null;
  }
}

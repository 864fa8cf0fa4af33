// Parallel coordinates of a sweep's trials on one canvas: an axis per parameter and one for the
// metric, each with its own log scale and flip. Dragging along an axis brushes a range of it;
// the trials table below (rows with `data-trial`) then shows only the trials inside every
// brush. Scales, flips and brushes live in the URL (`log=`, `flip=`, `brush=NAME:LO:HI`), so a
// selection is a link.

/**
 * @typedef {{name: string, kind: string, min: number|null, max: number|null, categories: unknown[]}} Axis
 * @typedef {{lo: number, hi: number}} Range a brush, in axis units (a categorical axis counts
 *   its categories 0, 1, …)
 * @typedef {{axes: Axis[], lines: unknown[][], top: {number: number}[]}} Analysis
 */

const PAD_TOP = 10;
const PAD_BOTTOM = 22;
const PAD_SIDE = 64;
/** How far from an axis (px) a drag still brushes it. */
const HIT = 16;
/** Colour bins of the metric: selected lines are drawn as one path per bin. */
const BINS = 12;

/** @param {number} t 0..1 → a colour from blue (low) to orange (high) */
function ramp(t) {
  const a = [47, 111, 222];
  const b = [232, 89, 12];
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * t));
  return `rgba(${c[0]},${c[1]},${c[2]},0.55)`;
}

/** @param {number} v */
function label(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1);
  return String(Number(v.toPrecision(3)));
}

export class ParCoords {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {Analysis} data
   */
  constructor(canvas, data) {
    this.canvas = canvas;
    this.axes = data.axes;
    const n = this.axes.length;
    /** one column of numbers per axis (category positions for categorical axes; NaN = missing) */
    this.cols = this.axes.map((a, j) => {
      const col = new Float64Array(data.lines.length);
      const index = new Map(a.categories.map((c, k) => [JSON.stringify(c), k]));
      data.lines.forEach((line, i) => {
        const v = line[j];
        if (a.kind === 'numeric') col[i] = typeof v === 'number' ? v : Number.NaN;
        else col[i] = index.has(JSON.stringify(v)) ? /** @type {number} */ (index.get(JSON.stringify(v))) : Number.NaN;
      });
      return col;
    });
    this.count = data.lines.length;
    /** @type {boolean[]} */
    this.log = new Array(n).fill(false);
    /** @type {boolean[]} */
    this.flip = new Array(n).fill(false);
    /** @type {(Range|null)[]} */
    this.brush = new Array(n).fill(null);
    this.selected = new Uint8Array(this.count).fill(1);
    /** @type {number[]} x of each axis, CSS pixels */
    this.x = [];
    this.width = 0;
    this.height = 0;
    /** @type {null | (() => void)} called when the selection changes */
    this.onselect = null;
    /** @type {null | (() => void)} called when a drag ends */
    this.oncommit = null;
    this.drag = /** @type {null | {axis: number, y0: number, moved: boolean}} */ (null);
    this.listen();
  }

  /** Sizes the canvas to its box and places the axes. */
  layout() {
    const dpr = window.devicePixelRatio || 1;
    this.width = this.canvas.clientWidth;
    this.height = this.canvas.clientHeight;
    this.canvas.width = Math.round(this.width * dpr);
    this.canvas.height = Math.round(this.height * dpr);
    const n = this.axes.length;
    const span = this.width - 2 * PAD_SIDE;
    this.x = this.axes.map((_, j) => PAD_SIDE + (n > 1 ? (span * j) / (n - 1) : span / 2));
  }

  /**
   * Position of a value on axis j: 0 at the bottom, 1 at the top (NaN when it has none).
   * @param {number} j
   * @param {number} v
   */
  pos(j, v) {
    const a = this.axes[j];
    let t;
    if (a.kind !== 'numeric') {
      const k = a.categories.length;
      t = k > 1 ? v / (k - 1) : 0.5;
    } else {
      const lo = a.min ?? 0;
      const hi = a.max ?? 1;
      if (this.log[j]) {
        const l0 = Math.log(lo);
        t = hi > lo ? (Math.log(v) - l0) / (Math.log(hi) - l0) : 0.5;
      } else {
        t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
      }
    }
    return this.flip[j] ? 1 - t : t;
  }

  /**
   * The value at position t of axis j (the inverse of `pos`).
   * @param {number} j
   * @param {number} t
   */
  value(j, t) {
    const a = this.axes[j];
    const u = this.flip[j] ? 1 - t : t;
    if (a.kind !== 'numeric') return u * Math.max(0, a.categories.length - 1);
    const lo = a.min ?? 0;
    const hi = a.max ?? 1;
    if (this.log[j]) return Math.exp(Math.log(lo) + u * (Math.log(hi) - Math.log(lo)));
    return lo + u * (hi - lo);
  }

  /** @param {number} t */
  y(t) {
    return PAD_TOP + (1 - t) * (this.height - PAD_TOP - PAD_BOTTOM);
  }

  /** @param {number} y */
  t(y) {
    return Math.min(1, Math.max(0, 1 - (y - PAD_TOP) / (this.height - PAD_TOP - PAD_BOTTOM)));
  }

  /** Recomputes which lines are inside every brush; returns how many are. */
  select() {
    let n = 0;
    const brushes = this.brush.map((b, j) => [b, this.cols[j]]).filter(([b]) => b);
    for (let i = 0; i < this.count; i++) {
      let ok = 1;
      for (const [b, col] of brushes) {
        const v = /** @type {Float64Array} */ (col)[i];
        const r = /** @type {Range} */ (b);
        if (!(v >= r.lo && v <= r.hi)) {
          ok = 0;
          break;
        }
      }
      this.selected[i] = ok;
      n += ok;
    }
    return n;
  }

  /** Whether any axis is brushed. */
  brushed() {
    return this.brush.some(Boolean);
  }

  /** Draws everything. */
  draw() {
    const ctx = /** @type {CanvasRenderingContext2D} */ (this.canvas.getContext('2d'));
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.width, this.height);
    const n = this.axes.length;
    const metric = this.cols[n - 1];
    const m = this.axes[n - 1];
    const mlo = m.min ?? 0;
    const mhi = m.max ?? 1;
    // Positions once per line and axis, then one path for the others and one per colour bin.
    const ys = this.axes.map((_, j) => {
      const col = this.cols[j];
      const out = new Float64Array(this.count);
      for (let i = 0; i < this.count; i++) out[i] = this.y(this.pos(j, col[i]));
      return out;
    });
    const bins = Array.from({ length: BINS }, () => new Path2D());
    const rest = new Path2D();
    for (let i = 0; i < this.count; i++) {
      let path = rest;
      if (this.selected[i]) {
        const t = mhi > mlo ? (metric[i] - mlo) / (mhi - mlo) : 0.5;
        path = bins[Math.min(BINS - 1, Math.max(0, Math.floor(t * BINS)))];
      }
      let pen = false;
      for (let j = 0; j < n; j++) {
        const yy = ys[j][i];
        if (Number.isNaN(yy)) {
          pen = false;
          continue;
        }
        if (pen) path.lineTo(this.x[j], yy);
        else path.moveTo(this.x[j], yy);
        pen = true;
      }
    }
    ctx.lineWidth = 1;
    ctx.strokeStyle = 'rgba(160,170,180,0.25)';
    ctx.stroke(rest);
    bins.forEach((p, b) => {
      ctx.strokeStyle = ramp((b + 0.5) / BINS);
      ctx.stroke(p);
    });
    this.drawAxes(ctx);
  }

  /** @param {CanvasRenderingContext2D} ctx */
  drawAxes(ctx) {
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    this.axes.forEach((a, j) => {
      const x = this.x[j];
      ctx.strokeStyle = '#66707c';
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(x, this.y(1));
      ctx.lineTo(x, this.y(0));
      ctx.stroke();
      ctx.fillStyle = '#66707c';
      ctx.textAlign = 'right';
      for (const [v, text] of this.ticks(j)) {
        const yy = this.y(this.pos(j, v));
        ctx.fillText(text, x - 5, yy);
        ctx.fillRect(x - 3, yy, 3, 1);
      }
      const b = this.brush[j];
      if (b) {
        const y0 = this.y(this.pos(j, b.lo));
        const y1 = this.y(this.pos(j, b.hi));
        ctx.fillStyle = 'rgba(47,111,222,0.18)';
        ctx.strokeStyle = '#2f6fde';
        ctx.fillRect(x - 8, Math.min(y0, y1), 16, Math.abs(y1 - y0) || 2);
        ctx.strokeRect(x - 8, Math.min(y0, y1), 16, Math.abs(y1 - y0) || 2);
      }
    });
  }

  /**
   * Tick values and labels of axis j.
   * @param {number} j
   * @returns {[number, string][]}
   */
  ticks(j) {
    const a = this.axes[j];
    if (a.kind !== 'numeric') {
      const every = Math.max(1, Math.ceil(a.categories.length / 12));
      return a.categories.flatMap((c, k) => (k % every === 0 ? [[k, typeof c === 'string' ? c : JSON.stringify(c)]] : []));
    }
    const lo = a.min ?? 0;
    const hi = a.max ?? 1;
    if (hi <= lo) return [[lo, label(lo)]];
    if (this.log[j]) {
      // The ends, and the powers of ten between them not too close to an end.
      const out = [lo];
      const margin = 0.08 * (Math.log10(hi) - Math.log10(lo));
      for (let e = Math.ceil(Math.log10(lo)); e <= Math.floor(Math.log10(hi)); e++) {
        if (e - Math.log10(lo) > margin && Math.log10(hi) - e > margin) out.push(10 ** e);
      }
      out.push(hi);
      return out.map((v) => [v, label(v)]);
    }
    return [0, 0.25, 0.5, 0.75, 1].map((f) => {
      const v = lo + f * (hi - lo);
      return [v, label(v)];
    });
  }

  /** The axis a pointer at x brushes, or -1. @param {number} x */
  axisAt(x) {
    let best = -1;
    let dist = HIT;
    this.x.forEach((ax, j) => {
      const d = Math.abs(ax - x);
      if (d <= dist) {
        best = j;
        dist = d;
      }
    });
    return best;
  }

  listen() {
    const c = this.canvas;
    const point = (/** @type {PointerEvent} */ e) => {
      const r = c.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    };
    c.addEventListener('pointerdown', (e) => {
      const [x, y] = point(e);
      const axis = this.axisAt(x);
      if (axis < 0) return;
      try {
        c.setPointerCapture(e.pointerId);
      } catch {
        // A synthetic pointer (a script's event) cannot be captured; the drag works without.
      }
      this.drag = { axis, y0: y, moved: false };
    });
    // Moves are applied once a frame: a pointer can report several between two paints.
    /** @type {null | {axis: number, range: Range}} */
    let pending = null;
    const apply = () => {
      if (pending) this.setBrush(pending.axis, pending.range);
      pending = null;
    };
    c.addEventListener('pointermove', (e) => {
      if (!this.drag) return;
      const [, y] = point(e);
      if (Math.abs(y - this.drag.y0) < 3 && !this.drag.moved) return;
      this.drag.moved = true;
      const j = this.drag.axis;
      const a = this.value(j, this.t(this.drag.y0));
      const b = this.value(j, this.t(y));
      if (!pending) requestAnimationFrame(apply);
      pending = { axis: j, range: { lo: Math.min(a, b), hi: Math.max(a, b) } };
    });
    const end = () => {
      if (!this.drag) return;
      apply();
      // A click without a drag clears that axis's brush.
      if (!this.drag.moved) this.setBrush(this.drag.axis, null);
      this.drag = null;
      this.oncommit?.();
    };
    c.addEventListener('pointerup', end);
    c.addEventListener('pointercancel', end);
  }

  /**
   * Sets (or with null clears) the brush of axis j, then reselects and redraws.
   * @param {number} j
   * @param {Range|null} range
   */
  setBrush(j, range) {
    const t = performance.now();
    this.brush[j] = range;
    this.select();
    this.draw();
    this.onselect?.();
    // What a brush costs in script (selection, lines, table), for the benchmark.
    this.canvas.dataset.updateMs = (performance.now() - t).toFixed(2);
  }
}

// ---------------------------------------------------------------- the sweep page's widget

/**
 * Reads `brush=NAME:LO:HI` parameters.
 * @param {URLSearchParams} params
 * @returns {Map<string, Range>}
 */
export function readBrushes(params) {
  const out = new Map();
  for (const b of params.getAll('brush')) {
    const m = /^(.*):([^:]+):([^:]+)$/.exec(b);
    if (!m) continue;
    const lo = Number(m[2]);
    const hi = Number(m[3]);
    if (Number.isFinite(lo) && Number.isFinite(hi)) out.set(m[1], { lo: Math.min(lo, hi), hi: Math.max(lo, hi) });
  }
  return out;
}

/**
 * Writes the widget's scales, flips and brushes into the address bar (no reload).
 * @param {ParCoords} pc
 * @param {HTMLElement[]} heads the axis headers (data-log-default)
 */
function saveToUrl(pc, heads) {
  const url = new URL(window.location.href);
  for (const k of ['log', 'flip', 'brush']) url.searchParams.delete(k);
  const defaults = heads.map((h) => h.dataset.logDefault === 'true');
  if (pc.log.some((l, j) => l !== defaults[j])) {
    const logged = pc.axes.filter((_, j) => pc.log[j]);
    if (logged.length === 0) url.searchParams.append('log', '');
    logged.forEach((a) => url.searchParams.append('log', a.name));
  }
  pc.axes.forEach((a, j) => {
    if (pc.flip[j]) url.searchParams.append('flip', a.name);
    const b = pc.brush[j];
    if (b) url.searchParams.append('brush', `${a.name}:${Number(b.lo.toPrecision(6))}:${Number(b.hi.toPrecision(6))}`);
  });
  history.replaceState(null, '', url);
}

/**
 * The analysis: from `data-analysis` (the page's own copy), else fetched from `data-url`.
 * @param {HTMLElement} el
 * @returns {Promise<Analysis>}
 */
async function analysisOf(el) {
  if (el.dataset.analysis) return JSON.parse(el.dataset.analysis);
  const url = el.dataset.url || '';
  const r = await fetch(url, { credentials: 'same-origin' });
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

/**
 * The parallel-coordinates block of a sweep page: `data-analysis` (or `data-url`) gives the
 * analysis, `data-table` the trials table whose rows (`data-trial`) follow the selection.
 * @param {HTMLElement} el
 */
export async function initParCoords(el) {
  const canvas = /** @type {HTMLCanvasElement|null} */ (el.querySelector('canvas'));
  if (!canvas) return;
  const t0 = performance.now();
  const data = await analysisOf(el);
  const tFetched = performance.now();
  const pc = new ParCoords(canvas, data);
  const heads = /** @type {HTMLElement[]} */ (Array.from(el.querySelectorAll('.pc-axis')));
  const brushes = readBrushes(new URLSearchParams(window.location.search));
  pc.axes.forEach((a, j) => {
    const head = heads[j];
    pc.log[j] = Boolean(head?.querySelector('input[data-log]:checked'));
    pc.flip[j] = Boolean(head?.querySelector('input[data-flip]:checked'));
    pc.brush[j] = brushes.get(a.name) ?? null;
  });

  const table = document.querySelector(el.dataset.table || '#trials');
  /** @type {HTMLElement[]} */
  const rows = table ? Array.from(table.querySelectorAll('[data-trial]')) : [];
  const lineOf = new Map(data.top.map((t, i) => [String(t.number), i]));
  const rowLine = rows.map((tr) => lineOf.get(tr.dataset.trial || '') ?? -1);
  const status = el.querySelector('[data-selection]');
  const clear = /** @type {HTMLButtonElement|null} */ (el.querySelector('[data-clear]'));
  const count = document.querySelector('[data-trial-count]');

  const show = () => {
    const t = performance.now();
    const any = pc.brushed();
    let shown = 0;
    rows.forEach((tr, k) => {
      const i = rowLine[k];
      const visible = !any || (i >= 0 && pc.selected[i] === 1);
      if (tr.hidden === visible) tr.hidden = !visible;
      if (visible) shown++;
    });
    const n = any ? pc.selected.reduce((s, v) => s + v, 0) : pc.count;
    el.dataset.selected = String(n);
    if (status) status.textContent = any ? `${n} of ${pc.count} trials with a value selected` : `${pc.count} trials with a value; drag along an axis to select`;
    if (count) count.textContent = any ? `${shown} of ${rows.length}` : String(rows.length);
    if (clear) clear.hidden = !any;
    el.dataset.brushMs = (performance.now() - t).toFixed(2);
  };
  pc.onselect = show;
  pc.oncommit = () => saveToUrl(pc, heads);

  const position = () => {
    heads.forEach((h, j) => {
      h.style.left = `${pc.x[j]}px`;
    });
  };
  const redraw = () => {
    const t = performance.now();
    pc.layout();
    position();
    pc.draw();
    el.dataset.drawMs = (performance.now() - t).toFixed(2);
  };

  el.addEventListener('change', (e) => {
    const input = /** @type {HTMLInputElement} */ (e.target);
    const j = heads.findIndex((h) => h.contains(input));
    if (j < 0) return;
    if (input.matches('[data-log]')) pc.log[j] = input.checked;
    if (input.matches('[data-flip]')) pc.flip[j] = input.checked;
    pc.draw();
    saveToUrl(pc, heads);
  });
  clear?.addEventListener('click', () => {
    pc.brush.fill(null);
    pc.select();
    pc.draw();
    show();
    saveToUrl(pc, heads);
  });

  pc.select();
  redraw();
  show();
  new ResizeObserver(() => {
    if (Math.round(canvas.clientWidth) !== Math.round(pc.width)) redraw();
  }).observe(canvas);
  el.dataset.loadMs = (tFetched - t0).toFixed(1);
  el.dataset.ready = 'true';
}

// The grid of charts on a run or comparison page: a chart is created and fetches only when it
// scrolls into view; the settings form and the metric search keep their state in the URL.

import { Chart } from './chart.js';

/** @typedef {import('./chart.js').Settings} Settings */

/**
 * @param {HTMLFormElement|null} form
 * @returns {Settings}
 */
function readSettings(form) {
  const f = form ? new FormData(form) : new FormData();
  const x = String(f.get('x') || 'step');
  return {
    smooth: Number(f.get('smooth') || 0),
    x: x === 'time' || x === 'relative' ? x : 'step',
    logy: f.get('logy') === '1',
    outliers: f.get('outliers') === '1',
  };
}

/**
 * Writes the form's state into the address bar (no reload).
 * @param {HTMLFormElement} form
 */
function saveToUrl(form) {
  const url = new URL(window.location.href);
  const f = new FormData(form);
  for (const name of ['smooth', 'x', 'logy', 'outliers', 'keys']) {
    const v = f.get(name);
    if (v === null || v === '' || (name === 'smooth' && Number(v) === 0) || (name === 'x' && v === 'step')) {
      url.searchParams.delete(name);
    } else {
      url.searchParams.set(name, String(v));
    }
  }
  history.replaceState(null, '', url);
}

/** @param {HTMLElement} grid */
export function initChartGrid(grid) {
  /** @type {HTMLFormElement|null} */
  const form = document.querySelector('[data-chart-settings]');
  const runs = (grid.dataset.runs || grid.dataset.run || '').split(',').filter(Boolean);
  const mode = grid.dataset.mode === 'compare' ? 'compare' : 'run';
  const live = grid.dataset.live === 'true';
  /** @type {Chart[]} */
  const charts = [];

  const observer = new IntersectionObserver(
    (entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        observer.unobserve(e.target);
        const chart = new Chart(/** @type {HTMLElement} */ (e.target), { mode, runs, live, settings: readSettings(form) });
        charts.push(chart);
        chart.load().catch((err) => {
          /** @type {HTMLElement} */ (e.target).dataset.error = String(err);
        });
      }
    },
    { rootMargin: '200px' },
  );
  grid.querySelectorAll('[data-chart]').forEach((el) => observer.observe(el));

  if (!form) return;
  const out = form.querySelector('[data-smooth-value]');
  const onChange = () => {
    const s = readSettings(form);
    if (out) out.textContent = s.smooth.toFixed(2);
    saveToUrl(form);
    charts.forEach((c) => c.apply(s));
  };
  form.addEventListener('input', onChange);
  form.addEventListener('change', onChange);
  form.addEventListener('submit', (e) => e.preventDefault());

  /** @type {HTMLInputElement|null} */
  const search = form.querySelector('[data-chart-search]');
  /** @type {HTMLInputElement|null} */
  const extra = form.querySelector('[data-extra-keys]');
  /** @type {HTMLTemplateElement|null} */
  const tpl = document.querySelector('#chart-card');
  const known = new Set(Array.from(document.querySelectorAll('#metric-keys option')).map((o) => o.getAttribute('value')));
  if (!search || !extra || !tpl) return;
  search.addEventListener('change', () => {
    const key = search.value;
    search.value = '';
    if (!known.has(key)) return;
    const existing = Array.from(grid.querySelectorAll('[data-chart]')).find((c) => /** @type {HTMLElement} */ (c).dataset.key === key);
    if (existing) {
      existing.scrollIntoView({ block: 'center' });
      return;
    }
    const card = /** @type {DocumentFragment} */ (tpl.content.cloneNode(true));
    const caption = card.querySelector('figcaption');
    const el = /** @type {HTMLElement|null} */ (card.querySelector('.chart'));
    if (!caption || !el) return;
    caption.textContent = key;
    el.dataset.chart = '';
    el.dataset.key = key;
    grid.prepend(card);
    observer.observe(el);
    const keys = extra.value.split(',').filter(Boolean);
    keys.push(key);
    extra.value = keys.join(',');
    saveToUrl(form);
  });
}

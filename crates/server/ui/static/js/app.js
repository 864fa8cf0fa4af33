// Starts the widgets a page holds. Each widget lives in its own module and reads what it
// needs from data- attributes.

import { initChartGrid } from './chartgrid.js';
import { initLineage } from './lineage.js';
import { initLogs } from './logs.js';
import { initParCoords } from './parcoords.js';
import { initColumnPicker, initRunTable } from './runtable.js';

/**
 * MLflow clients print links like `/#/experiments/3/runs/ab12cd34`; the fragment survives the
 * redirect from `/`, and names the page to show here.
 * @param {string} hash
 * @returns {string | null}
 */
export function mlflowLink(hash) {
  const m = /^#\/experiments\/(\d+)(?:\/runs\/([a-z0-9]{8}))?/.exec(hash);
  if (!m) return null;
  return m[2] ? `/runs/${m[2]}` : `/experiments/${m[1]}`;
}

/** @param {ParentNode} root */
function start(root) {
  root.querySelectorAll('[data-chart-grid]').forEach((el) => initChartGrid(/** @type {HTMLElement} */ (el)));
  root.querySelectorAll('[data-logs]').forEach((el) => initLogs(/** @type {HTMLElement} */ (el)));
  root.querySelectorAll('[data-run-table]').forEach((el) => initRunTable(/** @type {HTMLTableElement} */ (el)));
  root.querySelectorAll('[data-column-picker]').forEach((el) => initColumnPicker(/** @type {HTMLFormElement} */ (el)));
  for (const [selector, init] of /** @type {const} */ ([['[data-parcoords]', initParCoords], ['[data-lineage]', initLineage]])) {
    root.querySelectorAll(selector).forEach((el) => {
      const widget = /** @type {HTMLElement} */ (el);
      init(widget).catch((err) => {
        widget.dataset.error = String(err);
      });
    });
  }
}

const followed = mlflowLink(window.location.hash);
if (followed) window.location.replace(followed);

start(document);
document.body.addEventListener('htmx:load', (e) => {
  const target = /** @type {CustomEvent} */ (e).target;
  if (target instanceof HTMLElement && target !== document.body) start(target);
});

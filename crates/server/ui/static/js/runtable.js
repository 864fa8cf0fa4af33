// The run table: select runs to compare, the column picker, and states that update while
// the page is open.

const POLL_MS = 3000;

/** @param {HTMLTableElement} table */
export function initRunTable(table) {
  const form = /** @type {HTMLFormElement|null} */ (table.closest('form'));
  /** @type {HTMLButtonElement|null} */
  const button = document.querySelector('#compare-button');
  const count = document.querySelector('[data-selected-count]');
  /** @type {HTMLInputElement|null} */
  const all = table.querySelector('[data-select-all]');
  const boxes = () => /** @type {HTMLInputElement[]} */ (Array.from(table.querySelectorAll('tbody input[name="runs"]')));
  const update = () => {
    const n = boxes().filter((b) => b.checked).length;
    if (button) button.disabled = n < 1 || n > 100;
    if (count) count.textContent = n ? `${n} selected` : '';
  };
  table.addEventListener('change', (e) => {
    if (e.target === all) boxes().forEach((b) => (b.checked = all.checked));
    update();
  });
  // Selected ids travel as one comma-separated parameter, so the URL stays short.
  form?.addEventListener('submit', (e) => {
    e.preventDefault();
    const ids = boxes().filter((b) => b.checked).map((b) => b.value);
    window.location.assign(`${form.action}?runs=${encodeURIComponent(ids.join(','))}`);
  });
  update();
  table.dataset.ready = 'true';

  const statesUrl = table.dataset.statesUrl;
  if (!statesUrl) return;
  const poll = async () => {
    if (document.hidden) return;
    const r = await fetch(statesUrl, { credentials: 'same-origin' });
    if (!r.ok) return;
    /** @type {{id: string, state: string, duration: string}[]} */
    const rows = await r.json();
    for (const row of rows) {
      const tr = table.querySelector(`tr[data-run="${CSS.escape(row.id)}"]`);
      if (!tr) continue;
      const state = tr.querySelector('[data-state]');
      if (state && state.textContent !== row.state) {
        state.textContent = row.state;
        state.className = `state ${row.state}`;
      }
      const d = tr.querySelector('[data-duration]');
      if (d) d.textContent = row.duration;
    }
  };
  const timer = window.setInterval(() => {
    if (!table.isConnected) window.clearInterval(timer);
    else poll().catch(() => {});
  }, POLL_MS);
}

/** The column picker writes the ticked columns into one `cols` parameter. */
export function initColumnPicker(/** @type {HTMLFormElement} */ form) {
  /** @type {HTMLInputElement|null} */
  const cols = form.querySelector('[data-cols]');
  form.addEventListener('submit', () => {
    const ticked = Array.from(form.querySelectorAll('.choices input:checked')).map((i) => /** @type {HTMLInputElement} */ (i).value);
    if (cols) cols.value = ticked.join(',');
  });
}

// The log tail: the page holds the last lines; new lines arrive over the run's log WebSocket
// (which applies the page's level and search filter) and are appended as text.

const MAX_LINES = 5000;

/**
 * @param {number} t Unix seconds
 * @returns {string}
 */
function clock(t) {
  return new Date(t * 1000).toISOString().slice(11, 19);
}

/** @param {HTMLElement} box */
export function initLogs(box) {
  /** @type {HTMLTemplateElement|null} */
  const tpl = document.querySelector('#log-line');
  /** @type {HTMLInputElement|null} */
  const follow = document.querySelector('[data-follow]');
  const streamUrl = box.dataset.streamUrl;
  if (!tpl || !streamUrl) return;
  box.scrollTop = box.scrollHeight;
  const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  let url = `${proto}//${window.location.host}${streamUrl}`;
  let retry = 500;

  const connect = () => {
    const ws = new WebSocket(url);
    ws.addEventListener('open', () => {
      retry = 500;
      box.dataset.ready = 'true';
    });
    ws.addEventListener('message', (ev) => {
      if (!box.isConnected) {
        ws.close();
        return;
      }
      /** @type {{seq: number, level: string, message: string, timestamp: number}} */
      const line = JSON.parse(String(ev.data));
      const frag = /** @type {DocumentFragment} */ (tpl.content.cloneNode(true));
      const row = /** @type {HTMLElement} */ (frag.firstElementChild);
      row.classList.add(line.level);
      const [t, lvl, msg] = row.children;
      t.textContent = clock(line.timestamp);
      lvl.textContent = line.level;
      msg.textContent = line.message;
      const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
      box.append(frag);
      while (box.childElementCount > MAX_LINES && box.firstElementChild) box.firstElementChild.remove();
      document.querySelector('[data-logs-empty]')?.remove();
      box.dataset.cursor = String(line.seq);
      if (follow?.checked && atBottom) box.scrollTop = box.scrollHeight;
    });
    ws.addEventListener('close', () => {
      if (!box.isConnected) return;
      // Resume after the last line seen, with backoff.
      const u = new URL(url);
      u.searchParams.set('cursor', box.dataset.cursor || '0');
      url = u.toString();
      window.setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    });
  };
  connect();
}

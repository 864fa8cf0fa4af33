// The lineage graph of an artifact version: the runs and versions upstream and downstream of
// it, laid out with dagre (loaded only on pages that draw a graph) and drawn as SVG. Every node
// links to its page. A node with more new neighbours on one side than FANOUT shows the first
// ones and one "N more" node, which opens the rest (`expand=NODE` in the URL).

/**
 * @typedef {{id: string, kind: string, label: string, project: string, depth: number}} LineageNode
 * @typedef {{from: string, to: string, relation: string}} LineageEdge
 * @typedef {{nodes: LineageNode[], edges: LineageEdge[]}} Lineage
 * @typedef {{id: string, kind: 'run'|'version'|'more', label: string, sub: string, href: string, start: boolean}} Shown
 */

export const FANOUT = 8;
const SVG = 'http://www.w3.org/2000/svg';
const CHAR = 7;
const NODE_H = 38;

/**
 * The page of a node (`run:ID`, `artifact:PROJECT/NAME:vN`).
 * @param {string} id
 */
export function nodeHref(id) {
  if (id.startsWith('run:')) return `/runs/${encodeURIComponent(id.slice(4))}`;
  const rest = id.slice('artifact:'.length);
  const slash = rest.indexOf('/');
  const colon = rest.lastIndexOf(':');
  const project = rest.slice(0, slash);
  const name = rest.slice(slash + 1, colon);
  const version = rest.slice(colon + 1);
  return `/projects/${encodeURIComponent(project)}/artifacts/${encodeURIComponent(name)}/${encodeURIComponent(version)}`;
}

/**
 * This page's URL with `node` expanded as well.
 * @param {string} node
 */
function expandHref(node) {
  const url = new URL(window.location.href);
  url.searchParams.append('expand', node);
  return `${url.pathname}${url.search}`;
}

/**
 * Which nodes and edges to draw: walking out from the start (upstream for nodes before it,
 * downstream for those after), a node's new neighbours beyond FANOUT are folded into one
 * "N more" node unless the node is expanded.
 * @param {Lineage} lineage
 * @param {Set<string>} expanded
 * @returns {{nodes: Shown[], edges: [string, string][]}}
 */
export function visibleGraph(lineage, expanded) {
  /** @type {Map<string, LineageNode>} */
  const byId = new Map(lineage.nodes.map((n) => [n.id, n]));
  /** @type {Map<string, string[]>} */
  const succ = new Map();
  /** @type {Map<string, string[]>} */
  const pred = new Map();
  const add = (/** @type {Map<string, string[]>} */ m, /** @type {string} */ k, /** @type {string} */ v) => {
    const list = m.get(k);
    if (list) list.push(v);
    else m.set(k, [v]);
  };
  for (const e of lineage.edges) {
    if (!byId.has(e.from) || !byId.has(e.to)) continue;
    add(succ, e.from, e.to);
    add(pred, e.to, e.from);
  }
  const start = lineage.nodes.find((n) => n.depth === 0);
  if (!start) return { nodes: [], edges: [] };
  const shown = new Set([start.id]);
  /** @type {[string, string][]} */
  const more = [];
  /** @type {Shown[]} */
  const extra = [];
  const queue = [start.id];
  while (queue.length) {
    const u = /** @type {string} */ (queue.shift());
    const d = /** @type {LineageNode} */ (byId.get(u)).depth;
    for (const down of d === 0 ? [true, false] : [d > 0]) {
      const next = ((down ? succ : pred).get(u) || []).filter((v) => {
        const dv = /** @type {LineageNode} */ (byId.get(v)).depth;
        return !shown.has(v) && (down ? dv > d : dv < d);
      });
      let keep = next;
      if (next.length > FANOUT && !expanded.has(u)) {
        keep = next.slice(0, FANOUT - 1);
        const id = `more:${u}:${down ? 'down' : 'up'}`;
        const n = next.length - keep.length;
        extra.push({ id, kind: 'more', label: `${n} more`, sub: 'show all', href: expandHref(u), start: false });
        more.push(down ? [u, id] : [id, u]);
      }
      for (const v of keep) {
        shown.add(v);
        queue.push(v);
      }
    }
  }
  /** @type {Shown[]} */
  const nodes = lineage.nodes
    .filter((n) => shown.has(n.id))
    .map((n) => {
      const run = n.kind === 'run';
      return {
        id: n.id,
        kind: run ? 'run' : 'version',
        label: n.label,
        sub: run ? `run · ${n.project}` : n.project,
        href: nodeHref(n.id),
        start: n.depth === 0,
      };
    });
  /** @type {[string, string][]} */
  const edges = lineage.edges.filter((e) => shown.has(e.from) && shown.has(e.to)).map((e) => [e.from, e.to]);
  return { nodes: nodes.concat(extra), edges: edges.concat(more) };
}

/**
 * @param {string} tag
 * @param {Record<string, string|number>} attrs
 */
function el(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

/**
 * Lays the graph out and draws it into `box`; returns the layout's milliseconds.
 * @param {HTMLElement} box
 * @param {any} dagre
 * @param {{nodes: Shown[], edges: [string, string][]}} graph
 */
export function drawGraph(box, dagre, graph) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'LR', nodesep: 12, ranksep: 48, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of graph.nodes) {
    const width = Math.max(n.label.length, n.sub.length) * CHAR + 28;
    g.setNode(n.id, { width: Math.min(width, 260), height: NODE_H });
  }
  for (const [a, b] of graph.edges) g.setEdge(a, b);
  const t = performance.now();
  dagre.layout(g);
  const ms = performance.now() - t;

  const size = g.graph();
  const svg = el('svg', { width: Math.ceil(size.width || 0), height: Math.ceil(size.height || 0), role: 'img', 'aria-label': 'Lineage graph' });
  const defs = el('defs', {});
  const marker = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
  marker.appendChild(el('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#9aa5b1' }));
  defs.appendChild(marker);
  svg.appendChild(defs);
  for (const e of g.edges()) {
    const pts = g.edge(e).points || [];
    const d = pts.map((p, i) => `${i ? 'L' : 'M'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
    svg.appendChild(el('path', { d, class: 'edge', 'marker-end': 'url(#arrow)' }));
  }
  for (const n of graph.nodes) {
    const p = g.node(n.id);
    const a = el('a', { href: n.href, class: `node ${n.kind}${n.start ? ' start' : ''}`, 'data-node': n.id });
    const title = el('title', {});
    title.textContent = n.kind === 'more' ? `${n.label}: show all` : `${n.label} (${n.sub})`;
    a.appendChild(title);
    a.appendChild(el('rect', { x: p.x - p.width / 2, y: p.y - p.height / 2, width: p.width, height: p.height, rx: n.kind === 'run' ? 18 : 3 }));
    const name = el('text', { x: p.x, y: p.y - 3, 'text-anchor': 'middle' });
    name.textContent = n.label;
    const sub = el('text', { x: p.x, y: p.y + 11, 'text-anchor': 'middle', class: 'sub' });
    sub.textContent = n.sub;
    a.append(name, sub);
    svg.appendChild(a);
  }
  box.replaceChildren(svg);
  return ms;
}

/**
 * Fetches the graph from `data-url`, lays it out and draws it.
 * @param {HTMLElement} box
 */
export async function initLineage(box) {
  const url = box.dataset.url;
  if (!url) return;
  const [r, mod] = await Promise.all([fetch(url, { credentials: 'same-origin' }), import('../vendor/dagre/dagre.esm.js')]);
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  /** @type {Lineage} */
  const lineage = await r.json();
  const expanded = new Set(new URLSearchParams(window.location.search).getAll('expand'));
  const graph = visibleGraph(lineage, expanded);
  const ms = drawGraph(box, mod.default, graph);
  box.dataset.layoutMs = ms.toFixed(1);
  box.dataset.nodes = String(graph.nodes.length);
  box.dataset.ready = 'true';
}

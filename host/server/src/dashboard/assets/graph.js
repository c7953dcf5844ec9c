// A run's jobs drawn as layers: a job sits one column right of the last
// job it depends on; a spawned job sits in its parent's column, under it.
// Plain SVG with one element per job and edge, drawn once; live changes
// only swap a node's state class. A thousand jobs draw in milliseconds.
import { el } from './ui.js';

const NODE_W = 150;
const NODE_H = 26;
const GAP_X = 60;
const GAP_Y = 10;
const INDENT = 14;

// Layers and rows for `jobs`: columns follow dependencies (a job may
// be created before what it depends on), so jobs are taken in a
// topological order first.
export function layout(jobs) {
  const byId = new Map(jobs.map((job) => [job.id, job]));
  const parentOf = (job) => (job.parent_job_id && byId.has(job.parent_job_id) ? job.parent_job_id : null);
  const waitingOn = new Map();
  const after = new Map();
  for (const job of jobs) {
    const before = job.needs.filter((d) => byId.has(d));
    if (parentOf(job)) before.push(parentOf(job));
    waitingOn.set(job.id, before.length);
    for (const d of before) (after.get(d) || after.set(d, []).get(d)).push(job);
  }
  const order = jobs.filter((job) => waitingOn.get(job.id) === 0);
  for (let i = 0; i < order.length; i += 1) {
    for (const next of after.get(order[i].id) || []) {
      const left = waitingOn.get(next.id) - 1;
      waitingOn.set(next.id, left);
      if (left === 0) order.push(next);
    }
  }
  // A cycle (which the engine refuses) would leave jobs out: add them.
  if (order.length < jobs.length) {
    const placed = new Set(order.map((job) => job.id));
    for (const job of jobs) if (!placed.has(job.id)) order.push(job);
  }
  const column = new Map();
  const depth = new Map();
  for (const job of order) {
    let c = 0;
    const parent = parentOf(job);
    // A spawned job needs its parent; it is drawn under it, not after.
    for (const dep of job.needs) if (dep !== parent && column.has(dep)) c = Math.max(c, column.get(dep) + 1);
    if (parent !== null && column.has(parent)) c = Math.max(c, column.get(parent));
    column.set(job.id, c);
    depth.set(job.id, parent !== null && column.get(parent) === c ? (depth.get(parent) || 0) + 1 : 0);
  }
  // Within a column: by the mean row of what a job depends on, a spawned
  // job right after its parent's subtree, otherwise in creation order.
  const columns = [];
  for (const job of order) {
    const c = column.get(job.id);
    (columns[c] = columns[c] || []).push(job);
  }
  const row = new Map();
  const place = new Map();
  for (const members of columns) {
    if (!members) continue;
    const key = new Map();
    members.forEach((job, i) => {
      const deps = job.needs.filter((d) => row.has(d));
      const base = deps.length ? deps.reduce((s, d) => s + row.get(d), 0) / deps.length : i;
      key.set(job.id, base);
    });
    // Children follow their parent: order parents first, then splice.
    const isChild = (job) => Boolean(job.parent_job_id) && column.get(job.parent_job_id) === column.get(job.id);
    const roots = members.filter((job) => !isChild(job));
    roots.sort((a, b) => key.get(a.id) - key.get(b.id));
    const children = new Map();
    for (const job of members) {
      if (isChild(job)) {
        const list = children.get(job.parent_job_id) || [];
        list.push(job);
        children.set(job.parent_job_id, list);
      }
    }
    const ordered = [];
    const seen = new Set();
    const visit = (job) => {
      ordered.push(job);
      seen.add(job.id);
      for (const child of children.get(job.id) || []) visit(child);
    };
    roots.forEach(visit);
    // Any left (a parent outside this graph) go last.
    for (const job of members) if (!seen.has(job.id)) ordered.push(job);
    ordered.forEach((job, i) => {
      row.set(job.id, i);
      place.set(job.id, {
        // Deep spawn chains indent at most four steps: within the gap.
        x: column.get(job.id) * (NODE_W + GAP_X + INDENT * 4) + Math.min(depth.get(job.id), 4) * INDENT,
        y: i * (NODE_H + GAP_Y),
      });
    });
  }
  return place;
}

function shortName(name) {
  return name.length > 20 ? `${name.slice(0, 19)}…` : name;
}

// Draws `jobs` into `holder`; returns {setState(id, state), hideSpawned}.
export function drawGraph(holder, jobs) {
  const place = layout(jobs);
  let width = 0;
  let height = 0;
  for (const p of place.values()) {
    width = Math.max(width, p.x + NODE_W);
    height = Math.max(height, p.y + NODE_H);
  }
  width += 20;
  height += 20;
  const edges = el('svg:g', { class: 'edges' });
  const nodes = el('svg:g', { class: 'nodes' });
  const elements = new Map();
  const edgeParts = [];
  const spawnParts = [];
  for (const job of jobs) {
    const to = place.get(job.id);
    for (const dep of job.needs) {
      const from = place.get(dep);
      // A spawned job's tie to its parent is the dashed line below.
      if (!from || dep === job.parent_job_id) continue;
      const x1 = from.x + NODE_W;
      const y1 = from.y + NODE_H / 2;
      const x2 = to.x;
      const y2 = to.y + NODE_H / 2;
      const mid = (x1 + x2) / 2;
      edgeParts.push(`M${x1},${y1}C${mid},${y1} ${mid},${y2} ${x2},${y2}`);
    }
    const parent = job.parent_job_id ? place.get(job.parent_job_id) : null;
    if (parent) {
      const x1 = parent.x + 6;
      const y1 = parent.y + NODE_H;
      spawnParts.push(`M${x1},${y1}V${to.y + NODE_H / 2}H${to.x}`);
    }
    const title = el('svg:title', {}, `${job.name} (${job.plugin}): ${job.state}`);
    const text = el('svg:text', { x: 8, y: 17 }, shortName(job.name));
    const rect = el('svg:rect', { width: NODE_W, height: NODE_H, rx: 5 });
    const group = el('svg:g', {
      class: `node state-${job.state}`,
      transform: `translate(${to.x},${to.y})`,
      'data-job': job.id,
      'data-state': job.state,
    }, title, rect, text);
    const link = el('svg:a', { href: `/jobs/${job.id}`, 'aria-label': `${job.name}: ${job.state}` }, group);
    nodes.append(link);
    elements.set(job.id, { group, title, link, job });
  }
  // Two paths hold every edge: one element each, however many jobs.
  if (edgeParts.length) edges.append(el('svg:path', { class: 'edge', d: edgeParts.join('') }));
  if (spawnParts.length) edges.append(el('svg:path', { class: 'edge spawn', d: spawnParts.join('') }));
  const svg = el('svg:svg', {
    width, height, viewBox: `0 0 ${width} ${height}`,
    role: 'group', 'aria-label': `Graph of ${jobs.length} jobs`,
    id: 'run-graph',
  }, edges, nodes);
  holder.replaceChildren(svg);
  let scale = 1;
  const zoom = (factor) => {
    if (factor === 'start') {
      // Large runs start small enough to see their shape, still legible.
      scale = Math.min(1, Math.max(0.5, holder.clientWidth / width));
    } else if (typeof factor === 'object' && factor !== null) {
      scale = factor.scale;
    } else {
      const wanted = factor === null ? Math.min(1, holder.clientWidth / width) : scale * factor;
      scale = Math.min(4, Math.max(0.05, wanted));
    }
    svg.setAttribute('width', String(Math.round(width * scale)));
    svg.setAttribute('height', String(Math.round(height * scale)));
  };
  return {
    setState(id, state) {
      const found = elements.get(id);
      if (!found) return false;
      found.job.state = state;
      found.group.setAttribute('class', `node state-${state}`);
      found.group.setAttribute('data-state', state);
      found.title.textContent = `${found.job.name} (${found.job.plugin}): ${state}`;
      found.link.setAttribute('aria-label', `${found.job.name}: ${state}`);
      return true;
    },
    // zoom(1.25) or zoom(0.8): by a factor; zoom(null): fit the width;
    // zoom('start'): the first view; zoom({scale}): as it was.
    zoom,
    get scale() { return scale; },
  };
}

// What every page uses: the API with the signed-in token, Server-Sent
// Events read over fetch (EventSource cannot send a bearer header), and
// element builders that only ever set text, never HTML, so whatever a job
// or a person wrote shows as text.

const TOKEN_KEY = 'warren.token';

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  // Filled by app.js from /v1/whoami before a page draws.
  who: null,
  get canWrite() { return this.who !== null && this.who.role !== 'approver'; },
  get isAdmin() { return this.who !== null && this.who.role === 'admin'; },
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra) {
  const h = new Headers(extra || {});
  const token = session.token;
  if (token) h.set('authorization', `Bearer ${token}`);
  return h;
}

async function failure(response) {
  let code = 'http_' + response.status;
  let message = response.statusText || 'request failed';
  try {
    const body = await response.json();
    if (body && typeof body.code === 'string') code = body.code;
    if (body && typeof body.message === 'string') message = body.message;
  } catch (_) { /* not JSON: keep the status */ }
  return new ApiError(response.status, code, message);
}

// A JSON request to the API; throws ApiError on a non-2xx answer.
export async function api(path, options = {}) {
  const init = { method: options.method || 'GET', headers: headers(options.headers) };
  if (options.json !== undefined) {
    init.headers.set('content-type', 'application/json');
    init.body = JSON.stringify(options.json);
  } else if (options.body !== undefined) {
    init.body = options.body;
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  if (options.raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  return type.includes('json') ? response.json() : response.text();
}

// Reads a text/event-stream answer, calling onOpen() once it is accepted
// and onEvent({event, id, data}) for each event, until the stream ends or
// `signal` aborts it.
export async function follow(path, onEvent, signal, onOpen) {
  const response = await fetch(path, {
    headers: headers({ accept: 'text/event-stream' }),
    signal,
  });
  if (!response.ok) throw await failure(response);
  if (onOpen) onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      let id = null;
      const data = [];
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? '' : line.slice(colon + 1);
        if (text.startsWith(' ')) text = text.slice(1);
        if (field === 'event') event = text;
        else if (field === 'data') data.push(text);
        else if (field === 'id') id = text;
      }
      if (data.length === 0) continue;
      let parsed;
      try { parsed = JSON.parse(data.join('\n')); } catch (_) { parsed = data.join('\n'); }
      onEvent({ event, id, data: parsed });
    }
  }
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
const hidden = () => document.visibilityState === 'hidden';

// Follows the history stream `url(after)` from `after`, resuming after
// the last event seen: it lets go while the tab is hidden (a browser keeps
// only a few connections to one server, and every open tab would hold
// one), reconnects after an error, and stops when the stream ends unless
// `forever` (every run's events never end). Resolves when it stops.
export async function followLive(url, after, onEvent, { forever = false } = {}) {
  let last = after;
  let stopped = false;
  let controller = null;
  const letGo = () => { if (controller) controller.abort(); };
  const onVisibility = () => { if (hidden()) letGo(); };
  const onHide = () => { stopped = true; letGo(); };
  document.addEventListener('visibilitychange', onVisibility);
  window.addEventListener('pagehide', onHide);
  try {
    while (!stopped) {
      if (hidden()) {
        await new Promise((resolve) => { document.addEventListener('visibilitychange', resolve, { once: true }); });
        continue;
      }
      controller = new AbortController();
      try {
        await follow(url(last), (e) => {
          if (e.id !== null) last = Math.max(last, Number(e.id));
          onEvent(e);
        }, controller.signal);
        if (!forever) return;
      } catch (error) {
        // A refusal (a token no longer accepted, a run gone) is final.
        if (error instanceof ApiError && error.status < 500) return;
        if (error.name !== 'AbortError') await sleep(2000);
      } finally {
        controller = null;
      }
    }
  } finally {
    document.removeEventListener('visibilitychange', onVisibility);
    window.removeEventListener('pagehide', onHide);
  }
}

// `fn` (async) at most once per `ms` and never twice at once: calls while
// it waits join that call; calls while it runs make one more after it.
export function throttle(fn, ms) {
  let timer = null;
  let running = false;
  let again = false;
  const fire = async () => {
    timer = null;
    running = true;
    try { await fn(); } catch (_) { /* the next call tries again */ }
    running = false;
    if (again) {
      again = false;
      timer = setTimeout(fire, ms);
    }
  };
  return () => {
    if (running) again = true;
    else if (timer === null) timer = setTimeout(fire, ms);
  };
}

// el('a', {href: '/x', class: 'y'}, 'text', child…): an element whose
// strings become text nodes. Attributes starting with "on" are listeners.
export function el(tag, attrs, ...children) {
  const svg = tag.startsWith('svg:');
  const node = svg
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

// Replaces what `node` holds with `children`, leaving out the absent
// (null, undefined, false) ones, which replaceChildren would show as text.
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

// Replaces what `main` shows and tells screen readers the page changed.
export function show(...children) {
  const main = document.getElementById('main');
  main.replaceChildren();
  append(main, children);
}

export function announce(text) {
  const region = document.getElementById('announce');
  if (region) region.textContent = text;
}

export function alertBox(error) {
  const text = error instanceof ApiError ? `${error.message} (${error.code})` : String(error.message || error);
  return el('div', { class: 'alert', role: 'alert' }, text);
}

// An id's last twelve characters: ids begin with their creation time, so
// ids made close together share their beginning, never their end.
export function shortId(id) {
  return `…${id.slice(-12)}`;
}

export function badge(state) {
  const value = state || 'unknown';
  return el('span', { class: `state state-${value}` }, value.replace(/_/g, ' '));
}

// `rows`: an array of rows, or a <tbody> the caller keeps adding to.
export function table(caption, columns, rows, attrs = {}) {
  const body = rows instanceof HTMLTableSectionElement ? rows : el('tbody', {}, rows);
  return el('div', { class: 'table-wrap' },
    el('table', attrs,
      el('caption', { class: 'visually-hidden' }, caption),
      el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col' }, c)))),
      body));
}

export function facts(pairs) {
  return el('dl', { class: 'facts' },
    pairs.filter(([, v]) => v !== undefined && v !== null && v !== '')
      .map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

export function when(ms) {
  if (ms === null || ms === undefined) return '—';
  const date = new Date(ms);
  return el('time', { datetime: date.toISOString(), title: date.toISOString() }, date.toLocaleString());
}

export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function count(n) {
  return n === null || n === undefined ? '—' : Number(n).toLocaleString('en');
}

// Pretty-printed JSON, as text.
export function jsonBlock(value, label) {
  return el('pre', { 'aria-label': label, tabindex: 0 }, JSON.stringify(value, null, 2));
}

// A value that may be inline or only at a URL (over 64 KiB).
export function storedJson(value, size, url, label) {
  if (value !== null && value !== undefined) return jsonBlock(value, label);
  if (!url) return el('p', { class: 'muted' }, 'none');
  const holder = el('div', {});
  const load = el('button', {
    class: 'secondary',
    type: 'button',
    onclick: async () => {
      load.disabled = true;
      try { holder.replaceChildren(jsonBlock(await api(url), label)); } catch (e) { holder.replaceChildren(alertBox(e)); }
    },
  }, `Load ${label} (${bytes(size)})`);
  holder.append(load);
  return holder;
}

// Fetches an artifact with the token and hands it to the browser as a
// download (a plain link could not send the bearer header).
export async function download(digest, name) {
  const response = await api(`/v1/artifacts/${digest}`, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const link = el('a', { href: url, download: name.split('/').pop() || 'artifact' });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// The artifact's text, or null when it is not text (or too large to show).
export async function previewText(digest, size) {
  if (size > 256 * 1024) return null;
  const response = await api(`/v1/artifacts/${digest}`, { raw: true });
  const buffer = await response.arrayBuffer();
  try { return new TextDecoder('utf-8', { fatal: true }).decode(buffer); } catch (_) { return null; }
}

export function artifactsTable(artifacts, showJob) {
  const rows = artifacts.map((a) => {
    const preview = el('td', {});
    const previewButton = el('button', {
      class: 'secondary', type: 'button',
      onclick: async () => {
        previewButton.disabled = true;
        try {
          const text = await previewText(a.sha256, a.size);
          preview.replaceChildren(text === null
            ? el('span', { class: 'muted' }, 'not text, or over 256 KiB: download it')
            : el('pre', { tabindex: 0, 'aria-label': `Preview of ${a.name}` }, text));
        } catch (e) { preview.replaceChildren(alertBox(e)); }
      },
    }, 'Preview');
    preview.append(previewButton);
    return el('tr', {},
      showJob ? el('td', {}, el('a', { href: `/jobs/${a.job_id}` }, a.job)) : null,
      el('td', { class: 'mono' }, a.name),
      el('td', { class: 'num' }, bytes(a.size)),
      el('td', {}, el('button', {
        type: 'button', 'aria-label': `Download ${a.name}`,
        onclick: () => download(a.sha256, a.name).catch((e) => preview.replaceChildren(alertBox(e))),
      }, 'Download')),
      preview);
  });
  const columns = showJob ? ['Job', 'Name', 'Size', 'Download', 'Preview'] : ['Name', 'Size', 'Download', 'Preview'];
  return rows.length ? table('Artifacts', columns, rows) : el('p', { class: 'muted' }, 'No artifacts.');
}

// Runs: the list (filters, paging, live), one run (graph, jobs, artifacts,
// events, cancel, retry), one job (attempts, live log, input, output,
// artifacts, reviews).
import {
  session, api, follow, followLive, throttle, el, fill, shortId, show, announce, alertBox, badge, table,
  facts, when, duration, bytes, count, jsonBlock, storedJson, artifactsTable,
} from './ui.js';
import { drawGraph } from './graph.js';
import { decisionForms } from './people.js';

export const RUN_STATES = ['pending', 'running', 'needs_input', 'waiting_approval', 'completed', 'failed', 'cancelled'];
const JOB_STATES = new Set(['pending', 'ready', 'running', 'completed', 'failed', 'skipped', 'cancelled', 'needs_input', 'waiting_approval']);
const TERMINAL_RUN = new Set(['completed', 'failed', 'cancelled']);

export async function runsPage() {
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const key of ['state', 'template', 'story_id', 'before']) {
    if (params.get(key)) query.set(key, params.get(key));
  }
  const state = el('select', { id: 'filter-state', name: 'state' },
    el('option', { value: '' }, 'any'),
    RUN_STATES.map((s) => el('option', { value: s, selected: params.get('state') === s }, s.replace(/_/g, ' '))));
  const filters = el('form', { class: 'row', method: 'get', action: '/', role: 'search', 'aria-label': 'Filter runs' },
    el('label', { for: 'filter-state' }, 'State', state),
    el('label', { for: 'filter-template' }, 'Template',
      el('input', { id: 'filter-template', name: 'template', value: params.get('template') || '', size: 16 })),
    el('label', { for: 'filter-story' }, 'Story',
      el('input', { id: 'filter-story', name: 'story_id', value: params.get('story_id') || '', size: 16 })),
    el('button', { type: 'submit' }, 'Filter'),
    el('a', { href: '/' }, 'Clear'));
  const holder = el('div', { id: 'runs' });
  show(el('h1', {}, 'Runs'), filters, holder);
  for (const field of filters.querySelectorAll('input, select')) {
    // Empty fields stay out of the URL.
    field.form.addEventListener('formdata', (e) => {
      for (const [k, v] of [...e.formData.entries()]) if (v === '') e.formData.delete(k);
    }, { once: true });
    break;
  }
  const draw = async () => {
    const page = await api(`/v1/runs?${query}`);
    const rows = page.runs.map((run) => el('tr', { 'data-run': run.id },
      el('td', {}, el('a', { href: `/runs/${run.id}`, class: 'mono' }, run.id)),
      el('td', { 'data-field': 'state' }, badge(run.state)),
      el('td', {}, run.template ? el('a', { href: `/templates/${encodeURIComponent(run.template)}` }, `${run.template} v${run.template_version}`) : el('span', { class: 'muted' }, 'inline')),
      el('td', {}, run.story_id ? el('a', { href: `/stories/${encodeURIComponent(run.story_id)}` }, run.story_id) : '—'),
      el('td', { class: 'hide-narrow' }, when(run.created_at)),
      el('td', { class: 'hide-narrow' }, when(run.finished_at))));
    const pager = el('div', { class: 'pager' },
      query.get('before') ? el('a', { href: `/?${withoutKey(query, 'before')}` }, 'Newest') : null,
      page.next ? el('a', { href: `/?${withKey(query, 'before', page.next)}`, rel: 'next' }, 'Older runs') : null);
    holder.replaceChildren(
      rows.length ? table('Runs, newest first', ['Run', 'State', 'Template', 'Story', 'Created', 'Ended'], rows, { id: 'runs-table' })
        : el('p', { class: 'muted' }, 'No runs.'),
      pager);
    return page;
  };
  const first = await draw();
  // Live: the first page is drawn again when any run changes.
  if (!query.get('before')) {
    const redraw = throttle(draw, 300);
    followLive((after) => `/v1/events?after=${after}`, first.last_event_id, (e) => {
      if (e.data && e.data.kind === 'run') redraw();
    }, { forever: true });
  }
}

function withKey(query, key, value) {
  const next = new URLSearchParams(query);
  next.set(key, value);
  return next;
}

function withoutKey(query, key) {
  const next = new URLSearchParams(query);
  next.delete(key);
  return next;
}

// The facts at the top of a run's page, from the run view.
function runFacts(run) {
  return facts([
    ['Template', run.template ? el('a', { href: `/templates/${encodeURIComponent(run.template)}` }, `${run.template} v${run.template_version}`) : 'inline pipeline'],
    ['Story', run.story_id ? el('a', { href: `/stories/${encodeURIComponent(run.story_id)}` }, run.story_id) : null],
    ['Created', when(run.created_at)],
    ['Ended', run.ended_at ? when(run.ended_at) : null],
    ['Jobs', count(run.jobs_total)],
    ['Used', `${count(run.used.fuel)} fuel · ${duration(run.used.wall_ms)} · ${bytes(run.used.artifact_bytes)} artifacts · ${count(run.used.tokens)} tokens`],
    ['Waiting for documents', run.pending_docs.length ? run.pending_docs.join(', ') : null],
    ['Budget exceeded', run.budget_exceeded],
    ['Replay of', run.replay_of ? el('a', { href: `/runs/${run.replay_of}` }, run.replay_of) : null],
  ]);
}

// Rows the events table keeps, newest first.
const EVENTS_SHOWN = 300;

export async function runPage(id) {
  // The graph is read after its last event id: its state, and the states
  // of its jobs, are those of that event or later.
  const [run, graph] = await Promise.all([api(`/v1/runs/${id}?jobs_limit=1`), api(`/v1/runs/${id}/graph`)]);
  const message = el('div', {});
  const stateCell = el('span', { id: 'run-state' }, badge(graph.state));
  const cancel = el('button', {
    class: 'danger', type: 'button', id: 'cancel-run',
    hidden: TERMINAL_RUN.has(graph.state) || !session.canWrite,
    onclick: async () => {
      cancel.disabled = true;
      try { await api(`/v1/runs/${id}/cancel`, { method: 'POST' }); announce('Cancel requested'); } catch (e) { message.replaceChildren(alertBox(e)); cancel.disabled = false; }
    },
  }, 'Cancel run');
  const setState = (state) => {
    stateCell.replaceChildren(badge(state));
    cancel.hidden = TERMINAL_RUN.has(state) || !session.canWrite;
    cancel.disabled = false;
  };
  const factsHolder = el('div', { id: 'run-facts' }, runFacts(run));
  // Focusable, so the keyboard scrolls it too.
  const graphHolder = el('div', { class: 'graph', id: 'graph', tabindex: 0, role: 'region', 'aria-label': 'Graph of the run’s jobs (scrolls)' });
  const jobsHolder = el('div', { id: 'jobs' });
  const artifactsHolder = el('div', { id: 'artifacts' });
  const eventsBody = el('tbody', {});
  const legend = el('div', { class: 'legend', 'aria-hidden': 'true' },
    [...JOB_STATES].map((state) => badge(state)));
  let view;
  const zoomTools = el('div', { class: 'graph-tools' },
    el('button', { type: 'button', class: 'secondary', onclick: () => view.zoom(1.25), 'aria-label': 'Zoom in' }, '+'),
    el('button', { type: 'button', class: 'secondary', onclick: () => view.zoom(0.8), 'aria-label': 'Zoom out' }, '−'),
    el('button', { type: 'button', class: 'secondary', id: 'zoom-fit', onclick: () => view.zoom(null) }, 'Fit'),
    legend);
  show(el('h1', {}, 'Run ', el('span', { class: 'mono' }, id), ' ', stateCell),
    factsHolder,
    el('div', { class: 'row' }, cancel),
    message,
    el('h2', {}, 'Graph'),
    graph.truncated ? el('p', { class: 'note' }, `Showing the first ${graph.jobs.length} jobs.`) : null,
    zoomTools, graphHolder,
    el('h2', {}, 'Jobs'), jobsHolder,
    el('h2', {}, 'Artifacts'), artifactsHolder,
    el('h2', {}, 'Events'),
    table('Events, newest first', ['Event', 'At', 'Job', 'Change', 'Reason'], eventsBody, { id: 'events-table' }));

  let jobs = graph.jobs;
  let names = new Map();
  const rowsById = new Map();
  const jobRow = (job) => {
    const retry = job.state === 'failed' && session.canWrite
      ? el('button', {
        type: 'button', class: 'secondary', 'aria-label': `Retry ${job.name}`,
        onclick: async (event) => {
          event.target.disabled = true;
          try {
            await api(`/v1/jobs/${job.id}/retry`, { method: 'POST' });
            announce(`Retrying ${job.name}`);
            // The run had ended, and its event stream with it.
            followRun();
          } catch (e) { message.replaceChildren(alertBox(e)); }
        },
      }, 'Retry')
      : null;
    return el('tr', { 'data-job': job.id },
      el('td', {}, el('a', { href: `/jobs/${job.id}` }, job.name)),
      el('td', {}, el('a', { href: `/plugins/${encodeURIComponent(job.plugin)}` }, job.plugin)),
      el('td', { 'data-field': 'state' }, badge(job.state)),
      el('td', { class: 'num' }, count(job.attempts)),
      el('td', { class: 'num' }, job.attempts ? duration(job.wall_us / 1000) : '—'),
      el('td', { class: 'num' }, job.attempts ? count(job.fuel) : '—'),
      el('td', { class: 'num' }, job.attempts ? bytes(job.peak_memory_bytes) : '—'),
      el('td', {}, retry));
  };
  const drawJobs = () => {
    const kept = view ? { scale: view.scale } : 'start';
    view = drawGraph(graphHolder, jobs);
    view.zoom(kept);
    names = new Map(jobs.map((job) => [job.id, job.name]));
    rowsById.clear();
    const rows = jobs.map((job) => {
      const row = jobRow(job);
      rowsById.set(job.id, row);
      return row;
    });
    jobsHolder.replaceChildren(table('Jobs', ['Job', 'Plugin', 'State', 'Attempts', 'Wall time', 'Fuel', 'Peak memory', ''], rows, { id: 'jobs-table' }));
  };
  performance.mark('warren:graph-start');
  drawJobs();
  performance.mark('warren:graph-drawn');
  // The frame after the one that shows the graph: what `warren bench ui`
  // reads as the page's paint with its graph.
  requestAnimationFrame(() => requestAnimationFrame(() => performance.mark('warren:graph-painted')));
  const drawArtifacts = async () => {
    const page = await api(`/v1/runs/${id}/artifacts?limit=500`);
    fill(artifactsHolder, artifactsTable(page.artifacts, true),
      page.next ? el('p', { class: 'muted' }, 'The first 500 are shown.') : null);
  };
  await drawArtifacts().catch((e) => artifactsHolder.replaceChildren(alertBox(e)));

  // Usage, spawned jobs, artifacts and the facts come from the API again,
  // at most twice a second; a state change is applied at once.
  const refresh = throttle(async () => {
    const [head, next] = await Promise.all([api(`/v1/runs/${id}?jobs_limit=1`), api(`/v1/runs/${id}/graph`)]);
    factsHolder.replaceChildren(runFacts(head));
    jobs = next.jobs;
    drawJobs();
    await drawArtifacts();
  }, 500);

  // The table shows the newest events; a burst (a long run's history on
  // load) is drawn once.
  const latest = [];
  let drawPending = false;
  const drawEvents = () => {
    drawPending = false;
    eventsBody.replaceChildren(...latest.slice().reverse().map((row) => el('tr', {},
      el('td', {}, row.kind),
      el('td', {}, when(row.at)),
      el('td', {}, row.job_id ? el('a', { href: `/jobs/${row.job_id}` }, names.get(row.job_id) || shortId(row.job_id)) : '—'),
      el('td', {}, row.from_state ? `${row.from_state} → ${row.to_state}` : row.to_state),
      el('td', {}, row.reason || ''))));
  };
  const onEvent = (e) => {
    const row = e.data;
    if (!row || typeof row !== 'object') return;
    latest.push(row);
    if (latest.length > EVENTS_SHOWN) latest.shift();
    if (!drawPending) {
      drawPending = true;
      setTimeout(drawEvents, 100);
    }
    // What the graph was read after is in it already.
    if (Number(e.id) <= graph.last_event_id) return;
    if (row.kind === 'run') {
      setState(row.to_state);
      announce(`Run ${row.to_state.replace(/_/g, ' ')}`);
      refresh();
    } else if (row.job_id && JOB_STATES.has(row.to_state)) {
      const known = view.setState(row.job_id, row.to_state);
      if (known) {
        const cell = rowsById.get(row.job_id)?.querySelector('[data-field="state"]');
        if (cell) cell.replaceChildren(badge(row.to_state));
      }
      // A job the graph does not hold is new (spawned), unless the graph
      // is cut short and holds none of the later ones.
      if (known || !graph.truncated) refresh();
    }
  };
  // The whole history fills the events table; the stream ends after the
  // run does, and a retry starts it again after the last event seen.
  let following = null;
  let lastSeen = 0;
  const followRun = () => {
    if (following) return;
    following = followLive((after) => `/v1/runs/${id}/events?after=${after}`, lastSeen, (e) => {
      lastSeen = Math.max(lastSeen, Number(e.id));
      onEvent(e);
    }).catch((e) => message.replaceChildren(alertBox(e)))
      .finally(() => { following = null; });
  };
  followRun();
}

export async function jobPage(id) {
  // The last event first: a change to the job after it is followed.
  const latest = await api('/v1/runs?limit=1');
  const job = await api(`/v1/jobs/${id}`);
  const logBox = el('pre', { class: 'log', id: 'log', tabindex: 0, 'aria-label': 'Log', 'aria-live': 'off' });
  const stateCell = el('span', { id: 'job-state' }, badge(job.state));
  const message = el('div', {});
  const actions = el('div', { class: 'row' });
  if (job.state === 'failed' && session.canWrite) {
    actions.append(el('button', {
      type: 'button', id: 'retry-job',
      onclick: async (event) => {
        event.target.disabled = true;
        try { await api(`/v1/jobs/${id}/retry`, { method: 'POST' }); location.reload(); } catch (e) { message.replaceChildren(alertBox(e)); }
      },
    }, 'Retry'));
  }
  const attempts = job.attempts.map((a) => el('tr', {},
    el('td', { class: 'num' }, a.number),
    el('td', {}, badge(a.state)),
    el('td', {}, when(a.started_at)),
    el('td', { class: 'num' }, a.wall_time_us === null ? '—' : duration(a.wall_time_us / 1000)),
    el('td', { class: 'num' }, count(a.fuel_consumed)),
    el('td', { class: 'num' }, bytes(a.peak_memory_bytes)),
    el('td', { class: 'num' }, a.tokens_in || a.tokens_out ? `${count(a.tokens_in)} / ${count(a.tokens_out)}` : '—'),
    el('td', {}, a.error ? el('pre', {}, JSON.stringify(a.error, null, 2)) : '')));
  const reviews = job.reviews.map((r) => el('tr', {},
    el('td', {}, r.decision), el('td', {}, r.by || '—'), el('td', {}, when(r.at)),
    el('td', {}, r.comments || ''), el('td', {}, r.data === null || r.data === undefined ? '' : jsonBlock(r.data, 'Review data'))));
  show(
    el('h1', {}, 'Job ', job.name, ' ', stateCell),
    facts([
      ['Run', el('a', { href: `/runs/${job.run_id}`, class: 'mono' }, job.run_id)],
      ['Plugin', el('a', { href: `/plugins/${encodeURIComponent(job.plugin)}` }, job.plugin)],
      ['Spawned by', job.parent_job_id ? el('a', { href: `/jobs/${job.parent_job_id}` }, job.parent_job_id) : null],
      ['Why', job.spawn_reason],
      ['Waiting since', job.waiting_since ? when(job.waiting_since) : null],
    ]),
    actions, message,
    decisionForms(job, () => location.reload()),
    el('h2', {}, 'Input'), storedJson(job.input, job.input_bytes, job.input_url, 'input'),
    el('h2', {}, 'Output'), storedJson(job.output, job.output_bytes, job.output_url, 'output'),
    job.error ? [el('h2', {}, 'Error'), jsonBlock(job.error, 'Error')] : null,
    el('h2', {}, 'Attempts'),
    attempts.length ? table('Attempts', ['#', 'State', 'Started', 'Wall time', 'Fuel', 'Peak memory', 'Tokens in / out', 'Error'], attempts, { id: 'attempts-table' })
      : el('p', { class: 'muted' }, 'No attempt yet.'),
    el('h2', {}, 'Log'), logBox,
    el('h2', {}, 'Artifacts'), artifactsTable(job.artifacts, false),
    reviews.length ? [el('h2', {}, 'Reviews'), table('Reviews', ['Decision', 'By', 'At', 'Comments', 'Data'], reviews)] : null);
  await drawLogs(id, job.attempts_total, logBox);
  if (job.state === 'running' || job.state === 'ready' || job.state === 'pending') {
    // A running attempt's log is stored when it ends: until then the
    // stream gives its latest lines, then the new ones.
    logBox.append('— the running attempt, as it writes —\n');
    follow(`/v1/jobs/${id}/logs?follow=true`, (e) => {
      if (e.event === 'line') {
        logBox.append(logLine(e.data));
        logBox.scrollTop = logBox.scrollHeight;
      } else if (e.event === 'lagged') {
        logBox.append(`… ${e.data.skipped} lines skipped\n`);
      } else if (e.event === 'end') {
        const state = e.data.state || 'ended';
        stateCell.replaceChildren(badge(state));
        announce(`Job ${state.replace(/_/g, ' ')}`);
        // The stored log and the output are complete now.
        setTimeout(() => location.reload(), 300);
      }
    }, undefined, () => { logBox.dataset.live = 'on'; }).catch((e) => message.replaceChildren(alertBox(e)));
  } else if (job.state === 'waiting_approval' || job.state === 'needs_input') {
    // Another person may decide, or the run be cancelled, meanwhile.
    followLive((after) => `/v1/runs/${job.run_id}/events?after=${after}`, latest.last_event_id, (e) => {
      const row = e.data || {};
      if (row.job_id === id && row.to_state !== job.state) location.reload();
    }).catch((e) => message.replaceChildren(alertBox(e)));
  }
}

function logLine(line) {
  // at_ms counts from the attempt's start.
  const at = `+${(line.at_ms / 1000).toFixed(3)}s`;
  return `${at} ${line.source}${line.level ? ' ' + line.level : ''} ${line.message}\n`;
}

// The logs of the job's latest 20 attempts.
async function drawLogs(id, attempts, logBox) {
  const after = Math.max(0, attempts - 20);
  const page = await api(`/v1/jobs/${id}/logs?limit=20${after ? `&after=${after}` : ''}`);
  if (after) logBox.append(`(${after} earlier attempts not shown)\n`);
  for (const attempt of page.attempts || []) {
    logBox.append(`— attempt ${attempt.attempt} (${attempt.state}) —\n`);
    if (attempt.log === null || attempt.log === undefined) {
      if (attempt.log_url) logBox.append(`(log of ${bytes(attempt.log_bytes)}: ${attempt.log_url})\n`);
      continue;
    }
    for (const line of attempt.log.lines || []) logBox.append(logLine(line));
  }
}

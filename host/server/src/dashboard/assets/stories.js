// Stories: their runs, the status view, documents (read, add a version)
// and memory.
import { session, api, el, fill, shortId, show, announce, alertBox, badge, table, when, bytes } from './ui.js';

export async function storiesPage() {
  const page = await api('/v1/stories?limit=200');
  const rows = page.stories.map((s) => el('tr', {},
    el('td', {}, el('a', { href: `/stories/${encodeURIComponent(s.story_id)}` }, s.story_id)),
    el('td', {}, el('a', { href: `/runs/${s.latest_run.id}`, class: 'mono' }, shortId(s.latest_run.id)), ' ', badge(s.latest_run.state)),
    el('td', { class: 'num' }, s.runs),
    el('td', {}, when(s.updated_at))));
  show(el('h1', {}, 'Stories'),
    rows.length ? table('Stories', ['Story', 'Latest run', 'Runs', 'Updated'], rows, { id: 'stories-table' })
      : el('p', { class: 'muted' }, 'No story has a run yet.'),
    page.next ? el('p', { class: 'muted' }, 'The first 200 stories are shown.') : null);
}

export async function storyPage(story) {
  const enc = encodeURIComponent(story);
  const statusHolder = el('div', {});
  const docsHolder = el('div', { id: 'documents' });
  const viewer = el('div', { id: 'document-view' });
  const memoryHolder = el('div', {});
  show(el('h1', {}, 'Story ', story),
    el('p', {}, el('a', { href: `/?story_id=${enc}` }, 'Its runs')),
    el('h2', {}, 'Status'), statusHolder,
    el('h2', {}, 'Documents'), docsHolder, viewer,
    session.canWrite ? newDocumentForm(story, () => drawDocs()) : null,
    el('h2', {}, 'Memory'), memoryHolder);
  try {
    const status = await api(`/v1/stories/${enc}/status`);
    const rows = Object.entries(status.agent_statuses).map(([name, s]) => el('tr', {},
      el('td', {}, el('a', { href: `/jobs/${s.job_id}` }, name)),
      el('td', {}, badge(s.status)),
      el('td', {}, when(s.last_execution)),
      el('td', {}, s.output_summary || '')));
    statusHolder.replaceChildren(table('Latest status of each agent', ['Job', 'Status', 'Last ran', 'Summary'], rows));
  } catch (e) {
    statusHolder.replaceChildren(e.status === 404 ? el('p', { class: 'muted' }, 'No run yet.') : alertBox(e));
  }
  const drawDocs = async () => {
    const page = await api(`/v1/stories/${enc}/documents?limit=500`);
    const rows = page.documents.map((d) => el('tr', {},
      el('td', {}, el('button', {
        type: 'button', class: 'secondary', 'aria-label': `View ${d.name}`,
        onclick: () => viewDocument(story, d.name, viewer),
      }, d.name)),
      el('td', { class: 'num' }, d.version),
      el('td', { class: 'num' }, bytes(d.size)),
      el('td', {}, d.media_type),
      el('td', {}, writer(d)),
      el('td', {}, when(d.created_at))));
    fill(docsHolder, rows.length
      ? table('Documents', ['Name', 'Version', 'Size', 'Type', 'Written by', 'At'], rows)
      : el('p', { class: 'muted' }, 'No documents.'),
    page.next ? el('p', { class: 'muted' }, 'The first 500 documents are shown.') : null);
  };
  await drawDocs().catch((e) => docsHolder.replaceChildren(alertBox(e)));
  try {
    const memory = await api(`/v1/stories/${enc}/memory?limit=200`);
    const rows = memory.entries.map((m) => el('tr', {},
      el('td', { class: 'mono' }, m.key),
      el('td', {}, el('pre', {}, m.value ?? `(binary) ${m.value_hex}`))));
    fill(memoryHolder, rows.length ? table('Memory', ['Key', 'Value'], rows) : el('p', { class: 'muted' }, 'Nothing remembered.'),
      memory.next ? el('p', { class: 'muted' }, 'The first 200 keys are shown.') : null);
  } catch (e) { memoryHolder.replaceChildren(alertBox(e)); }
}

function writer(d) {
  if (d.writer.kind === 'job') return el('a', { href: `/jobs/${d.writer.job_id}` }, 'a job');
  return d.writer.name || 'a person';
}

async function viewDocument(story, name, viewer) {
  try {
    const response = await api(`/v1/stories/${encodeURIComponent(story)}/documents/${encodeURIComponent(name)}`, { raw: true });
    const text = await response.text();
    let shown = text;
    if ((response.headers.get('content-type') || '').includes('json')) {
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* as stored */ }
    }
    viewer.replaceChildren(el('h3', {}, name, ' (version ', response.headers.get('warren-document-version') || '?', ')'),
      el('pre', { tabindex: 0, 'aria-label': `Document ${name}` }, shown));
  } catch (e) { viewer.replaceChildren(alertBox(e)); }
}

function newDocumentForm(story, done) {
  const name = el('input', { id: 'doc-name', name: 'name', required: true, maxlength: 128 });
  const type = el('select', { id: 'doc-type', name: 'type' },
    el('option', { value: 'text/plain' }, 'text'), el('option', { value: 'application/json' }, 'JSON'));
  const content = el('textarea', { id: 'doc-content', name: 'content', rows: 6 });
  const status = el('div', {});
  return el('form', {
    class: 'stack', id: 'new-document', 'aria-label': 'Write a document',
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        await api(`/v1/stories/${encodeURIComponent(story)}/documents/${encodeURIComponent(name.value.trim())}`, {
          method: 'PUT', body: content.value, headers: { 'content-type': type.value },
        });
        announce(`${name.value} written`);
        status.replaceChildren(el('p', { class: 'note' }, `Wrote ${name.value}.`));
        await done();
      } catch (e) { status.replaceChildren(alertBox(e)); }
    },
  },
  el('h3', {}, 'Write a document (a new version if it exists)'),
  el('div', { class: 'row' }, el('label', { for: 'doc-name' }, 'Name', name), el('label', { for: 'doc-type' }, 'Type', type)),
  el('label', { for: 'doc-content' }, 'Content', content),
  el('div', {}, el('button', { type: 'submit' }, 'Write')),
  status);
}

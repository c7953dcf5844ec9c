// Plugins (versions, grants, usage, describe() of agents, quarantined
// files, approval, upload) and templates (view, start a run from a form
// built from the template's input schema).
import { session, api, el, show, announce, alertBox, badge, table, facts, when, bytes, count, duration, jsonBlock } from './ui.js';

export async function pluginsPage() {
  const page = await api('/v1/plugins?limit=500');
  const rows = page.plugins.map((p) => el('tr', { 'data-plugin': p.name },
    el('td', {}, el('a', { href: `/plugins/${encodeURIComponent(p.name)}` }, p.name)),
    el('td', {}, p.kind),
    el('td', {}, badge(p.status)),
    el('td', {}, p.label || ''),
    el('td', { class: 'num' }, p.versions),
    el('td', { class: 'num' }, p.pending_approval ? badge('pending_approval') : '0')));
  const quarantined = page.quarantined.map((q) => el('tr', {},
    el('td', { class: 'mono' }, q.file),
    el('td', { class: 'reason' }, q.reason),
    el('td', {}, when(q.at))));
  show(el('h1', {}, 'Plugins'),
    rows.length ? table('Plugins', ['Name', 'Kind', 'Status', 'Label', 'Versions', 'Pending approval'], rows, { id: 'plugins-table' })
      : el('p', { class: 'muted' }, 'No plugins.'),
    el('h2', {}, 'Quarantined files'),
    quarantined.length ? table('Quarantined files and why', ['File', 'Reason', 'Since'], quarantined, { id: 'quarantined-table' })
      : el('p', { class: 'muted' }, 'None.'),
    page.next ? el('p', { class: 'muted' }, 'The first 500 plugins are shown.') : null,
    page.quarantined_total > page.quarantined.length ? el('p', { class: 'muted' }, `${page.quarantined_total} in all.`) : null,
    session.isAdmin ? uploadForm() : null);
}

function uploadForm() {
  const file = el('input', { id: 'upload-file', type: 'file', accept: '.wasm,.toml', required: true });
  const name = el('input', { id: 'upload-name', name: 'name', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9_-]{0,63}' });
  const status = el('div', {});
  return el('form', {
    class: 'stack', id: 'upload', 'aria-label': 'Upload a plugin',
    onsubmit: async (event) => {
      event.preventDefault();
      const chosen = file.files[0];
      if (!chosen) return;
      const manifest = chosen.name.endsWith('.toml');
      try {
        const answer = await api(`/v1/plugins?name=${encodeURIComponent(name.value)}`, {
          method: 'POST', body: chosen,
          headers: { 'content-type': manifest ? 'application/toml' : 'application/wasm' },
        });
        status.replaceChildren(el('p', { class: 'note' }, `Uploaded: ${JSON.stringify(answer)}`));
        announce('Uploaded');
      } catch (e) { status.replaceChildren(alertBox(e)); }
    },
  },
  el('h2', {}, 'Upload'),
  el('p', { class: 'muted' }, 'A component (.wasm), or its manifest (.toml) first.'),
  el('label', { for: 'upload-name' }, 'Plugin name', name),
  el('label', { for: 'upload-file' }, 'File', file),
  el('div', {}, el('button', { type: 'submit' }, 'Upload')),
  status);
}

export async function pluginPage(name) {
  const plugin = await api(`/v1/plugins/${encodeURIComponent(name)}`);
  const message = el('div', {});
  const versions = plugin.versions.map((v) => {
    let action = null;
    if (v.state === 'pending_approval') {
      action = session.isAdmin
        ? el('button', {
          type: 'button', class: 'approve-version', 'data-digest': v.digest,
          onclick: async (event) => {
            event.target.disabled = true;
            try {
              await api(`/v1/plugins/${encodeURIComponent(name)}/versions/${v.digest}/approve`, { method: 'POST' });
              location.reload();
            } catch (e) { message.replaceChildren(alertBox(e)); event.target.disabled = false; }
          },
        }, 'Approve')
        : el('span', { class: 'muted needs-admin' }, 'Approving needs an admin token');
    }
    return el('section', { class: 'card version', 'data-digest': v.digest, 'aria-label': `Version ${v.digest.slice(0, 12)}` },
      el('h2', {}, el('span', { class: 'mono' }, v.digest.slice(0, 12)), ' ', badge(v.state), ' ', action),
      facts([
        ['Kind', v.kind],
        ['Label', v.label],
        ['Description', v.description],
        ['Note', v.note],
        ['Size', bytes(v.size)],
        ['First seen', when(v.first_seen_at)],
        ['Activated', v.activated_at ? when(v.activated_at) : null],
        ['Usage', `${count(v.usage.attempts)} attempts (${count(v.usage.succeeded)} succeeded, ${count(v.usage.failed)} failed) · ${count(v.usage.fuel_consumed)} fuel · ${duration(v.usage.wall_time_us / 1000)} · peak ${bytes(v.usage.peak_memory_bytes)}`],
      ]),
      v.agent ? [el('h3', {}, 'Agent (describe())'), facts([
        ['Name', v.agent.name], ['Version', v.agent.version], ['Description', v.agent.description],
        ['Requires', (v.agent.requires || []).join(', ') || 'nothing'],
        ['Produces', (v.agent.produces || []).join(', ') || 'nothing'],
      ])] : null,
      el('details', {}, el('summary', {}, 'Grants'), jsonBlock(v.grants, 'Grants')),
      v.imports ? el('details', {}, el('summary', {}, 'Imports and exports'), jsonBlock({ imports: v.imports, exports: v.exports }, 'Imports and exports')) : null);
  });
  show(el('h1', {}, 'Plugin ', name, ' ', badge(plugin.status)),
    facts([
      ['Active version', plugin.active ? el('span', { class: 'mono' }, plugin.active) : 'none'],
      ['Breaker', plugin.breaker ? JSON.stringify(plugin.breaker) : null],
    ]),
    message,
    el('p', {}, el('a', { href: '/plugins' }, 'All plugins')),
    versions,
    plugin.versions_total > plugin.versions.length ? el('p', { class: 'muted' }, `The latest ${plugin.versions.length} of ${plugin.versions_total} versions are shown.`) : null);
}

export async function templatesPage() {
  const page = await api('/v1/templates?limit=500');
  const rows = page.templates.map((t) => el('tr', {},
    el('td', {}, el('a', { href: `/templates/${encodeURIComponent(t.name)}` }, t.name)),
    el('td', { class: 'num' }, t.latest_version),
    el('td', {}, when(t.updated_at))));
  show(el('h1', {}, 'Templates'),
    rows.length ? table('Templates', ['Name', 'Latest version', 'Updated'], rows, { id: 'templates-table' })
      : el('p', { class: 'muted' }, 'No templates.'),
    page.next ? el('p', { class: 'muted' }, 'The first 500 templates are shown.') : null);
}

export async function templatePage(name) {
  const template = await api(`/v1/templates/${encodeURIComponent(name)}`);
  const schema = template.pipeline && template.pipeline.input_schema;
  show(el('h1', {}, 'Template ', name, ' ', el('span', { class: 'muted' }, `v${template.version}`)),
    el('p', {}, el('a', { href: `/?template=${encodeURIComponent(name)}` }, 'Its runs')),
    session.canWrite ? startForm(name, schema) : el('p', { class: 'muted' }, 'Starting a run needs a client or admin token.'),
    el('h2', {}, 'Pipeline'),
    jsonBlock(template.pipeline, 'Pipeline'));
}

// Fields for the top level of an object schema's simple properties; any
// other schema (or none) is one JSON field.
function inputFields(schema) {
  const props = schema && schema.type === 'object' && schema.properties;
  const simple = props && Object.values(props).every((p) => ['string', 'number', 'integer', 'boolean'].includes(p.type) || Array.isArray(p.enum));
  if (!simple) {
    const area = el('textarea', { id: 'run-input', name: 'input', rows: 6 }, '{}');
    return {
      nodes: [el('label', { for: 'run-input' }, 'Input (JSON)', area),
        schema ? el('details', {}, el('summary', {}, 'Input schema'), jsonBlock(schema, 'Input schema')) : null],
      value: () => JSON.parse(area.value),
    };
  }
  const required = new Set(schema.required || []);
  const fields = Object.entries(props).map(([key, prop]) => {
    const id = `field-${key}`;
    let input;
    if (Array.isArray(prop.enum)) {
      input = el('select', { id, name: key }, prop.enum.map((v) => el('option', { value: JSON.stringify(v) }, String(v))));
    } else if (prop.type === 'boolean') {
      input = el('input', { id, name: key, type: 'checkbox' });
    } else if (prop.type === 'string' && (prop.maxLength === undefined || prop.maxLength > 200)) {
      input = el('textarea', { id, name: key, rows: 3, required: required.has(key) });
    } else {
      input = el('input', {
        id, name: key, type: prop.type === 'string' ? 'text' : 'number',
        step: prop.type === 'integer' ? 1 : 'any', required: required.has(key),
      });
    }
    const label = el('label', { for: id, class: prop.type === 'boolean' ? 'inline' : null },
      `${prop.title || key}${required.has(key) ? ' (required)' : ''}`, input,
      prop.description ? el('span', { class: 'muted' }, prop.description) : null);
    return { key, prop, input, label };
  });
  return {
    nodes: fields.map((f) => f.label),
    value: () => {
      const out = {};
      for (const { key, prop, input } of fields) {
        if (Array.isArray(prop.enum)) out[key] = JSON.parse(input.value);
        else if (prop.type === 'boolean') out[key] = input.checked;
        else if (input.value === '') continue;
        else if (prop.type === 'string') out[key] = input.value;
        else out[key] = Number(input.value);
      }
      return out;
    },
  };
}

function startForm(name, schema) {
  const fields = inputFields(schema);
  const story = el('input', { id: 'run-story', name: 'story_id', pattern: '[A-Za-z0-9._:-]{1,128}' });
  const status = el('div', {});
  return el('form', {
    class: 'stack', id: 'start-run', 'aria-label': `Start a run of ${name}`,
    onsubmit: async (event) => {
      event.preventDefault();
      let input;
      try { input = fields.value(); } catch (e) {
        status.replaceChildren(el('div', { class: 'alert', role: 'alert' }, `Not JSON: ${e.message}`));
        return;
      }
      const body = { template: name, input };
      if (story.value.trim()) body.story_id = story.value.trim();
      try {
        const run = await api('/v1/runs', { method: 'POST', json: body });
        location.assign(`/runs/${run.id}`);
      } catch (e) { status.replaceChildren(alertBox(e)); }
    },
  },
  el('h2', {}, 'Start a run'),
  ...fields.nodes,
  el('label', { for: 'run-story' }, 'Story (optional)', story),
  el('div', {}, el('button', { type: 'submit' }, 'Start')),
  status);
}

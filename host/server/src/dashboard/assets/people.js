// People in a run: what waits for a decision or for input, and the forms
// that give them (on this page and on a job's page).
import { api, followLive, throttle, el, shortId, show, announce, alertBox, badge, when } from './ui.js';

// The approve/reject form of a job in `waiting_approval`, or the input
// form of one in `needs_input`; nothing for other jobs. A decision names
// the attempt whose output was shown: one reaching a later attempt (a
// rework nobody has seen) is refused.
export function decisionForms(job, done) {
  const id = job.id || job.job_id;
  const name = job.name || job.job;
  const attempt = job.attempts_total ?? job.attempts;
  const status = el('div', {});
  if (job.state === 'waiting_approval') {
    const comments = el('textarea', { id: `comments-${id}`, name: 'comments', rows: 2 });
    const decide = (decision) => async (event) => {
      event.preventDefault();
      for (const b of form.querySelectorAll('button')) b.disabled = true;
      try {
        const body = { decision };
        if (comments.value.trim()) body.comments = comments.value.trim();
        if (attempt) body.attempt = attempt;
        await api(`/v1/jobs/${id}/decision`, { method: 'POST', json: body });
        announce(`${name}: ${decision === 'approve' ? 'approved' : 'rejected'}`);
        done();
      } catch (e) {
        status.replaceChildren(alertBox(e));
        for (const b of form.querySelectorAll('button')) b.disabled = false;
      }
    };
    const form = el('form', { class: 'stack decision', 'aria-label': `Decide on ${name}`, 'data-job': id },
      el('label', { for: `comments-${id}` }, 'Comments (sent with either decision)', comments),
      el('div', { class: 'row' },
        el('button', { type: 'button', class: 'approve', onclick: decide('approve') }, 'Approve'),
        el('button', { type: 'button', class: 'danger reject', onclick: decide('reject') }, 'Reject')),
      status);
    return form;
  }
  if (job.state === 'needs_input') {
    const docs = job.pending_docs && job.pending_docs.length ? job.pending_docs : null;
    const asked = docs ? Object.fromEntries(docs.map((name) => [name, ''])) : {};
    const data = el('textarea', { id: `input-${id}`, name: 'data', rows: 4 }, JSON.stringify(asked, null, 2));
    const form = el('form', {
      class: 'stack give-input', 'aria-label': `Give input to ${name}`, 'data-job': id,
      onsubmit: async (event) => {
        event.preventDefault();
        let parsed;
        try { parsed = JSON.parse(data.value); } catch (e) {
          status.replaceChildren(el('div', { class: 'alert', role: 'alert' }, `Not JSON: ${e.message}`));
          return;
        }
        try {
          await api(`/v1/jobs/${id}/input`, { method: 'POST', json: { data: parsed } });
          announce(`${name}: input given`);
          done();
        } catch (e) { status.replaceChildren(alertBox(e)); }
      },
    },
    docs ? el('p', { class: 'note' }, 'It asks for ', docs.join(', '),
      ': give them here (a JSON object with those fields), or write them as documents of its story and it goes on by itself.') : null,
    el('label', { for: `input-${id}` }, 'Input (JSON)', data),
    el('div', {}, el('button', { type: 'submit' }, 'Give input')),
    status);
    return form;
  }
  return null;
}

export async function waitingPage() {
  const holder = el('div', { id: 'waiting' });
  show(el('h1', {}, 'Waiting for people'),
    el('p', { class: 'muted' }, 'Jobs waiting for a decision or for input, longest waiting first.'),
    holder);
  // Cards by job, with what they were drawn for: a redraw keeps the card
  // (and what someone is typing in it) while its job waits the same way.
  const cards = new Map();
  const draw = async () => {
    const page = await api('/v1/pending?limit=100');
    const current = new Set(page.jobs.map((job) => `${job.job_id}/${job.state}/${job.attempts}`));
    for (const [key, card] of cards) {
      if (!current.has(key)) {
        card.remove();
        cards.delete(key);
      }
    }
    for (const job of page.jobs) {
      const key = `${job.job_id}/${job.state}/${job.attempts}`;
      if (cards.has(key)) continue;
      const card = el('section', { class: 'card', 'data-job': job.job_id, 'aria-label': job.job },
        el('h2', {}, el('a', { href: `/jobs/${job.job_id}` }, job.job), ' ', badge(job.state)),
        el('p', { class: 'muted' }, 'Run ', el('a', { href: `/runs/${job.run_id}`, class: 'mono' }, shortId(job.run_id)),
          job.template ? ` of ${job.template}` : '', job.story_id ? ` · story ${job.story_id}` : '',
          ` · attempt ${job.attempts} · waiting since `, when(job.since)),
        job.output_summary ? el('pre', { 'aria-label': 'Output' }, job.output_summary) : null,
        decisionForms(job, () => redraw()));
      cards.set(key, card);
      holder.append(card);
    }
    for (const note of holder.querySelectorAll('.list-note')) note.remove();
    if (!page.jobs.length) holder.append(el('p', { class: 'muted list-note', id: 'nothing-waiting' }, 'Nothing waits.'));
    else if (page.next) holder.append(el('p', { class: 'muted list-note' }, 'The 100 waiting longest are shown.'));
  };
  // The last event first: a change after it is followed.
  const latest = await api('/v1/runs?limit=1');
  await draw();
  const redraw = throttle(draw, 300);
  followLive((after) => `/v1/events?after=${after}`, latest.last_event_id, (e) => {
    const row = e.data || {};
    const people = ['waiting_approval', 'needs_input'];
    if (people.includes(row.to_state) || people.includes(row.from_state)) redraw();
  }, { forever: true });
}

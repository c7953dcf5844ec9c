// The dashboard's entry: finds out who the token says the person is
// (signing in when the server asks for a token), then draws the page the
// path names. Every page is a full load: nothing lingers between pages.
import { session, api, ApiError, el, show, alertBox } from './ui.js';
import { runsPage, runPage, jobPage } from './runs.js';
import { waitingPage } from './people.js';
import { storiesPage, storyPage } from './stories.js';
import { pluginsPage, pluginPage, templatesPage, templatePage } from './catalogue.js';

const ROUTES = [
  [/^\/$/, 'runs', () => runsPage()],
  [/^\/runs\/([^/]+)$/, 'runs', (m) => runPage(m[1])],
  [/^\/jobs\/([^/]+)$/, 'runs', (m) => jobPage(m[1])],
  [/^\/waiting$/, 'waiting', () => waitingPage()],
  [/^\/stories$/, 'stories', () => storiesPage()],
  [/^\/stories\/([^/]+)$/, 'stories', (m) => storyPage(decodeURIComponent(m[1]))],
  [/^\/plugins$/, 'plugins', () => pluginsPage()],
  [/^\/plugins\/([^/]+)$/, 'plugins', (m) => pluginPage(decodeURIComponent(m[1]))],
  [/^\/templates$/, 'templates', () => templatesPage()],
  [/^\/templates\/([^/]+)$/, 'templates', (m) => templatePage(decodeURIComponent(m[1]))],
];

function signInForm(message) {
  const token = el('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true });
  const status = el('div', {});
  const form = el('form', {
    class: 'stack', id: 'signin',
    onsubmit: async (event) => {
      event.preventDefault();
      session.token = token.value.trim();
      try {
        await api('/v1/whoami');
        location.reload();
      } catch (error) {
        session.token = null;
        status.replaceChildren(alertBox(error));
        token.focus();
      }
    },
  },
  el('label', { for: 'token' }, 'API token', token),
  el('p', { class: 'muted' }, 'Kept in this tab only (session storage) and sent as a bearer header.'),
  el('div', {}, el('button', { type: 'submit' }, 'Sign in')),
  status);
  show(el('h1', {}, 'Sign in'), message ? el('p', {}, message) : null, form);
  token.focus();
}

function drawSession() {
  const holder = document.getElementById('session');
  const who = session.who;
  if (!who.tokens) {
    holder.replaceChildren(el('span', { class: 'muted' }, 'Open server (no tokens)'));
    return;
  }
  holder.replaceChildren(
    el('span', { id: 'whoami' }, `${who.name} · ${who.role}`),
    el('button', {
      class: 'secondary', type: 'button', id: 'signout',
      onclick: () => { session.token = null; location.reload(); },
    }, 'Sign out'));
}

async function start() {
  const path = location.pathname;
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  for (const link of document.querySelectorAll('nav a[data-section]')) {
    if (route && link.dataset.section === route[1]) link.setAttribute('aria-current', 'page');
  }
  try {
    session.who = await api('/v1/whoami');
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signInForm(session.token ? 'That token is not accepted.' : 'This server asks for a token.');
      if (session.token) session.token = null;
      return;
    }
    show(alertBox(error));
    return;
  }
  drawSession();
  if (!route) {
    show(el('h1', {}, 'Not found'), el('p', {}, el('a', { href: '/' }, 'Back to runs')));
    return;
  }
  try {
    await route[2](path.match(route[0]));
  } catch (error) {
    show(alertBox(error));
  }
}

start();

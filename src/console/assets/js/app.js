// The console's entry: sign-in from a demo link's fragment, the header (pages for the
// signed-in role, connection state, language), and the router (`#/page/arg`).

import { $, fill, h } from './dom.js';
import { getLang, setLang, t } from './i18n.js';
import { token, signOut, takeTokenFromFragment } from './session.js';
import { get } from './api.js';
import { sync } from './clock.js';
import { live } from './live.js';
// Each page is loaded when first shown: a dealer's lot page does not download the
// operator's or the seller's code.
const pages = {
  '': () => import('./pages/home.js'),
  board: () => import('./pages/board.js'),
  lot: () => import('./pages/lot.js'),
  account: () => import('./pages/account.js'),
  seller: () => import('./pages/seller.js'),
  catalogue: () => import('./pages/catalogue.js'),
  operator: () => import('./pages/operator.js'),
  market: () => import('./pages/market.js'),
};
const navFor = {
  dealer: ['board', 'market', 'account', 'catalogue'],
  seller: ['seller', 'catalogue'],
  admin: ['operator', 'board', 'market', 'catalogue'],
  service: ['catalogue'],
  none: ['catalogue'],
};

export const app = { me: null, demo: false, signedIn: null };
let current = null; // the page shown: its cleanup function

async function loadMe() {
  if (!token()) { app.me = null; return; }
  try {
    app.me = await get('/v1/me');
  } catch (e) {
    app.me = null;
    if (e.status === 401) signOut();
  }
}

function renderChrome() {
  document.documentElement.lang = getLang();
  $('#lang').value = getLang();
  $('#lang-label').textContent = t('lang.label');
  $('.skip').textContent = t('skip');
  const role = app.me ? app.me.role : 'none';
  const here = location.hash.replace(/^#\/?/, '').split('/')[0];
  fill($('#nav'), navFor[role].map((p) => h('a', {
    href: `#/${p}`, 'aria-current': here === p ? 'page' : null, text: t(`nav.${p}`),
  })));
  const out = $('#signout');
  out.hidden = !app.me;
  out.textContent = t('signout');
  const demo = $('#demo-banner');
  demo.hidden = !app.demo;
  demo.textContent = t('demo.banner');
  renderConn();
}

let staleTimer = null;
function renderConn() {
  const c = $('#conn');
  const s = live.state;
  c.className = `conn ${s}`;
  c.textContent = s === 'idle' ? '' : t(`conn.${s === 'live' ? 'live' : s === 'connecting' ? 'connecting' : 'down'}`);
  const banner = $('#stale-banner');
  clearInterval(staleTimer);
  const show = () => {
    const secs = Math.max(0, Math.ceil((live.retryAt - Date.now()) / 1000));
    banner.textContent = t('stale.banner', { s: secs });
  };
  banner.hidden = s !== 'down' && s !== 'connecting' || live.subs.size === 0 && s === 'connecting';
  document.body.classList.toggle('stale', s === 'down' || (s === 'connecting' && live.attempt > 0));
  if (s === 'down') { show(); staleTimer = setInterval(show, 500); }
  if (s === 'connecting' && live.attempt > 0) banner.textContent = t('conn.connecting');
}

/** A complaint just filed against this dealer (pushed over the WebSocket): said at once,
 * on whatever page the dealer is, with the way to answer it. */
function announceComplaint(c) {
  const banner = $('#complaint-banner');
  const close = h('button.dismiss', { type: 'button', text: t('complaint.dismiss'), onclick: () => { banner.hidden = true; } });
  banner.replaceChildren(t('complaint.new', { id: c.id, text: c.text }), ' ',
    h('a', { href: '#/account', text: t('complaint.answer'), onclick: () => { banner.hidden = true; } }), ' ', close);
  banner.hidden = false;
}

// Each navigation gets a number; one overtaken by a later one (a page module still
// loading, a page still reading) stops, and its page draws into a box no longer shown.
let routeSeq = 0;

async function route() {
  const mine = ++routeSeq;
  if (takeTokenFromFragment()) await loadMe();
  const [name, ...args] = location.hash.replace(/^#\/?/, '').split('/');
  const page = await (pages[name] || pages[''])();
  if (mine !== routeSeq) return;
  if (current) { try { current(); } catch (_) { /* page gone */ } current = null; }
  renderChrome();
  const box = h('div.page');
  fill($('#view'), box);
  const cleanup = (await page.show(box, args.map(decodeURIComponent), app)) || null;
  if (mine !== routeSeq) { if (cleanup) cleanup(); return; }
  current = cleanup;
}

async function start() {
  app.demo = document.querySelector('meta[name="gavel-demo"]')?.content === '1';
  takeTokenFromFragment();
  setLang(getLang());
  $('#lang').addEventListener('change', (e) => { setLang(e.target.value); route(); });
  $('#signout').addEventListener('click', () => {
    signOut(); live.stop(); app.me = null; location.hash = '#/';
    route();
  });
  live.on((ev) => {
    if (ev.type === 'state') renderConn();
    if (ev.type === 'reconnected') sync(3);
    if (ev.type === 'message' && ev.msg.type === 'complaint' && ev.msg.complaint.status === 'open') {
      announceComplaint(ev.msg.complaint);
    }
  });
  window.addEventListener('hashchange', route);
  await Promise.all([loadMe(), sync()]);
  if (app.me) live.start();
  await route();
}

/** After signing in on the home page. */
export async function signedIn() {
  await loadMe();
  if (app.me) live.start();
  return app.me;
}

app.signedIn = signedIn;
start();

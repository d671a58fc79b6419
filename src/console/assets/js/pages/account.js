// The dealer's own account: money (buying power left), standing (score, warnings, refused
// retail attempts), the cars it holds with their retail and return state and their history
// (a car sold out of the alliance shows where it went), the way to dispose of a car out of
// the alliance, and complaints with their due time (re-read when one is pushed).

import { h } from '../dom.js';
import { getLang, t } from '../i18n.js';
import { get, post, describe } from '../api.js';
import { formatFen } from '../money.js';
import { formatLeft, formatTime, serverNow } from '../clock.js';
import { live } from '../live.js';

export function standingLine(s) {
  const open = s.warnings.filter((w) => !w.corrected).length;
  return t('cat.standing', {
    score: s.score === null ? t('acct.score_none') : s.score.toFixed(1),
    ratings: s.ratings, warnings: open, status: t(`dealer.${s.status}`),
  });
}

export function warningList(ws) {
  if (!ws.length) return h('p', t('acct.no_warnings'));
  return h('ul.warnings', ws.map((w) => h('li', { class: w.corrected ? 'corrected' : 'open' },
    `${w.id}: ${t(`cause.${w.cause}`)} (${formatTime(w.issued_at, getLang())}) — `,
    w.corrected ? t('acct.corrected') : t('acct.uncorrected'))));
}

export function dueCell(c) {
  const cell = h('span.due', { 'data-due': c.due_at, 'data-status': c.status });
  const paint = () => {
    if (c.status === 'resolved') { cell.textContent = t('op.resolved'); return; }
    const left = c.due_at - serverNow();
    const over = c.status === 'overdue' || left <= 0;
    cell.classList.toggle('overdue', over);
    cell.textContent = over ? t('acct.overdue') : t('acct.due', { left: formatLeft(left) });
  };
  paint();
  cell.paint = paint;
  return cell;
}

/** One car in the dealer's inventory: state, history, and (while the dealer holds it)
 * the form to sell it out of the alliance. */
function itemRow(i) {
  const li = h('li', { 'data-item': i.id },
    h('strong', `${i.id} · ${i.vin}`), ' ', formatFen(i.price), ' · ',
    t(i.certified ? 'item.certified' : 'item.not_certified'),
    i.certified ? '' : ` (${(i.reasons ?? []).map((r) => t(`reason_item.${r}`)).join(', ')})`,
    ' · ', h('span.item-status', t(`item.${i.status}`)),
    i.return_until && i.status === 'retailed' ? ` · ${t('item.return_until', { at: formatTime(i.return_until, getLang()) })}` : '',
    i.disposal_channel ? ` · ${t(`channel.${i.disposal_channel}`)}` : '');
  if (i.history?.length) {
    li.append(h('details.history', h('summary', t('item.history')), h('ol', i.history.map((e) => h('li',
      `${formatTime(e.at, getLang())} — ${t(`hist.${e.event}`)}${e.channel ? ` (${t(`channel.${e.channel}`)})` : ''}`)))));
  }
  if (i.status === 'in_stock' || i.status === 'refunded') li.append(disposeForm(i, li));
  return li;
}

/** Sell a car out of the alliance: wholesale, export or scrap, with a note. */
function disposeForm(i, li) {
  const channel = h('select', { 'aria-label': t('dispose.channel') },
    ['wholesale', 'export', 'scrap'].map((c) => h('option', { value: c, text: t(`channel.${c}`) })));
  const note = h('input', { type: 'text', maxlength: 4000, 'aria-label': t('dispose.note'), placeholder: t('dispose.note') });
  const out = h('span.result', { role: 'status', 'aria-live': 'polite' });
  const go = h('button', { type: 'button', text: t('dispose.go') });
  go.addEventListener('click', async () => {
    go.disabled = true;
    try {
      const r = await post(`/v1/inventory/${encodeURIComponent(i.id)}/dispose`, { channel: channel.value, note: note.value });
      li.replaceWith(itemRow(r));
    } catch (e) { out.textContent = describe(e, t); go.disabled = false; }
  });
  return h('details.dispose', h('summary', t('dispose.title')), h('p', t('dispose.why')), channel, ' ', note, ' ', go, ' ', out);
}

export async function show(view, _args, app) {
  view.append(h('h1', t('acct.title')));
  const err = h('p.error', { role: 'alert' });
  view.append(err);
  if (!app.me || app.me.role !== 'dealer') { err.textContent = t('err.forbidden'); return null; }
  const money = h('dl.facts#money');
  const standing = h('section.card#standing');
  const items = h('section.card#inventory');
  const complaints = h('section.card#complaints');
  view.append(h('section.card', h('h2', app.me.name), money), standing, items, complaints);
  const dues = [];

  async function loadMoney() {
    try {
      const me = await get('/v1/me');
      money.replaceChildren(
        h('dt', t('acct.status')), h('dd', t(`dealer.${me.status}`)),
        h('dt', t('acct.deposit')), h('dd', formatFen(me.deposit)),
        h('dt', t('acct.power')), h('dd', formatFen(me.buying_power)),
        h('dt', t('acct.exposure')), h('dd', formatFen(me.exposure)),
        h('dt', t('acct.left')), h('dd#bp-left', formatFen(me.buying_power_left)));
    } catch (e) { err.textContent = describe(e, t); }
  }

  async function loadComplaints() {
    try {
      const cs = await get('/v1/complaints');
      dues.length = 0;
      complaints.replaceChildren(h('h2', t('acct.complaints')), cs.complaints.length ? h('ul.items', cs.complaints.map((c) => {
        const d = dueCell(c);
        dues.push(d);
        return h('li', { 'data-complaint': c.id }, h('strong', c.id), ' ', d, h('br'), c.text);
      })) : h('p', t('acct.no_complaints')));
    } catch (e) { err.textContent = describe(e, t); }
  }

  try {
    const id = encodeURIComponent(app.me.id);
    const [s, inv] = await Promise.all([
      get(`/v1/dealers/${id}/standing`), get(`/v1/inventory?dealer=${id}`),
    ]);
    standing.append(h('h2', t('acct.standing')), h('p', standingLine(s)), warningList(s.warnings));
    if (s.refused_retail) standing.append(h('p#refused-retail', t('acct.refused_retail', { n: s.refused_retail })));
    items.append(h('h2', t('acct.inventory')), inv.items.length ? h('ul.items', inv.items.map(itemRow)) : h('p', t('acct.no_items')));
  } catch (e) { err.textContent = describe(e, t); }
  await Promise.all([loadMoney(), loadComplaints()]);
  // Exposure moves on the dealer's own bids and closes, complaints when one is filed or
  // changes: re-read when those are pushed.
  const off = live.on((ev) => {
    if (ev.type !== 'message') return;
    if (['outbid', 'closed', 'bid_result'].includes(ev.msg.type)) loadMoney();
    if (ev.msg.type === 'complaint') loadComplaints();
  });
  const timer = setInterval(() => dues.forEach((d) => d.paint()), 1000);
  return () => { off(); clearInterval(timer); };
}

// The seller's page: a listing form with the inspection fields (every 422 field error
// shown beside its field), and the seller's own listings, live, with the reserve, the
// accept/decline decision and its time left, and cancel before the first bid.

import { h, fill } from '../dom.js';
import { getLang, t } from '../i18n.js';
import { get, post, describe } from '../api.js';
import { formatFen, parseYuan } from '../money.js';
import { formatLeft, formatTime, serverNow } from '../clock.js';
import { live } from '../live.js';
import { carName } from './board.js';

const FIELDS = [
  ['vehicle.vin', 'text'], ['vehicle.make', 'text'], ['vehicle.model', 'text'],
  ['vehicle.year', 'int'], ['vehicle.mileage_km', 'int'], ['vehicle.city', 'text'],
  ['inspection.structural_damage', 'flag'], ['inspection.fire', 'flag'], ['inspection.flood', 'flag'],
  ['inspection.odometer_tampered', 'flag'], ['inspection.title_transferable', 'flag'],
  ['inspection.grade', 'grade'], ['inspection.notes', 'notes'],
  ['start_price', 'money'], ['reserve', 'money'], ['buy_now', 'money'], ['duration_s', 'int'],
  ['preview_s', 'int'],
];
const OPTIONAL = new Set(['vehicle.city', 'buy_now', 'preview_s']);
const slug = (f) => f.replace(/\./g, '-');

function field(path, kind) {
  const id = `f-${slug(path)}`;
  const label = t(`f.${path.split('.').pop()}`);
  const error = h(`p.field-error#e-${slug(path)}`, { role: 'alert' });
  let input;
  if (kind === 'flag') {
    input = h(`input#${id}`, { type: 'checkbox', checked: path.endsWith('title_transferable'), 'aria-describedby': `e-${slug(path)}` });
    return h('div.field.check', h('label', { for: id }, input, ' ', label), error);
  }
  if (kind === 'grade') {
    input = h(`select#${id}`, { 'aria-describedby': `e-${slug(path)}` }, [0, 1, 2, 3, 4, 5].map((g) => h('option', { value: g, selected: g === 4, text: String(g) })));
  } else if (kind === 'notes') {
    input = h(`textarea#${id}`, { rows: 3, maxlength: 4000, 'aria-describedby': `e-${slug(path)}` });
  } else {
    input = h(`input#${id}`, {
      type: 'text', inputmode: kind === 'text' ? null : 'decimal', autocomplete: 'off',
      'aria-describedby': `e-${slug(path)}`, value: path === 'duration_s' ? '1200' : null,
    });
  }
  return h('div.field', h('label', { for: id, text: label }), input, error);
}

export async function show(view, _args, app) {
  const err = h('p.error#seller-error', { role: 'alert' });
  view.append(h('h1', t('seller.title')), err);
  if (!app.me || app.me.role !== 'seller') { err.textContent = t('err.forbidden'); return null; }
  const summary = h('p#form-summary', { role: 'status', 'aria-live': 'polite' });
  const form = h('form.card.listing#listing-form', { novalidate: true },
    h('fieldset', h('legend', t('f.car')), FIELDS.slice(0, 13).map(([p, k]) => field(p, k))),
    h('fieldset', h('legend', t('f.terms')), FIELDS.slice(13).map(([p, k]) => field(p, k))),
    summary, h('button#listing-submit.primary', { type: 'submit', text: t('f.submit') }));
  const list = h('div#my-lots');
  view.append(form, h('h2', t('seller.mine')), list);

  const lots = new Map();

  function clearErrors() {
    for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
    for (const i of form.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
  }

  function fieldError(path, message) {
    const e = form.querySelector(`#e-${slug(path)}`);
    const i = form.querySelector(`#f-${slug(path)}`);
    if (!e) { summary.textContent = `${path}: ${message}`; return; }
    e.textContent = message;
    i?.setAttribute('aria-invalid', 'true');
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors();
    summary.textContent = '';
    const body = { vehicle: {}, inspection: {} };
    let bad = false;
    for (const [path, kind] of FIELDS) {
      const i = form.querySelector(`#f-${slug(path)}`);
      let v;
      if (kind === 'flag') v = i.checked;
      else if (kind === 'grade') v = Number(i.value);
      else if (kind === 'money') {
        if (!i.value.trim() && OPTIONAL.has(path)) continue;
        v = parseYuan(i.value);
        if (v === null) { fieldError(path, t('f.money')); bad = true; continue; }
      } else if (kind === 'int') {
        if (!i.value.trim() && OPTIONAL.has(path)) continue;
        // Sent as typed when it is no whole number: the server's message says why.
        v = /^\s*\d+\s*$/.test(i.value) ? Number(i.value) : i.value;
      } else {
        v = i.value;
        if (!v.trim() && OPTIONAL.has(path)) continue;
      }
      const [a, b] = path.split('.');
      if (b) body[a][b] = v; else body[a] = v;
    }
    if (bad) { summary.textContent = t('f.fix'); form.querySelector('[aria-invalid]')?.focus(); return; }
    try {
      const r = await post('/v1/listings', body);
      summary.textContent = t('f.listed', { id: r.auction });
      await load();
    } catch (e) {
      if (e.status === 422) {
        for (const f of e.fields) fieldError(f.field, f.message);
        summary.textContent = t('f.fix');
        form.querySelector('[aria-invalid]')?.focus();
      } else {
        summary.textContent = describe(e, t);
      }
    }
  });

  function card(a) {
    const c = h('article.card.my-lot', { 'data-auction': a.id, 'data-status': a.status });
    const msg = h('p.error', { role: 'alert' });
    const act = async (path, body) => {
      msg.textContent = '';
      try {
        const r = await post(path, body);
        lots.set(a.id, { ...lots.get(a.id), ...r, decide_by: undefined });
        paint(a.id);
      } catch (e) { msg.textContent = describe(e, t); load(); }
    };
    const parts = [
      h('h3', `${a.id} · ${carName(a.vehicle)}`),
      h('p', h('span.badge.status', { class: `badge status ${a.status}`, text: t(`status.${a.status}`) }), ' ',
        h('span.price', a.price === null ? t('price.none') : formatFen(a.price)), ' · ',
        h('span.bids', `${t('lot.bids')}: ${a.bids}`), ' · ',
        t('seller.reserve', { reserve: formatFen(a.reserve) }), ' · ',
        a.reserve_met ? t('reserve.met') : t('reserve.not')),
    ];
    if (a.status === 'live') parts.push(h('p', `${t('lot.left')}: `, h('span.left', { 'data-ends': a.ends_at }, formatLeft(a.ends_at - serverNow()))));
    if (a.status === 'pending_seller' && a.decide_by) {
      parts.push(h('p.decide', t('seller.decide', { price: formatFen(a.price), left: '' }),
        h('span.left', { 'data-ends': a.decide_by }, formatLeft(a.decide_by - serverNow())),
        ` (${formatTime(a.decide_by, getLang())})`),
      h('p.actions',
        h('button.accept.primary', { type: 'button', text: t('seller.accept', { price: formatFen(a.price) }), onclick: () => act(`/v1/auctions/${a.id}/decision`, { accept: true }) }), ' ',
        h('button.decline', { type: 'button', text: t('seller.decline'), onclick: () => act(`/v1/auctions/${a.id}/decision`, { accept: false }) })));
    }
    if ((a.status === 'live' || a.status === 'scheduled') && a.bids === 0) {
      parts.push(h('p.actions', h('button.cancel', { type: 'button', text: t('seller.cancel'), onclick: () => act(`/v1/auctions/${a.id}/cancel`, {}) }), ' ', h('span.help', t('seller.cancel_hint'))));
    }
    parts.push(msg);
    fill(c, parts);
    return c;
  }

  function paint(id) {
    const old = list.querySelector(`[data-auction="${CSS.escape(id)}"]`);
    const fresh = card(lots.get(id));
    if (old) old.replaceWith(fresh); else list.prepend(fresh);
  }

  async function load() {
    try {
      const r = await get('/v1/auctions?seller=me');
      lots.clear();
      for (const a of r.auctions) {
        lots.set(a.id, a);
        if (a.status === 'live' || a.status === 'scheduled' || a.status === 'pending_seller') live.subscribe(a.id);
      }
      fill(list, r.auctions.length ? r.auctions.map(card) : h('p', t('seller.none')));
    } catch (e) { err.textContent = describe(e, t); }
  }

  const off = live.on((ev) => {
    if (ev.type !== 'message') return;
    const m = ev.msg;
    // A snapshot (on subscribing, and after every reconnect) is the truth of its moment.
    if (m.type === 'snapshot' && lots.has(m.auction.id)) {
      const { status, price, bids, reserve_met: reserveMet, ends_at: endsAt } = m.auction;
      Object.assign(lots.get(m.auction.id), { status, price, bids, reserve_met: reserveMet, ends_at: endsAt });
      paint(m.auction.id);
      return;
    }
    if (m.type === 'update' && lots.has(m.auction)) {
      const a = lots.get(m.auction);
      const becamePending = m.status === 'pending_seller' && a.status !== 'pending_seller';
      Object.assign(a, { status: m.status, price: m.price, bids: m.bids, reserve_met: m.reserve_met, ends_at: m.ends_at });
      if (becamePending) load(); // its decision deadline comes with the list
      else paint(m.auction);
    }
  });
  const timer = setInterval(() => {
    for (const s of list.querySelectorAll('.left')) s.textContent = formatLeft(Number(s.dataset.ends) - serverNow());
  }, 1000);
  await load();
  return () => { off(); clearInterval(timer); for (const id of lots.keys()) live.unsubscribe(id); };
}

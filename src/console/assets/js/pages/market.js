// Market data, for dealers in good standing and the operator: closed auctions' prices by
// make, model, model-year band and city (filtered, one page), and a model's price history
// when its row is chosen. The seller's page shows the history of its own car's model
// with `historyTable`.

import { h, fill } from '../dom.js';
import { getLang, t } from '../i18n.js';
import { get, describe } from '../api.js';
import { formatFen } from '../money.js';
import { formatTime } from '../clock.js';

/** Sales per thousand closes → "66.6%" (integers only: the server rounds down). */
function permille(p) {
  return p === null || p === undefined ? '—' : `${Math.floor(p / 10)}.${p % 10}%`;
}

function orDash(v) {
  return v === null || v === undefined ? '—' : String(v);
}

/** A market-data error in words: not in good standing has its own message. */
export function marketError(e) {
  return e && e.code === 'not_in_good_standing' ? t('mkt.not_in_good_standing') : describe(e, t);
}

/** A model's sales (`GET /v1/market/history`), newest first, as a table. */
export function historyTable(history) {
  if (!history.sales.length) return h('p.none', t('mkt.no_sales'));
  const cols = ['mkt.ended', 'col.id', 'col.price', 'mkt.year', 'col.city', 'mkt.terms'];
  return h('div.scroll', h('table.market-history',
    h('caption', t('mkt.history_of', { car: `${history.make} ${history.model}` })),
    h('thead', h('tr', cols.map((c) => h('th', { scope: 'col', text: t(c) })))),
    h('tbody', history.sales.map((s) => h('tr', { 'data-lot': s.lot },
      h('td', formatTime(s.ended_at, getLang())), h('td', s.lot), h('td.price', formatFen(s.price)),
      h('td', String(s.year)), h('td', orDash(s.city)),
      h('td', s.below_reserve ? t('mkt.below_reserve') : t('mkt.at_reserve')))))));
}

export async function show(view, _args, app) {
  const err = h('p.error#market-error', { role: 'alert' });
  view.append(h('h1', t('mkt.title')), h('p.help', t('mkt.intro')), err);
  if (!app.me || (app.me.role !== 'dealer' && app.me.role !== 'admin')) {
    err.textContent = t('err.forbidden');
    return null;
  }
  const field = (name) => h('label', t(`mkt.${name}`), h('input', { id: `mkt-${name}`, name, maxlength: 64 }));
  const form = h('form.toolbar#market-filter', field('make'), field('model'), field('city'),
    h('button.primary', { type: 'submit', text: t('mkt.show') }));
  const body = h('tbody');
  const cols = ['col.car', 'mkt.years', 'col.city', 'mkt.closed', 'mkt.sold', 'mkt.sell_through',
    'mkt.median', 'mkt.range', 'mkt.median_bids', 'mkt.median_ext'];
  const table = h('div.scroll', h('table#market-prices',
    h('thead', h('tr', cols.map((c) => h('th', { scope: 'col', text: t(c) })))), body));
  const history = h('section.card#market-history');
  view.append(h('section.card', form, table, h('p.help#market-note')), history);

  async function showHistory(make, model) {
    try {
      const r = await get(`/v1/market/history?make=${encodeURIComponent(make)}&model=${encodeURIComponent(model)}`);
      fill(history, historyTable(r));
    } catch (e) { fill(history, h('p.error', { role: 'alert' }, marketError(e))); }
  }

  async function load() {
    err.textContent = '';
    const q = new URLSearchParams();
    for (const name of ['make', 'model', 'city']) {
      const v = form.elements[name].value.trim();
      if (v) q.set(name, v);
    }
    try {
      const r = await get(`/v1/market/prices?${q}`);
      fill(body, r.prices.length ? r.prices.map((p) => h('tr', { 'data-key': `${p.make}|${p.model}` },
        h('td', h('button.link', {
          type: 'button', text: `${p.make} ${p.model}`, onclick: () => showHistory(p.make, p.model),
        })),
        h('td', `${p.year_band.from}–${p.year_band.to}`), h('td', orDash(p.city)),
        h('td', String(p.closed)), h('td', String(p.sold)), h('td', permille(p.sell_through_permille)),
        h('td.price', formatFen(p.recent.median_price)),
        h('td', `${formatFen(p.recent.min_price)} – ${formatFen(p.recent.max_price)}`),
        h('td', orDash(p.recent.median_bids)), h('td', orDash(p.recent.median_extensions)))) :
        h('tr', h('td', { colspan: cols.length, text: t('mkt.none') })));
      fill(view.querySelector('#market-note'), t('mkt.note', { n: r.window }),
        r.next ? ` ${t('mkt.more')}` : '');
    } catch (e) { err.textContent = marketError(e); }
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  await load();
  return null;
}

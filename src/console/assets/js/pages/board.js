// The dealer's live board: every live auction, updated as the WebSocket pushes; filter
// and watch (watched lots kept in local storage: no secret).

import { h, fill } from '../dom.js';
import { t } from '../i18n.js';
import { get, describe } from '../api.js';
import { formatFen } from '../money.js';
import { formatLeft, serverNow } from '../clock.js';
import { live } from '../live.js';

const WATCH_KEY = 'gavel.watch';
const watched = () => new Set(JSON.parse(localStorage.getItem(WATCH_KEY) || '[]'));

export const carName = (v) => `${v.year} ${v.make} ${v.model}`;

export async function show(view) {
  const lots = new Map(); // id → auction object (kept current by updates)
  const filter = h('input#board-filter', { type: 'search', autocomplete: 'off' });
  const onlyWatched = h('input#board-watched', { type: 'checkbox' });
  const body = h('tbody');
  const status = h('p.error', { role: 'alert' });
  const refresh = h('button#board-refresh', { type: 'button', text: t('board.refresh') });
  const table = h('table.board',
    h('caption.sr', t('board.title')),
    h('thead', h('tr', ['car', 'city', 'grade', 'price', 'left', 'reserve', 'bids', 'watch'].map((c) => h('th', { scope: 'col', text: t(`col.${c}`) })))),
    body);
  // Lots in their preview: the server lists them only to members in good standing.
  const previewBody = h('tbody');
  const previewTable = h('table.board#preview-board',
    h('caption.sr', t('board.preview_title')),
    h('thead', h('tr', ['car', 'city', 'grade', 'start', 'opens'].map((c) => h('th', { scope: 'col', text: t(`col.${c}`) })))),
    previewBody);
  const previewSection = h('section#preview', { hidden: true },
    h('h2', t('board.preview_title')), h('p.help', t('board.preview_note')), h('div.scroll', previewTable));
  view.append(h('h1', t('board.title')),
    h('div.toolbar',
      h('label', { for: 'board-filter', text: t('board.filter') }), filter,
      h('label.check', onlyWatched, ' ', t('board.watched')), refresh),
    status, h('div.scroll', table), h('p.help', t('board.note')), previewSection);

  const row = (a) => {
    const w = watched().has(a.id);
    const car = carName(a.vehicle);
    return h('tr', { 'data-auction': a.id, class: body.parentElement && document.body.classList.contains('stale') ? 'stale' : null },
      h('th', { scope: 'row' }, h('a', { href: `#/lot/${encodeURIComponent(a.id)}`, text: car })),
      h('td', a.vehicle.city || '—'),
      h('td', String(a.inspection.grade)),
      h('td.money.price', a.price === null ? t('price.none') : formatFen(a.price)),
      h('td.left', { 'data-ends': a.ends_at }, formatLeft(a.ends_at - serverNow())),
      h('td', a.reserve_met ? t('reserve.met') : t('reserve.not')),
      h('td.bids', String(a.bids)),
      h('td', h('button.watch', {
        type: 'button', 'aria-pressed': w ? 'true' : 'false',
        'aria-label': t(w ? 'watch.remove' : 'watch.add', { car }),
        text: w ? '★' : '☆',
        onclick: () => {
          const s = watched();
          if (s.has(a.id)) s.delete(a.id); else s.add(a.id);
          localStorage.setItem(WATCH_KEY, JSON.stringify([...s]));
          render();
        },
      })));
  };

  const previewRow = (a) => h('tr', { 'data-auction': a.id },
    h('th', { scope: 'row' }, h('a', { href: `#/lot/${encodeURIComponent(a.id)}`, text: carName(a.vehicle) })),
    h('td', a.vehicle.city || '—'),
    h('td', String(a.inspection.grade)),
    h('td.money', formatFen(a.min_next)),
    h('td.left', { 'data-ends': a.starts_at }, formatLeft(a.starts_at - serverNow())));

  function render() {
    const previews = [...lots.values()].filter((a) => a.status === 'scheduled');
    previewSection.hidden = previews.length === 0;
    fill(previewBody, previews.length ? previews.map(previewRow) : h('tr', h('td', { colspan: 5, text: t('board.preview_none') })));
    const q = filter.value.trim().toLowerCase();
    const w = watched();
    const shown = [...lots.values()].filter((a) => a.status === 'live')
      .filter((a) => !q || `${carName(a.vehicle)} ${a.vehicle.city || ''}`.toLowerCase().includes(q))
      .filter((a) => !onlyWatched.checked || w.has(a.id));
    fill(body, shown.length ? shown.map(row) : h('tr', h('td', { colspan: 8, text: t('board.none') })));
  }

  async function load() {
    status.textContent = '';
    try {
      const [r, p] = await Promise.all([get('/v1/auctions?status=live'), get('/v1/auctions?status=scheduled')]);
      for (const a of [...r.auctions, ...p.auctions]) {
        lots.set(a.id, a);
        live.subscribe(a.id);
      }
    } catch (e) {
      status.textContent = describe(e, t);
    }
    render();
  }

  const off = live.on((ev) => {
    if (ev.type !== 'message') return;
    const m = ev.msg;
    if (m.type === 'snapshot') lots.set(m.auction.id, m.auction);
    else if (m.type === 'update' && lots.has(m.auction)) {
      Object.assign(lots.get(m.auction), {
        status: m.status, price: m.price, min_next: m.min_next, bids: m.bids,
        reserve_met: m.reserve_met, leading: m.leading, ends_at: m.ends_at,
      });
    } else return;
    render();
  });
  filter.addEventListener('input', render);
  onlyWatched.addEventListener('change', render);
  refresh.addEventListener('click', load);
  const tick = setInterval(() => {
    for (const td of view.querySelectorAll('td.left')) td.textContent = formatLeft(Number(td.dataset.ends) - serverNow());
  }, 1000);
  // New listings are not pushed by the protocol: re-read the list now and then.
  const reread = setInterval(load, 30_000);
  await load();
  return () => {
    off(); clearInterval(tick); clearInterval(reread);
    for (const id of lots.keys()) live.unsubscribe(id);
  };
}

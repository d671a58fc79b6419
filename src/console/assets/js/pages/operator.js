// The alliance operator's page: dealers with status, score and warnings; complaints with
// their due time counting down and overdue ones marked; returns; who was expelled or
// suspended, and why.

import { h, fill } from '../dom.js';
import { getLang, t } from '../i18n.js';
import { get, describe } from '../api.js';
import { formatFen } from '../money.js';
import { formatTime } from '../clock.js';
import { dueCell, warningList } from './account.js';

async function all(path, key) {
  const out = [];
  let after = null;
  // Bounded: at most 20 pages of 500.
  for (let i = 0; i < 20; i++) {
    const sep = path.includes('?') ? '&' : '?';
    const r = await get(`${path}${sep}limit=500${after ? `&after=${encodeURIComponent(after)}` : ''}`);
    out.push(...r[key]);
    if (!r.next) break;
    after = r.next;
  }
  return out;
}

export async function show(view, _args, app) {
  const err = h('p.error', { role: 'alert' });
  view.append(h('h1', t('op.title')), err);
  if (!app.me || app.me.role !== 'admin') { err.textContent = t('err.forbidden'); return null; }
  const dealersBox = h('section.card#op-dealers', h('h2', t('op.dealers')));
  const complaintsBox = h('section.card#op-complaints', h('h2', t('op.complaints')));
  const returnsBox = h('section.card#op-returns', h('h2', t('op.returns')));
  const expelledBox = h('section.card#op-expelled', h('h2', t('op.expelled')));
  view.append(dealersBox, complaintsBox, returnsBox, expelledBox);
  const dues = [];
  const filter = h('select#complaint-filter', ['all', 'open', 'due_soon', 'overdue', 'resolved'].map((s) => h('option', { value: s, text: t(s === 'all' ? 'op.all' : s === 'due_soon' ? 'op.due_soon' : `op.${s}`) })));
  const cbody = h('tbody');
  complaintsBox.append(h('label', { for: 'complaint-filter', text: t('op.filter') }), filter,
    h('div.scroll', h('table', h('thead', h('tr', ['id', 'dealer', 'due', 'text'].map((c) => h('th', { scope: 'col', text: t(`col.${c}`) })))), cbody)));

  let names = new Map();
  async function loadComplaints() {
    dues.length = 0;
    const q = filter.value === 'all' ? '' : `?state=${filter.value}`;
    try {
      const cs = await all(`/v1/complaints${q}`, 'complaints');
      fill(cbody, cs.length ? cs.map((c) => {
        const d = dueCell(c);
        dues.push(d);
        return h('tr', { 'data-complaint': c.id, class: c.status === 'overdue' ? 'overdue' : null },
          h('th', { scope: 'row', text: c.id }), h('td', names.get(c.dealer) ?? c.dealer),
          h('td', d, h('br'), h('small', formatTime(c.due_at, getLang()))), h('td', c.text));
      }) : h('tr', h('td', { colspan: 4, text: t('op.none') })));
    } catch (e) { err.textContent = describe(e, t); }
  }
  filter.addEventListener('change', loadComplaints);

  try {
    const dealers = await all('/v1/dealers', 'dealers');
    names = new Map(dealers.map((d) => [d.id, d.name]));
    dealersBox.append(h('div.scroll', h('table#dealer-table',
      h('thead', h('tr', ['id', 'name', 'status', 'deposit', 'power', 'exposure', 'score', 'warnings'].map((c) => h('th', { scope: 'col', text: t(`col.${c}`) })))),
      h('tbody', dealers.map((d) => h('tr', { 'data-dealer': d.id, class: d.status },
        h('th', { scope: 'row', text: d.id }), h('td', d.name), h('td', t(`dealer.${d.status}`)),
        h('td.money', formatFen(d.deposit)), h('td.money', formatFen(d.buying_power)), h('td.money', formatFen(d.exposure)),
        h('td', d.score === null ? '—' : d.score.toFixed(1)),
        h('td', `${d.warnings.filter((w) => !w.corrected).length} / ${d.warnings.length}`)))))));
    const out = dealers.filter((d) => d.status !== 'active');
    expelledBox.append(out.length ? h('ul', out.map((d) => h('li', { 'data-dealer': d.id },
      h('strong', `${d.name} (${d.id}) — ${t(`dealer.${d.status}`)}`),
      d.status_change ? h('p', `${t('op.reason')}: ${d.status_change.reason} · ${t('op.changed', { at: formatTime(d.status_change.at, getLang()) })}`) : null,
      warningList(d.warnings)))) : h('p', t('op.none')));
    const inv = await get('/v1/inventory');
    const returned = inv.items.filter((i) => i.returned_at);
    returnsBox.append(returned.length ? h('ul', returned.map((i) => h('li',
      `${i.id} · ${i.vin} · ${names.get(i.dealer) ?? i.dealer} · ${formatFen(i.price)} · ${t(`item.${i.status}`)} · ${formatTime(i.returned_at, getLang())}`,
      i.findings && i.findings.length ? ` · ${t('col.findings')}: ${i.findings.join(', ')}` : ''))) : h('p', t('op.none')));
  } catch (e) { err.textContent = describe(e, t); }
  await loadComplaints();
  const timer = setInterval(() => dues.forEach((d) => d.paint()), 1000);
  return () => clearInterval(timer);
}

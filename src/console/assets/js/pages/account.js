// The dealer's own account: money (buying power left), its credit line (limit, drawn,
// available, loans with their due time), standing (score, warnings), the cars it holds
// with their retail and return state, and complaints with their due time.

import { h } from '../dom.js';
import { getLang, t } from '../i18n.js';
import { get, describe } from '../api.js';
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

/** One loan of the line: principal, and its due time counting down until it is repaid. */
function loanItem(l) {
  const due = l.status === 'repaid'
    ? h('span.due', { 'data-status': 'repaid' }, t(l.overdue ? 'credit.repaid_late' : 'credit.repaid'))
    : dueCell({ due_at: l.due_at, status: l.status === 'overdue' ? 'overdue' : 'open' });
  return h('li', { 'data-loan': l.id },
    t('credit.loan', { id: l.id, auction: l.auction, principal: formatFen(l.principal) }), ' · ', due);
}

export async function show(view, _args, app) {
  view.append(h('h1', t('acct.title')));
  const err = h('p.error', { role: 'alert' });
  view.append(err);
  if (!app.me || app.me.role !== 'dealer') { err.textContent = t('err.forbidden'); return null; }
  const money = h('dl.facts#money');
  const credit = h('section.card#credit');
  const standing = h('section.card#standing');
  const items = h('section.card#inventory');
  const complaints = h('section.card#complaints');
  view.append(h('section.card', h('h2', app.me.name), money), credit, standing, items, complaints);
  const dues = [];

  // The line's read is the dealer's money as /v1/me has it, with its loans.
  async function loadMoney() {
    try {
      const me = await get(`/v1/dealers/${encodeURIComponent(app.me.id)}/credit`);
      money.replaceChildren(
        h('dt', t('acct.status')), h('dd', t(`dealer.${me.status}`)),
        h('dt', t('acct.deposit')), h('dd', formatFen(me.deposit)),
        h('dt', t('acct.power')), h('dd', formatFen(me.buying_power)),
        h('dt', t('acct.exposure')), h('dd', formatFen(me.exposure)),
        h('dt', t('acct.left')), h('dd#bp-left', formatFen(me.buying_power_left)));
      dues.splice(0, dues.length, ...dues.filter((d) => !d.loan));
      const loans = me.loans.map((l) => {
        const li = loanItem(l);
        li.querySelectorAll('.due').forEach((d) => { if (d.paint) { d.loan = true; dues.push(d); } });
        return li;
      });
      credit.replaceChildren(h('h2', t('credit.title')),
        me.credit_limit === 0 && !me.loans.length ? h('p', t('credit.none')) : h('dl.facts',
          h('dt', t('credit.limit')), h('dd#credit-limit', formatFen(me.credit_limit)),
          h('dt', t('credit.drawn')), h('dd#credit-drawn', formatFen(me.credit_drawn)),
          h('dt', t('credit.available')), h('dd#credit-available', formatFen(me.credit_available))),
        loans.length ? h('ul.items#loans', loans) : h('p', t('credit.no_loans')));
    } catch (e) { err.textContent = describe(e, t); }
  }

  try {
    const id = encodeURIComponent(app.me.id);
    const [s, inv, cs] = await Promise.all([
      get(`/v1/dealers/${id}/standing`), get(`/v1/inventory?dealer=${id}`), get('/v1/complaints'),
    ]);
    standing.append(h('h2', t('acct.standing')), h('p', standingLine(s)), warningList(s.warnings));
    items.append(h('h2', t('acct.inventory')), inv.items.length ? h('ul.items', inv.items.map((i) => h('li',
      h('strong', `${i.id} · ${i.vin}`), ' ', formatFen(i.price), ' · ',
      t(i.certified ? 'item.certified' : 'item.not_certified'), ' · ', t(`item.${i.status}`),
      i.return_until && i.status === 'retailed' ? ` · ${t('item.return_until', { at: formatTime(i.return_until, getLang()) })}` : ''))) : h('p', t('acct.no_items')));
    complaints.append(h('h2', t('acct.complaints')), cs.complaints.length ? h('ul.items', cs.complaints.map((c) => {
      const d = dueCell(c);
      dues.push(d);
      return h('li', h('strong', c.id), ' ', d, h('br'), c.text);
    })) : h('p', t('acct.no_complaints')));
  } catch (e) { err.textContent = describe(e, t); }
  await loadMoney();
  // Exposure moves on the dealer's own bids and closes: re-read when those are pushed.
  const off = live.on((ev) => {
    if (ev.type === 'message' && ['outbid', 'closed', 'bid_result'].includes(ev.msg.type)) loadMoney();
  });
  const timer = setInterval(() => dues.forEach((d) => d.paint()), 1000);
  return () => { off(); clearInterval(timer); };
}

// One auction, for a dealer: the car and its inspection report, a countdown on the
// server's clock, price and lowest next bid, one-click bid at the next increment, a proxy
// maximum, the dealer's own state the moment it changes, soft-close extensions as they
// happen, and buying power left. In the auction's preview (members only), a pre-bid: a
// sealed maximum, resolved when the auction opens.

import { h, fill } from '../dom.js';
import { getLang, t } from '../i18n.js';
import { get, describe } from '../api.js';
import { formatFen, parseYuan } from '../money.js';
import { formatLeft, formatTime, serverNow } from '../clock.js';
import { live } from '../live.js';
import { carName } from './board.js';

const FLAGS = ['structural_damage', 'fire', 'flood', 'odometer_tampered', 'title_transferable'];

export function inspectionTable(ins) {
  return h('table.inspection',
    h('caption', t('lot.inspection')),
    h('tbody',
      FLAGS.map((f) => {
        const bad = f === 'title_transferable' ? !ins[f] : ins[f];
        return h('tr', h('th', { scope: 'row', text: t(`insp.${f}`) }),
          h('td', { class: bad ? 'bad' : 'good', text: ins[f] ? t('yes') : t('no') }));
      }),
      h('tr', h('th', { scope: 'row', text: t('insp.grade') }), h('td', String(ins.grade))),
      h('tr', h('th', { scope: 'row', text: t('insp.notes') }), h('td', ins.notes || '—'))));
}

export async function show(view, [id], app) {
  let a = null;
  let myState = 'none';
  let participated = false;
  let extensions = 0;
  const el = {
    title: h('h1#lot-title'), sub: h('p.sub#lot-sub'),
    status: h('span.badge#lot-status'),
    mine: h('span.badge.mine#my-state', { role: 'status', 'aria-live': 'assertive', 'data-state': 'none', text: t('state.none') }),
    price: h('output#price.big'), minNext: h('output#min-next'), bids: h('output#bids'),
    reserve: h('output#reserve-met'), buyNow: h('output#buy-now'),
    countdown: h('output#countdown.big', { 'aria-live': 'off' }), ends: h('span#ends-at'),
    extended: h('p#extended.notice', { role: 'status', 'aria-live': 'polite', hidden: true }),
    closed: h('p#closed-msg.notice', { role: 'status', 'aria-live': 'polite', hidden: true }),
    bidNext: h('button#bid-next.primary', { type: 'button' }),
    max: h('input#max-input', { inputmode: 'decimal', autocomplete: 'off', 'aria-describedby': 'max-hint max-error' }),
    maxLabel: h('label', { for: 'max-input', text: t('lot.max') }),
    maxHint: h('p.help#max-hint', t('lot.max_hint')),
    maxError: h('p.field-error#max-error', { role: 'alert' }),
    bidMax: h('button#bid-max', { type: 'submit' }),
    bidStatus: h('p#bid-status', { role: 'status', 'aria-live': 'polite' }),
    bp: h('output#bp-left'),
    error: h('p.error', { role: 'alert' }),
    report: h('div#inspection'),
  };
  view.append(
    h('p', h('a', { href: '#/board', text: t('lot.back') })),
    el.title, el.sub, el.error,
    h('section.lot-grid',
      h('div.card.state',
        h('p', el.status, ' ', h('span.label', t('lot.you')), ' ', el.mine),
        h('dl.facts',
          h('dt', t('lot.price')), h('dd', el.price),
          h('dt', t('lot.left')), h('dd', el.countdown, h('br'), el.ends),
          h('dt', t('lot.min_next')), h('dd', el.minNext),
          h('dt', t('lot.bids')), h('dd', el.bids),
          h('dt', t('lot.reserve')), h('dd', el.reserve),
          h('dt.buy-now', t('lot.buy_now')), h('dd.buy-now', el.buyNow)),
        el.extended, el.closed),
      h('div.card.bid',
        el.bidNext,
        h('form#max-form', { novalidate: true, onsubmit: (e) => { e.preventDefault(); bidMax(); } },
          el.maxLabel, el.max, el.maxHint, el.maxError, el.bidMax),
        el.bidStatus,
        h('p', h('span.label', `${t('lot.bp_left')}: `), el.bp))),
    el.report);

  const setState = (s) => {
    if (s === myState) return;
    myState = s;
    el.mine.dataset.state = s;
    el.mine.className = `badge mine ${s}`;
    el.mine.textContent = t(`state.${s}`);
  };

  async function refreshMe() {
    try {
      const me = await get('/v1/me');
      el.bp.textContent = me.buying_power_left === undefined ? '—' : formatFen(me.buying_power_left);
    } catch (e) { el.bp.textContent = '—'; }
  }

  function render() {
    if (!a) return;
    document.title = `${carName(a.vehicle)} — gavel`;
    el.title.textContent = carName(a.vehicle);
    el.sub.textContent = [a.vehicle.city, t('lot.km', { km: a.vehicle.mileage_km.toLocaleString(getLang()) }), `${t('lot.vin')} ${a.vehicle.vin}`].filter(Boolean).join(' · ');
    const preview = a.status === 'scheduled';
    el.status.textContent = t(preview ? 'status.preview' : `status.${a.status}`);
    el.status.className = `badge status ${a.status}`;
    el.price.textContent = a.price === null ? t('price.none') : formatFen(a.price);
    el.minNext.textContent = formatFen(a.min_next);
    el.bids.textContent = String(a.bids);
    el.reserve.textContent = a.reserve_met ? t('reserve.met') : t('reserve.not');
    el.buyNow.textContent = a.buy_now ? formatFen(a.buy_now) : '—';
    el.ends.textContent = preview
      ? t('lot.opens', { at: formatTime(a.starts_at, getLang()) })
      : t('lot.ends', { at: formatTime(a.ends_at, getLang()) });
    el.bidNext.textContent = t('lot.bid_next', { amount: formatFen(a.min_next) });
    el.maxLabel.textContent = t(preview ? 'lot.prebid' : 'lot.max');
    el.maxHint.textContent = t(preview ? 'lot.prebid_hint' : 'lot.max_hint');
    el.bidMax.textContent = preview ? t('lot.set_prebid') : myState === 'leading' ? t('lot.raise_max') : t('lot.set_max');
    const open = a.status === 'live';
    el.bidNext.disabled = !open;
    el.bidMax.disabled = !open && !preview;
    // In the preview a pre-bid is sealed: nobody leads or is outbid until the opening.
    if (open) {
      if (a.leading) setState('leading');
      else if (myState === 'leading' || participated) setState('outbid');
    }
    tick();
  }

  function tick() {
    if (!a) return;
    el.countdown.textContent = a.status === 'live' ? formatLeft(a.ends_at - serverNow())
      : a.status === 'scheduled' ? formatLeft(a.starts_at - serverNow()) : t(`status.${a.status}`);
    el.countdown.dataset.endsAt = a.ends_at;
  }

  function showBid(b) {
    el.bidStatus.classList.remove('refused', 'ok');
    if (b.state === 'not_sent') {
      el.bidStatus.textContent = t('bid.not_sent');
      el.bidStatus.classList.add('refused');
      el.bidStatus.dataset.state = 'not_sent';
      return;
    }
    if (b.state === 'pending') {
      delete el.bidStatus.dataset.ackMs; // this bid's round trip is not known yet
      el.bidStatus.textContent = t('bid.pending', { amount: formatFen(b.max ?? b.amount) });
      el.bidStatus.dataset.state = 'pending';
      return;
    }
    const r = b.result;
    el.bidStatus.dataset.ackMs = String(Math.round(b.latency ?? 0));
    if (r.accepted && a && a.status === 'scheduled') {
      participated = true;
      el.bidStatus.dataset.state = 'accepted';
      el.bidStatus.classList.add('ok');
      el.bidStatus.textContent = t('bid.prebid_accepted');
      setState('prebid');
    } else if (r.accepted) {
      participated = true;
      el.bidStatus.dataset.state = 'accepted';
      el.bidStatus.classList.add('ok');
      el.bidStatus.textContent = r.leading
        ? t('bid.accepted_leading', { price: formatFen(r.price) })
        : t('bid.accepted_behind', { price: formatFen(r.price) });
      if (a) {
        if (r.leading) { a.leading = true; setState('leading'); }
        else setState('outbid');
      }
    } else {
      el.bidStatus.dataset.state = 'refused';
      el.bidStatus.dataset.reason = r.reason;
      el.bidStatus.classList.add('refused');
      // A reason newer than this page is still a refusal, said as one.
      const known = t(`reason.${r.reason}`) !== `reason.${r.reason}`;
      const words = !known ? t('err.generic', { code: r.reason }) : t(`reason.${r.reason}`, {
        min: r.min_next !== undefined ? formatFen(r.min_next) : '',
        max: r.max !== undefined ? formatFen(r.max) : '',
      });
      if (r.reason === 'unavailable' || r.reason === 'rate_limited') {
        fill(el.bidStatus, words, ' ', h('button#bid-retry', { type: 'button', text: t('bid.retry'), onclick: () => live.retry(b) }));
      } else {
        el.bidStatus.textContent = words;
      }
    }
    render();
    refreshMe();
  }

  function bidNext() {
    if (!a) return;
    live.bid(a.id, a.min_next, null);
  }

  function bidMax() {
    el.maxError.textContent = '';
    el.max.removeAttribute('aria-invalid');
    const max = parseYuan(el.max.value);
    if (max === null || max === 0) {
      el.maxError.textContent = t('f.money');
      el.max.setAttribute('aria-invalid', 'true');
      el.max.focus();
      return;
    }
    live.bid(a.id, myState === 'leading' ? max : Math.min(a.min_next, max), max);
  }
  el.bidNext.addEventListener('click', bidNext);

  const off = live.on((ev) => {
    if (ev.type === 'bid' && ev.bid.auction === id) showBid(ev.bid);
    if (ev.type !== 'message') return;
    const m = ev.msg;
    if (m.type === 'snapshot' && m.auction.id === id) {
      a = m.auction;
      render();
    } else if (m.type === 'update' && m.auction === id && a) {
      const moved = m.status === 'live' && m.ends_at > a.ends_at;
      Object.assign(a, {
        status: m.status, price: m.price, min_next: m.min_next, bids: m.bids,
        reserve_met: m.reserve_met, leading: m.leading, ends_at: m.ends_at,
      });
      if (m.status !== 'live') delete a.buy_now; else if (m.reserve_met) delete a.buy_now;
      if (moved) {
        extensions += 1;
        el.extended.hidden = false;
        el.extended.textContent = t('lot.extended', { at: formatTime(m.ends_at, getLang()), n: extensions });
        el.extended.classList.remove('flash');
        void el.extended.offsetWidth;
        el.extended.classList.add('flash');
      }
      render();
    } else if (m.type === 'outbid' && m.auction === id) {
      participated = true;
      if (a) { a.leading = false; a.price = m.price; a.min_next = m.min_next; }
      setState('outbid');
      render();
      refreshMe();
    } else if (m.type === 'closed' && m.auction === id) {
      if (m.won) setState('won');
      else if (m.outcome === 'pending_seller' && (myState === 'leading' || a?.leading)) setState('pending');
      else if (participated || myState !== 'none') setState('lost');
      el.closed.hidden = false;
      el.closed.textContent = m.outcome === 'sold'
        ? t(m.won ? 'closed.sold_you' : 'closed.sold', { price: formatFen(m.price) })
        : t(`closed.${m.outcome}`, { price: formatFen(m.price) });
      refreshMe();
    }
  });

  try {
    a = await get(`/v1/auctions/${encodeURIComponent(id)}`);
    fill(el.report, inspectionTable(a.inspection));
  } catch (e) {
    el.error.textContent = describe(e, t);
  }
  render();
  live.subscribe(id);
  for (const b of live.pendingFor(id)) showBid(b);
  if (app.me && app.me.role === 'dealer') refreshMe(); else el.bp.textContent = '—';
  const timer = setInterval(tick, 250);
  return () => { off(); clearInterval(timer); live.unsubscribe(id); };
}

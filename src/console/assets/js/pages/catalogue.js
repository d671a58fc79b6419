// The public catalogue (no token needed): the alliance's certified cars, each with its
// inspection report, the report's SHA-256 and how to recompute it, and the selling
// dealer's standing; the 5-day return and 24-hour complaint promises stated up front.
// Cars sold not certified (their record, not the car, failed a check) are listed too,
// labelled with each reason in words; cars barred from retail never reach this page.

import { h } from '../dom.js';
import { getLang, t } from '../i18n.js';
import { call, describe } from '../api.js';
import { inspectionTable } from './lot.js';
import { standingLine } from './account.js';

/** The report's canonical form: keys in code-point order, no white space, strings
 * escaped as JSON.stringify does (which is what RFC 8785 asks for these fields). */
export function canonical(ins) {
  const keys = ['structural_damage', 'fire', 'flood', 'odometer_tampered', 'title_transferable', 'grade', 'notes'].sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(ins[k])}`).join(',')}}`;
}

async function sha256hex(text) {
  const d = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, '0')).join('');
}

export async function show(view) {
  view.append(h('h1', t('cat.title')), h('p.promise.card#promises', t('cat.promise')));
  const err = h('p.error', { role: 'alert' });
  const list = h('div#catalogue');
  view.append(err, list);
  let after = null;
  const more = h('button#cat-more', { type: 'button', hidden: true, text: '…' });
  view.append(more);

  async function page() {
    try {
      // The catalogue is public: fetched without a token even when signed in.
      const r = await call('GET', `/v1/catalogue?include=not_certified${after ? `&after=${encodeURIComponent(after)}` : ''}`);
      if (!r.items.length && !after) list.append(h('p', t('cat.none')));
      for (const i of r.items) list.append(item(i));
      after = r.next;
      more.hidden = !after;
    } catch (e) { err.textContent = describe(e, t); }
  }

  function item(i) {
    const text = canonical(i.inspection);
    const result = h('p.verify', { role: 'status', 'aria-live': 'polite' });
    const car = i.vehicle ? `${i.vehicle.year} ${i.vehicle.make} ${i.vehicle.model}` : i.vin;
    return h('article.card.car', { 'data-item': i.id },
      h('h2', car),
      i.certified === false
        ? h('p.badge.not-certified', { role: 'note' }, h('strong', t('cat.not_certified')), ' ',
          (i.reasons ?? []).map((r) => t(`cert.${r}`)).join(' '))
        : h('p.badge.certified', t('cat.certified')),
      h('p.sub', [i.vehicle?.city, i.vehicle && t('lot.km', { km: i.vehicle.mileage_km.toLocaleString(getLang()) }), `${t('lot.vin')} ${i.vin}`].filter(Boolean).join(' · ')),
      h('p', h('strong', t('cat.dealer', { name: i.dealer.name ?? i.dealer.id })), h('br'),
        i.dealer.standing ? standingLine(i.dealer.standing) : ''),
      inspectionTable(i.inspection),
      h('p', h('span.label', `${t('cat.sha')}: `), h('code.sha', i.inspection_sha256)),
      h('details', h('summary', t('cat.how')), h('p', t('cat.how_text')), h('pre.canonical', text),
        h('button.recompute', {
          type: 'button', text: t('cat.recompute'),
          onclick: async () => {
            if (!window.crypto?.subtle) { result.textContent = t('cat.nocrypto'); return; }
            const got = await sha256hex(text);
            result.textContent = got === i.inspection_sha256 ? `${t('cat.match')} ${got}` : `${t('cat.mismatch')} ${got}`;
            result.className = got === i.inspection_sha256 ? 'verify ok' : 'verify refused';
          },
        }), result));
  }
  more.addEventListener('click', page);
  await page();
  return null;
}

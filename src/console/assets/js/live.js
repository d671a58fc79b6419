// The v1 WebSocket, kept alive for the page: one connection, reconnect with backoff,
// resubscribe (each resubscription answers with a fresh snapshot), and bids tracked by
// `bid_id` until their result comes back, across reconnects.
//
// The token goes in the `Sec-WebSocket-Protocol` header as `bearer.<token>` next to
// `gavel.v1` (a browser cannot set Authorization on a WebSocket, and a URL must never
// carry it); the server answers `gavel.v1`.

import { token } from './session.js';

const PENDING_KEY = 'gavel.pending';

function newBidId() {
  const b = new Uint8Array(9);
  crypto.getRandomValues(b);
  return 'c-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export class Live {
  constructor() {
    this.ws = null;
    this.state = 'idle'; // idle | connecting | live | down
    this.subs = new Set();
    this.listeners = new Set();
    this.attempt = 0;
    this.retryAt = 0;
    this.timer = null;
    this.req = 0;
    this.lastSeq = new Map(); // auction → highest seq applied
    // bid_id → {bid_id, auction, amount, max, state: pending|not_sent|done, sentAt, result}
    this.bids = new Map();
    try {
      for (const b of JSON.parse(sessionStorage.getItem(PENDING_KEY) || '[]')) this.bids.set(b.bid_id, b);
    } catch (_) { /* nothing pending */ }
  }

  on(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }
  emit(ev) { for (const fn of [...this.listeners]) fn(ev); }

  start() {
    if (this.ws || !token()) return;
    this.connect();
  }

  stop() {
    clearTimeout(this.timer);
    this.subs.clear();
    if (this.ws) { this.ws.onclose = null; this.ws.close(1000); this.ws = null; }
    this.setState('idle');
  }

  setState(s) {
    this.state = s;
    this.emit({ type: 'state', state: s, retryAt: this.retryAt });
  }

  connect() {
    const t = token();
    if (!t) return;
    this.setState('connecting');
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws`;
    let ws;
    try {
      ws = new WebSocket(url, ['gavel.v1', `bearer.${t}`]);
    } catch (_) {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.setState('live');
      for (const a of this.subs) this.send({ type: 'subscribe', auction: a });
      // A bid whose result never came is sent again with the same bid_id: the server
      // answers with its first result, or places it now if it never arrived.
      for (const b of this.bids.values()) {
        if (b.state === 'pending') this.sendBid(b);
      }
      this.emit({ type: 'reconnected' });
    };
    ws.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch (_) { return; }
      this.handle(m);
    };
    ws.onclose = () => {
      this.ws = null;
      this.scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  scheduleReconnect() {
    // 0.5 s, 1 s, 2 s … up to 10 s, with jitter so a restarted server is not stampeded.
    const base = Math.min(10_000, 500 * 2 ** Math.min(this.attempt, 5));
    const wait = base / 2 + Math.random() * (base / 2);
    this.attempt += 1;
    this.retryAt = Date.now() + wait;
    this.setState('down');
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.req += 1;
    this.ws.send(JSON.stringify({ req: this.req, ...msg }));
    return true;
  }

  subscribe(auction) {
    this.subs.add(auction);
    this.send({ type: 'subscribe', auction });
  }

  unsubscribe(auction) {
    if (this.subs.delete(auction)) this.send({ type: 'unsubscribe', auction });
  }

  /** Places a bid. While disconnected it is not sent, and says so: the price may have
   * moved by the time the connection is back. */
  bid(auction, amount, max) {
    const b = { bid_id: newBidId(), auction, amount, max: max ?? null, state: 'pending', sentAt: performance.now() };
    if (this.state !== 'live') {
      b.state = 'not_sent';
      this.emit({ type: 'bid', bid: b });
      return b;
    }
    this.bids.set(b.bid_id, b);
    this.save();
    this.sendBid(b);
    this.emit({ type: 'bid', bid: b });
    return b;
  }

  sendBid(b) {
    const msg = { type: 'bid', auction: b.auction, amount: b.amount, bid_id: b.bid_id };
    if (b.max !== null && b.max !== undefined) msg.max = b.max;
    b.sentAt = performance.now();
    this.send(msg);
  }

  /** Sends an `unavailable` bid again, with its bid_id (the protocol's retry). */
  retry(b) {
    b.state = 'pending';
    this.bids.set(b.bid_id, b);
    this.save();
    if (this.state === 'live') this.sendBid(b);
    this.emit({ type: 'bid', bid: b });
  }

  save() {
    const pending = [...this.bids.values()].filter((b) => b.state === 'pending');
    sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  }

  pendingFor(auction) {
    return [...this.bids.values()].filter((b) => b.auction === auction && b.state === 'pending');
  }

  handle(m) {
    if (m.type === 'update') {
      // seq only grows: an update older than one applied (or than the snapshot's) is stale.
      const last = this.lastSeq.get(m.auction) || 0;
      if (m.seq < last) return;
      this.lastSeq.set(m.auction, m.seq);
    }
    if (m.type === 'snapshot') this.lastSeq.set(m.auction.id, 0);
    if (m.type === 'bid_result') {
      const b = this.bids.get(m.bid_id);
      if (b) {
        b.state = 'done';
        b.result = m;
        b.latency = performance.now() - b.sentAt;
        this.bids.delete(m.bid_id);
        this.save();
        this.emit({ type: 'bid', bid: b });
      }
      if (m.accepted) {
        const last = this.lastSeq.get(m.auction) || 0;
        if (m.seq > last) this.lastSeq.set(m.auction, m.seq);
      }
    }
    this.emit({ type: 'message', msg: m });
  }
}

export const live = new Live();

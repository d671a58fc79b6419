// The server's clock, as seen from this browser. A countdown must be right on a machine
// whose clock is off, so the page measures the offset between its own clock and the
// server's (GET /v1/time) over a few round trips and keeps the sample with the smallest
// round trip (the least uncertainty: the server read its clock somewhere inside it).

let offset = 0; // server time − Date.now(), ms
let bestRtt = Infinity;
let synced = false;

async function sample() {
  const t0 = performance.now();
  const sent = Date.now();
  const r = await fetch('/v1/time', { cache: 'no-store' });
  const body = await r.json();
  const rtt = performance.now() - t0;
  // The browser's clock at the midpoint of the round trip.
  const mid = sent + rtt / 2;
  return { rtt, offset: body.now - mid };
}

/** Measures the offset (5 round trips); safe to call again (after a reconnect). */
export async function sync(rounds = 5) {
  let best = null;
  for (let i = 0; i < rounds; i++) {
    try {
      const s = await sample();
      if (!best || s.rtt < best.rtt) best = s;
    } catch (_) { /* offline: keep the last estimate */ }
  }
  if (best) {
    offset = best.offset;
    bestRtt = best.rtt;
    synced = true;
  }
  return synced;
}

/** The server's time now, ms since the epoch. */
export function serverNow() {
  return Date.now() + offset;
}

export function clockInfo() {
  return { offset: Math.round(offset), rtt: Math.round(bestRtt), synced };
}

/** ms → "1:02:03" / "4:05" (never negative). */
export function formatLeft(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return hh > 0 ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** An epoch time in the viewer's own time zone. */
export function formatTime(ms, lang) {
  return new Date(ms).toLocaleString(lang, {
    year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

// Money is an integer count of fen (1 yuan = 100 fen). Formatting and parsing work on
// integers (BigInt), never on floats, so every fen shown is the fen the server sent.

const MAX_AMOUNT = 1_000_000_000_000n; // 10^12 fen, the contract's cap

/** 5250000 → "¥52,500.00" */
export function formatFen(fen) {
  if (fen === null || fen === undefined) return '—';
  let n = BigInt(fen);
  const neg = n < 0n;
  if (neg) n = -n;
  const yuan = (n / 100n).toString();
  const cents = (n % 100n).toString().padStart(2, '0');
  const grouped = yuan.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${neg ? '-' : ''}¥${grouped}.${cents}`;
}

/** Yuan as typed ("52500", "52,500.5", "¥52500.05") → fen as a Number, or null. */
export function parseYuan(text) {
  const t = String(text).trim().replace(/^¥/, '').replace(/,/g, '');
  const m = /^(\d{1,13})(?:\.(\d{1,2}))?$/.exec(t);
  if (!m) return null;
  const fen = BigInt(m[1]) * 100n + BigInt((m[2] || '').padEnd(2, '0'));
  if (fen > MAX_AMOUNT) return null;
  return Number(fen); // ≤ 10^12 < 2^53: exact
}

/** Fen → the yuan text an input shows ("52500.00" → "52500", "52500.50"). */
export function fenToInput(fen) {
  const n = BigInt(fen);
  const cents = n % 100n;
  return cents === 0n ? (n / 100n).toString() : `${n / 100n}.${cents.toString().padStart(2, '0')}`;
}

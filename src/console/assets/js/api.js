// HTTP calls to the v1 API with the session's token; errors become ApiError with the
// contract's code and a message for people.

import { token } from './session.js';

export class ApiError extends Error {
  constructor(status, code, message, fields) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields || [];
  }
}

export async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, {
      method, headers, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (_) {
    throw new ApiError(0, 'network', 'network');
  }
  let data = null;
  const text = await r.text();
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = null; }
  }
  if (r.ok) return data;
  if (r.status === 422 && data && Array.isArray(data.errors)) {
    throw new ApiError(422, 'invalid_fields', 'invalid_fields', data.errors);
  }
  const e = (data && data.error) || {};
  throw new ApiError(r.status, e.code || `http_${r.status}`, e.message || '');
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body ?? {});

/** An error in words, with what to do. */
export function describe(e, t) {
  const code = e && e.code;
  if (code === 'network') return t('err.network');
  if (code === 'unavailable' || (e && e.status === 503)) return t('err.unavailable');
  if (code === 'unauthorized' || (e && e.status === 401)) return t('err.unauthorized');
  if (code === 'forbidden') return t('err.forbidden');
  if (code === 'not_found') return t('err.not_found');
  if (code === 'wrong_state') return t('err.wrong_state');
  return t('err.generic', { code: code || 'unknown' });
}

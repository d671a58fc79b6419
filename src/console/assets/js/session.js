// The bearer token: pasted once (or taken from a demo link's fragment), kept in this
// tab's session storage, sent only as `Authorization` and as the WebSocket's `bearer.`
// subprotocol. Never in a URL's path or query, never shown after sign-in, never logged.

const KEY = 'gavel.token';

export function token() {
  return sessionStorage.getItem(KEY);
}

export function signIn(t) {
  const clean = String(t).trim();
  if (clean) sessionStorage.setItem(KEY, clean);
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem('gavel.pending');
}

/** A demo sign-in link carries `#token=…` in the fragment (never sent to the server):
 * take it and clear it from the address bar at once. */
export function takeTokenFromFragment() {
  const m = /^#token=([^&]+)(?:&go=([\w/-]+))?/.exec(location.hash);
  if (!m) return false;
  signIn(decodeURIComponent(m[1]));
  history.replaceState(null, '', `${location.pathname}#/${m[2] ? m[2].replace(/^\//, '') : ''}`);
  return true;
}

// Sign-in: paste a token once; it goes to this tab's session storage, never to a URL.

import { h } from '../dom.js';
import { t } from '../i18n.js';
import { signIn, signOut } from '../session.js';

const landing = { dealer: 'board', seller: 'seller', admin: 'operator', service: 'catalogue' };

export async function show(view, _args, app) {
  if (app.me) {
    view.append(h('h1', t('home.title')),
      h('p', t('home.signedin', { name: app.me.name ?? '', role: t(`role.${app.me.role}`) })),
      h('p', h('a', { href: `#/${landing[app.me.role]}`, text: t(`nav.${landing[app.me.role]}`) })));
    return null;
  }
  const input = h('input#token', { type: 'password', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'token-help token-error' });
  const error = h('p.field-error#token-error', { role: 'alert' });
  const form = h('form.card', {
    onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = '';
      signIn(input.value);
      const me = await app.signedIn();
      if (!me) {
        signOut();
        error.textContent = t('home.bad');
        input.focus();
        return;
      }
      location.hash = `#/${landing[me.role]}`;
    },
  },
  h('label', { for: 'token', text: t('home.token') }), input,
  h('p.help#token-help', t('home.intro')), error,
  h('button#signin', { type: 'submit', text: t('home.signin') }));
  view.append(h('h1', t('home.title')), form,
    h('p', h('a', { href: '#/catalogue', text: t('home.public') })));
  return null;
}

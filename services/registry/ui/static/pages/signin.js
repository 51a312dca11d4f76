// The sign-in page: username and password through the session login; afterwards back to `next`.
import { h } from '../lib/dom.js';
import { signIn } from '../lib/api.js';
import { errorBox, field } from '../lib/components.js';

/** Only a hash inside this UI may be a destination (never another site). */
function safeNext(next) {
  return next && next.startsWith('#/') && !next.startsWith('#/signin') ? next : '#/repositories';
}

export async function render(root, params, ctx) {
  const next = safeNext(params.query.get('next'));
  if (ctx.user) {
    ctx.navigate(next);
    return;
  }
  const username = h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const errors = h('div', { 'aria-live': 'assertive' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'signin-form' },
    h('h1', {}, 'Sign in to Quayside'),
    params.query.get('next') ? h('p', { class: 'hint' }, 'Your session has ended or you are not signed in. Sign in to continue.') : null,
    field('Username', username),
    field('Password', password),
    errors,
    submit,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errors.replaceChildren();
    submit.disabled = true;
    try {
      await signIn(username.value, password.value);
      location.hash = next;
    } catch (error) {
      errors.append(errorBox(error.body?.invalidCredentials ? { detail: 'Invalid username or password.' } : error));
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  root.append(h('section', { class: 'signin' }, form));
  username.focus();
}

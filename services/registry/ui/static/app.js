// The shell: hash router, top bar, navigation, user menu (theme, sign out), global message and
// read-only banners, and the sign-in redirect that brings the user back to the page they were on.
import { h, clear } from './lib/dom.js';
import { api, ApiError, currentUser, signOut } from './lib/api.js';
import { errorBox, loading, toast } from './lib/components.js';

const ROUTE_FILES = ['./routes_repository.js', './routes_organization.js'];
const THEME_KEY = 'quayside-theme';
const THEMES = [
  { id: 'light', label: 'Light theme' },
  { id: 'dark', label: 'Dark theme' },
  { id: 'auto', label: 'Device-based theme' },
];
const SIGNIN_ROUTE = {
  pattern: '/signin',
  load: () => import('./pages/signin.js'),
  title: 'Sign in',
  public: true,
};

let routes = [];
let renderCount = 0;

/** '/repository/:ns/:repo*' → a RegExp and the parameter names (':x*' may contain slashes). */
function compile(pattern) {
  const names = [];
  const source = pattern
    .split('/')
    .map((part) => {
      if (!part.startsWith(':')) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const greedy = part.endsWith('*');
      names.push(part.slice(1, greedy ? -1 : undefined));
      return greedy ? '(.+?)' : '([^/]+)';
    })
    .join('/');
  return { regex: new RegExp(`^${source}/?$`), names };
}

async function loadRoutes() {
  const loaded = await Promise.allSettled(ROUTE_FILES.map((file) => import(file)));
  const list = [SIGNIN_ROUTE];
  for (const result of loaded) {
    if (result.status === 'fulfilled') list.push(...result.value.routes);
    else console.error('route file failed to load', result.reason);
  }
  routes = list.map((route) => ({ ...route, ...compile(route.pattern) }));
}

/** The current hash split into path and query: '#/a/b?tab=x' → ['/a/b', URLSearchParams]. */
export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?', 2);
  return [path || '/', new URLSearchParams(query)];
}

function match(path) {
  for (const route of routes) {
    const found = route.regex.exec(path);
    if (!found) continue;
    const params = {};
    route.names.forEach((name, index) => {
      params[name] = decodeURIComponent(found[index + 1]);
    });
    return { route, params };
  }
  return null;
}

function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

/** Change the current hash's query without re-rendering (tabs, filters), keeping history tidy. */
function replaceQuery(values) {
  const [path, query] = parseHash();
  for (const [key, value] of Object.entries(values)) {
    if (value === null || value === undefined || value === '') query.delete(key);
    else query.set(key, value);
  }
  const text = query.toString();
  history.replaceState(null, '', `#${path}${text ? `?${text}` : ''}`);
}

function applyTheme(theme) {
  if (theme === 'auto') document.documentElement.removeAttribute('data-theme');
  else document.documentElement.setAttribute('data-theme', theme);
}

function storedTheme() {
  const theme = localStorage.getItem(THEME_KEY);
  return THEMES.some((item) => item.id === theme) ? theme : 'auto';
}

function themeChooser() {
  const current = storedTheme();
  return h(
    'fieldset',
    { class: 'theme-chooser' },
    h('legend', {}, 'Appearance'),
    THEMES.map((theme) =>
      h(
        'label',
        { class: 'radio' },
        h('input', {
          type: 'radio',
          name: 'theme',
          value: theme.id,
          checked: theme.id === current,
          onchange: () => {
            localStorage.setItem(THEME_KEY, theme.id);
            applyTheme(theme.id);
          },
        }),
        theme.label,
      ),
    ),
  );
}

function userMenu(user, activePath) {
  if (!user) return activePath === '/signin' ? null : h('a', { href: '#/signin', class: 'button secondary' }, 'Sign in');
  const signOutButton = h('button', { type: 'button', class: 'secondary' }, 'Sign out');
  signOutButton.addEventListener('click', async () => {
    await signOut();
    location.hash = '#/signin';
  });
  return h(
    'details',
    { class: 'user-menu' },
    h('summary', { 'aria-label': `User menu for ${user.username}` }, user.username),
    h('div', { class: 'menu-panel' }, themeChooser(), signOutButton),
  );
}

function navigation(user, activePath) {
  // Entries marked `superuser` only for superusers (the pages check again through the API).
  const shown = (route) => route.nav && (!route.nav.superuser || user.super_user);
  const entries = routes.filter(shown).sort((a, b) => a.nav.order - b.nav.order);
  return h(
    'nav',
    { class: 'side-nav', 'aria-label': 'Main' },
    h(
      'ul',
      {},
      entries.map((route) =>
        h(
          'li',
          {},
          h(
            'a',
            {
              href: `#${route.pattern}`,
              'aria-current': activePath.startsWith(route.pattern) ? 'page' : false,
            },
            route.nav.label,
          ),
        ),
      ),
    ),
  );
}

async function banners() {
  const region = h('div', { class: 'banners' });
  try {
    const { messages } = await api('GET', '/messages');
    for (const message of messages) {
      const kind = ['warning', 'error'].includes(message.severity) ? message.severity : 'info';
      region.append(h('div', { class: `banner banner-${kind}`, role: kind === 'info' ? 'status' : 'alert' }, message.content));
    }
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
  }
  return region;
}

function shell(user, activePath) {
  const main = h('main', { id: 'main', tabindex: '-1' });
  const top = h(
    'header',
    { class: 'top-bar' },
    h('a', { class: 'skip-link', href: '#main', onclick: (event) => { event.preventDefault(); main.focus(); } }, 'Skip to content'),
    h('a', { class: 'brand', href: '#/repositories' }, 'Quayside'),
    h('div', { class: 'top-bar-end' }, userMenu(user, activePath)),
  );
  const bannerSlot = h('div', { class: 'banner-slot' });
  banners().then((region) => bannerSlot.replaceWith(region));
  const layout = h('div', { class: user ? 'layout' : 'layout no-nav' }, user ? navigation(user, activePath) : null, main);
  return { root: h('div', { class: 'app' }, top, bannerSlot, layout), main };
}

async function render() {
  const count = ++renderCount;
  const [path, query] = parseHash();
  if (path === '/') {
    location.replace('#/repositories');
    return;
  }
  const app = document.getElementById('app');
  let user;
  try {
    user = await currentUser();
  } catch (error) {
    clear(app).append(errorBox(error));
    return;
  }
  const found = match(path);
  if (found && !found.route.public && !user) {
    location.replace(`#/signin?next=${encodeURIComponent(location.hash)}`);
    return;
  }
  const { root, main } = shell(user, path);
  if (count !== renderCount) return;
  clear(app).append(root);
  if (!found) {
    document.title = 'Not found · Quayside';
    main.append(h('h1', {}, 'Page not found'), h('p', {}, h('a', { href: '#/repositories' }, 'Go to repositories')));
    return;
  }
  document.title = `${found.route.title} · Quayside`;
  main.append(loading());
  const ctx = { user, navigate, refresh: render, replaceQuery };
  try {
    const page = await found.route.load();
    if (count !== renderCount) return;
    clear(main);
    await page.render(main, { ...found.params, query }, ctx);
  } catch (error) {
    if (count !== renderCount) return;
    if (error instanceof ApiError && error.status === 401) return;
    clear(main).append(errorBox(error));
    if (!(error instanceof ApiError)) console.error(error);
  }
}

// An action's API error nobody caught (a button's handler) is shown to the user; a 401 has already
// sent them to sign in. Other errors are bugs: left to the console.
window.addEventListener('unhandledrejection', (event) => {
  if (!(event.reason instanceof ApiError)) return;
  event.preventDefault();
  if (event.reason.status !== 401) toast(event.reason.detail, 'error');
});

applyTheme(storedTheme());
window.addEventListener('hashchange', render);
loadRoutes().then(render);

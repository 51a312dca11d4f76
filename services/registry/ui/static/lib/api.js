// The one way the UI talks to the registry: the same /api/v1 that scripts use, with the
// session cookie and the session's CSRF token (docs/api-login.md).

const API_ROOT = '/api/v1';
const CSRF_REFUSED = 'CSRF token was invalid or missing.';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

let csrfToken = null;
let userPromise = null;

/** An /api/v1 error answer: status and Quay's `detail` string. */
export class ApiError extends Error {
  constructor(status, detail, body = null) {
    super(detail);
    this.name = 'ApiError';
    this.status = status;
    this.detail = detail;
    this.body = body;
  }
}

async function fetchCsrfToken() {
  const response = await fetch('/csrf_token', { credentials: 'same-origin', cache: 'no-store' });
  if (!response.ok) throw new ApiError(response.status, 'Could not get a CSRF token.');
  csrfToken = (await response.json()).csrf_token;
  return csrfToken;
}

async function send(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (!SAFE_METHODS.has(method)) headers['X-CSRF-Token'] = csrfToken || (await fetchCsrfToken());
  const response = await fetch(API_ROOT + path, {
    method,
    headers,
    credentials: 'same-origin',
    cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const next = response.headers.get('X-Next-CSRF-Token');
  if (next) csrfToken = next;
  return response;
}

async function errorFrom(response) {
  let parsed = null;
  try {
    parsed = await response.json();
  } catch {
    // Not JSON (a proxy's error page): the status text says enough.
  }
  const detail = parsed && typeof parsed.detail === 'string' ? parsed.detail : response.statusText;
  return new ApiError(response.status, detail || `HTTP ${response.status}`, parsed);
}

/** The hash to come back to after signing in: where the user is now (never the sign-in page). */
export function currentHash() {
  const hash = location.hash || '#/';
  return hash.startsWith('#/signin') ? '#/' : hash;
}

/** Send the browser to the sign-in page, remembering the current page in `next`. */
export function redirectToSignin() {
  userPromise = Promise.resolve(null);
  if (location.hash.startsWith('#/signin')) return;
  location.hash = `#/signin?next=${encodeURIComponent(currentHash())}`;
}

async function request(method, path, body, { redirectOn401 = true } = {}) {
  let response = await send(method, path, body);
  if (response.status === 403 && !SAFE_METHODS.has(method)) {
    // The session may have changed since the token was read (a sign-in in another tab): retry once.
    const error = await errorFrom(response.clone());
    if (error.detail === CSRF_REFUSED) {
      await fetchCsrfToken();
      response = await send(method, path, body);
    }
  }
  if (response.status === 401) {
    if (redirectOn401) redirectToSignin();
    throw await errorFrom(response);
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/**
 * Call `method` on `/api/v1` + path with an optional JSON body; the parsed JSON answer (null for
 * 204). Throws ApiError; a 401 (no session, or it expired) also sends the user to the sign-in page.
 */
export async function api(method, path, body = undefined) {
  return request(method, path, body);
}

/** The signed-in user (GET /api/v1/user/), cached; null when anonymous. */
export function currentUser() {
  if (!userPromise) {
    userPromise = request('GET', '/user/', undefined, { redirectOn401: false }).catch((error) => {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return null;
      userPromise = null;
      throw error;
    });
  }
  return userPromise;
}

/** Forget the cached user (after signing in or out). */
export function forgetUser() {
  userPromise = null;
}

/** Open a session: POST /api/v1/signin with a fresh CSRF token. Throws ApiError on failure. */
export async function signIn(username, password) {
  await fetchCsrfToken();
  await request('POST', '/signin', { username, password }, { redirectOn401: false });
  forgetUser();
  return currentUser();
}

/** End the session server-side. */
export async function signOut() {
  try {
    await request('POST', '/signout', undefined, { redirectOn401: false });
  } finally {
    csrfToken = null;
    userPromise = Promise.resolve(null);
  }
}

/** A path segment or query value, encoded; repository names keep their slashes. */
export function repoPath(namespace, name) {
  const encoded = String(name).split('/').map(encodeURIComponent).join('/');
  return `/repository/${encodeURIComponent(namespace)}/${encoded}`;
}

// Components of the organization, team, robot, logs and superuser pages that the shared
// components.js does not have: a dialog with a free-form body, a typed-"confirm" bulk delete with
// search, an entity picker, role selects, a quota meter and a "secret shown once" dialog.
// Everything is built with h(): user-supplied text only ever becomes text nodes or attributes.

import { h } from './dom.js';
import { api, ApiError } from './api.js';
import { copyButton, errorBox, field, formatBytes } from './components.js';

/** Repository roles as the API names them, with the labels the pages show. */
export const ROLE_LABELS = { read: 'Read', write: 'Write', admin: 'Admin' };

/** Team roles (Quay's): members read what the team is given, creators also create repositories. */
export const TEAM_ROLE_LABELS = { member: 'Member', creator: 'Creator', admin: 'Admin' };

/** Quote a path segment of /api/v1. */
export const seg = (value) => encodeURIComponent(value);

let dialogCounter = 0;

/** A <select> with the given {value: label} choices; `value` is preselected. */
export function choiceSelect(choices, value, props = {}) {
  return h(
    'select',
    props,
    Object.entries(choices).map(([key, label]) =>
      h('option', { value: key, selected: key === value }, label),
    ),
  );
}

/** A role select; withNone adds "None" (value ''), meaning "no permission". */
export function roleSelect(value = 'read', { withNone = false, ...props } = {}) {
  const choices = withNone ? { '': 'None', ...ROLE_LABELS } : ROLE_LABELS;
  return choiceSelect(choices, value ?? '', props);
}

/** The message of an error for a person: Quay's `detail` of an ApiError, else the error's text. */
export function errorText(error) {
  if (error instanceof ApiError) return error.detail || error.message;
  return error && error.message ? error.message : String(error);
}

/**
 * A modal <dialog> holding `body` (a Node or array of Nodes). Submitting runs `onSubmit()`; when it
 * throws, the error is shown in the dialog and it stays open; otherwise the dialog closes and the
 * promise resolves with onSubmit's result (true when it answers nothing). Cancel (button or
 * Escape) resolves with null. Focus moves into the dialog and back to where it was when it closes.
 */
export function openDialog({
  title,
  body,
  submitText = 'Save',
  cancelText = 'Cancel',
  onSubmit,
  danger = false,
}) {
  return new Promise((resolve) => {
    const previous = document.activeElement;
    const titleId = `org-dialog-title-${++dialogCounter}`;
    const errorSlot = h('div', { class: 'dialog-errors', 'aria-live': 'assertive' });
    const submit = h('button', { type: 'submit', class: danger ? 'danger' : 'primary' }, submitText);
    const finish = (value) => {
      dialog.close();
      dialog.remove();
      if (previous && typeof previous.focus === 'function') previous.focus();
      resolve(value);
    };
    const form = h(
      'form',
      {
        class: 'org-dialog-form',
        onsubmit: async (event) => {
          event.preventDefault();
          errorSlot.replaceChildren();
          submit.disabled = true;
          try {
            const result = onSubmit ? await onSubmit() : true;
            finish(result ?? true);
          } catch (error) {
            errorSlot.replaceChildren(h('div', { class: 'error-box', role: 'alert' }, errorText(error)));
          } finally {
            submit.disabled = false;
          }
        },
      },
      h('h2', { id: titleId }, title),
      h('div', { class: 'org-dialog-body' }, body),
      errorSlot,
      h(
        'div',
        { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => finish(null) }, cancelText),
        submit,
      ),
    );
    const dialog = h('dialog', { class: 'org-dialog', 'aria-labelledby': titleId }, form);
    dialog.addEventListener('cancel', (event) => {
      event.preventDefault();
      finish(null);
    });
    document.body.append(dialog);
    dialog.showModal();
    const first = form.querySelector('input, select, textarea, button[type="submit"]');
    if (first) first.focus();
  });
}

/**
 * Confirm deleting several things at once, Quay's way: the names listed (searchable, so that one can
 * check a given name is among them), and the word "confirm" typed before Delete is enabled.
 * Resolves true when confirmed.
 */
export async function bulkDeleteDialog({ title, noun, names }) {
  const typed = h('input', { type: 'text', autocomplete: 'off', name: 'confirm' });
  const search = h('input', { type: 'search', autocomplete: 'off', name: 'search' });
  const items = names.map((name) => h('li', {}, name));
  const list = h('ul', { class: 'org-delete-list' }, items);
  search.addEventListener('input', () => {
    const needle = search.value.trim().toLowerCase();
    items.forEach((item, index) => {
      item.hidden = needle !== '' && !names[index].toLowerCase().includes(needle);
    });
  });
  const count = names.length === 1 ? `1 ${noun}` : `${names.length} ${noun}s`;
  const body = [
    h('p', {}, `This permanently deletes ${count}:`),
    field('Search', search),
    list,
    field('Type "confirm" to delete', typed),
  ];
  const result = await openDialog({
    title,
    body,
    submitText: 'Delete',
    danger: true,
    onSubmit: async () => {
      if (typed.value.trim() !== 'confirm') throw new Error('Type "confirm" in the box to delete.');
      return true;
    },
  });
  return result === true;
}

/** Show a secret (a robot token, a generated password) with a copy button; it is never shown again. */
export async function secretDialog({ title, label, secret, note }) {
  const value = h('input', { type: 'text', readonly: true, value: secret, class: 'org-secret' });
  await openDialog({
    title,
    body: [h('p', {}, note), field(label, value), copyButton(secret, `Copy ${label.toLowerCase()}`)],
    submitText: 'Done',
    cancelText: 'Close',
  });
}

/**
 * A text input suggesting users, robots and (with teams) teams of `namespace` as one types
 * (GET /entities/{prefix}). `kindOf(name)` tells what a suggested name was: 'team', 'robot', 'user',
 * or undefined for a name typed without picking a suggestion.
 */
export function entityInput({ namespace, teams = false, robots = true, users = true, name = 'entity' }) {
  const listId = `org-entities-${++dialogCounter}`;
  const datalist = h('datalist', { id: listId });
  const input = h('input', { type: 'text', name, list: listId, autocomplete: 'off', spellcheck: 'false' });
  const kinds = new Map();
  let pending = 0;
  input.addEventListener('input', async () => {
    const prefix = input.value.trim();
    const ticket = ++pending;
    if (prefix.length < 1) return;
    const query = new URLSearchParams({ namespace, includeTeams: String(teams) });
    let results = [];
    try {
      results = (await api('GET', `/entities/${seg(prefix)}?${query}`)).results;
    } catch {
      return; // suggestions are a convenience: the name typed is still submitted
    }
    if (ticket !== pending) return;
    const wanted = results.filter((entity) => {
      if (entity.kind === 'team') return teams;
      if (entity.kind === 'user') return entity.is_robot ? robots : users;
      return false;
    });
    datalist.replaceChildren(
      ...wanted.map((entity) => {
        const kind = entity.kind === 'team' ? 'team' : entity.is_robot ? 'robot' : 'user';
        kinds.set(entity.name, kind);
        return h('option', { value: entity.name, label: `${entity.name} (${kind})` });
      }),
    );
  });
  return {
    element: h('span', { class: 'org-entity' }, input, datalist),
    input,
    kindOf: (value) => kinds.get(value),
  };
}

/**
 * The usage of a namespace against its quota: a <meter> with the figures in IEC units.
 * `limitBytes` null means no quota (the usage alone is shown).
 */
export function quotaMeter(usedBytes, limitBytes) {
  if (limitBytes == null) {
    return h('p', { class: 'org-quota-text' }, `${formatBytes(usedBytes)} used, no quota`);
  }
  const percent = limitBytes > 0 ? Math.round((usedBytes / limitBytes) * 100) : 0;
  const text = `${formatBytes(usedBytes)} of ${formatBytes(limitBytes)} (${percent} %)`;
  return h(
    'div',
    { class: 'org-quota' },
    h('meter', {
      min: 0,
      max: limitBytes,
      value: Math.min(usedBytes, limitBytes),
      low: Math.round(limitBytes * 0.8),
      high: Math.round(limitBytes * 0.95),
      optimum: 0,
      'aria-label': `Quota usage: ${text}`,
      class: 'org-quota-meter',
    }),
    h('span', { class: 'org-quota-text' }, text),
  );
}

/** A small section with a heading, for the panels of a tab. */
export function section(title, ...children) {
  return h('section', { class: 'org-section' }, h('h2', {}, title), ...children);
}

/** A row of action buttons. */
export function actions(...buttons) {
  return h('div', { class: 'org-actions' }, ...buttons);
}

/** The small action buttons of a table row. */
export function rowActions(...buttons) {
  return h('div', { class: 'org-actions small' }, ...buttons);
}

/** A <button type="button"> running `onclick`; a secondary button unless props give a class. */
export function button(label, onclick, props = {}) {
  return h('button', { type: 'button', class: 'secondary', onclick, ...props }, label);
}

/** Every page of a paginated /api/v1 list (`next_page` tokens), concatenated; `key` names the list. */
export async function allPages(path, key, limit = 20) {
  const items = [];
  let next = null;
  for (let page = 0; page < limit; page += 1) {
    const separator = path.includes('?') ? '&' : '?';
    const answer = await api('GET', next ? `${path}${separator}next_page=${seg(next)}` : path);
    items.push(...answer[key]);
    next = answer.next_page;
    if (!next) break;
  }
  return items;
}

/** The repositories of a namespace (names), every page. */
export async function namespaceRepositories(namespace) {
  const repositories = await allPages(`/repository?namespace=${seg(namespace)}`, 'repositories');
  return repositories.map((repository) => repository.name);
}

/** A tab's render function whose failure is shown in its panel instead of being lost. */
export function guarded(render) {
  return async (panel) => {
    try {
      await render(panel);
    } catch (error) {
      panel.append(errorBox(error));
    }
  };
}

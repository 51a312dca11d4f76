// Shared widgets: dialogs, tables, tabs, messages and formatting. All built with h() (no HTML strings).
import { h, clear } from './dom.js';

let fieldCounter = 0;
function nextId(prefix) {
  fieldCounter += 1;
  return `${prefix}-${fieldCounter}`;
}

/** A <label> wrapping its text and the input, so every input is labelled. */
export function field(label, input) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), input);
}

/** A spinner with an accessible name. */
export function loading() {
  return h('p', { class: 'loading', role: 'status' }, 'Loading…');
}

/** The page's <h1> and its action buttons. */
export function pageHeader(title, ...actions) {
  return h('header', { class: 'page-header' }, h('h1', {}, title), h('div', { class: 'actions' }, ...actions));
}

/** An error in a box with role=alert: ApiError's detail, or the error's message. */
export function errorBox(error) {
  const text = error && (error.detail || error.message) ? error.detail || error.message : String(error);
  return h('div', { class: 'error-box', role: 'alert' }, text);
}

function toastRegion() {
  let region = document.getElementById('toasts');
  if (!region) {
    region = h('div', { id: 'toasts', class: 'toasts', 'aria-live': 'polite' });
    document.body.append(region);
  }
  return region;
}

const MAX_TOASTS = 3;

/** A short message at the corner of the screen ('info' or 'error'), gone after a few seconds. */
export function toast(message, kind = 'info') {
  const item = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  const region = toastRegion();
  while (region.childElementCount >= MAX_TOASTS) region.firstElementChild.remove();
  region.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 10000 : 5000);
  return item;
}

/** A button copying text to the clipboard (falls back to selecting a hidden field). */
export function copyButton(text, label = 'Copy') {
  const button = h('button', { type: 'button', class: 'copy', 'aria-label': `${label}: ${text}` }, label);
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = h('textarea', { class: 'offscreen', 'aria-hidden': 'true' }, text);
      document.body.append(area);
      area.select();
      document.execCommand('copy');
      area.remove();
    }
    button.textContent = 'Copied';
    button.dataset.copied = text;
    setTimeout(() => {
      button.textContent = label;
    }, 2000);
  });
  return button;
}

const IEC_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** A byte count in IEC units (1 KiB = 1024 B), the one unit system of the UI. */
export function formatBytes(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
  let value = Number(n);
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < IEC_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${IEC_UNITS[unit]}`;
}

const TIME_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** Parse an ISO string, epoch seconds, or Quay's RFC 2822 date into a Date (null if unparsable). */
export function parseTime(value) {
  if (value === null || value === undefined || value === '') return null;
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** A time (ISO string, epoch seconds or RFC 2822) for people: "Nov 15, 2023, 2:26 PM". */
export function formatTime(value) {
  const date = parseTime(value);
  return date ? TIME_FORMAT.format(date) : '—';
}

function openDialog(dialog, initialFocus) {
  const opener = document.activeElement;
  document.body.append(dialog);
  dialog.showModal();
  (initialFocus || dialog.querySelector('input, select, textarea, button'))?.focus();
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (opener && opener.isConnected) opener.focus();
  });
}

/**
 * A modal asking to confirm; resolves true when confirmed. With requireTyped (e.g. 'confirm'),
 * the confirm button stays disabled until the user has typed exactly that word.
 */
export function confirmDialog({ title, message, confirmText = 'Delete', requireTyped = null }) {
  return new Promise((resolve) => {
    let confirmed = false;
    const confirmButton = h('button', { type: 'submit', class: 'danger', disabled: requireTyped !== null }, confirmText);
    const typed = requireTyped
      ? h('input', { type: 'text', name: 'typed', autocomplete: 'off', spellcheck: 'false' })
      : null;
    typed?.addEventListener('input', () => {
      confirmButton.disabled = typed.value !== requireTyped;
    });
    const titleId = nextId('dialog-title');
    const form = h(
      'form',
      { method: 'dialog' },
      h('h2', { id: titleId }, title),
      typeof message === 'string' ? h('p', {}, message) : message,
      typed ? field(`Type ${requireTyped} to continue`, typed) : null,
      h(
        'div',
        { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Cancel'),
        confirmButton,
      ),
    );
    const dialog = h('dialog', { 'aria-labelledby': titleId }, form);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (requireTyped && typed.value !== requireTyped) return;
      confirmed = true;
      dialog.close();
    });
    dialog.addEventListener('close', () => resolve(confirmed));
    openDialog(dialog, typed || confirmButton);
  });
}

function optionList(options, value) {
  return (options || []).map((option) => {
    const item = typeof option === 'object' ? option : { value: option, label: option };
    return h('option', { value: item.value, selected: String(item.value) === String(value) }, item.label);
  });
}

function inputFor(spec) {
  const { name, type = 'text', value = '', options, required = false, placeholder = null } = spec;
  if (type === 'select') return h('select', { name, required }, optionList(options, value));
  if (type === 'textarea') return h('textarea', { name, required, placeholder, rows: 4 }, value);
  if (type === 'checkbox') return h('input', { type, name, checked: Boolean(value) });
  return h('input', { type, name, value, required, placeholder, autocomplete: type === 'password' ? 'new-password' : 'off' });
}

function valueOf(input) {
  return input.type === 'checkbox' ? input.checked : input.value;
}

/**
 * A modal form. Fields: [{name, label, type='text', value='', options?, required?, placeholder?,
 * validate?: (value, values) => error string or null}]. Resolves with {name: value} on submit, null on
 * cancel. With onSubmit(values) (async), the dialog stays open showing its error until it succeeds,
 * and resolves with what it returned.
 */
export function formDialog({ title, fields, submitText = 'Save', onSubmit = null, description = null }) {
  return new Promise((resolve) => {
    let result = null;
    const inputs = fields.map((spec) => [spec, inputFor(spec)]);
    const errors = h('div', { class: 'dialog-errors', 'aria-live': 'assertive' });
    const submit = h('button', { type: 'submit', class: 'primary' }, submitText);
    const titleId = nextId('dialog-title');
    const form = h(
      'form',
      { method: 'dialog', novalidate: true },
      h('h2', { id: titleId }, title),
      description ? h('p', {}, description) : null,
      inputs.map(([spec, input]) => field(spec.label, input)),
      errors,
      h(
        'div',
        { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Cancel'),
        submit,
      ),
    );
    const dialog = h('dialog', { 'aria-labelledby': titleId }, form);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clear(errors);
      const values = Object.fromEntries(inputs.map(([spec, input]) => [spec.name, valueOf(input)]));
      const problems = inputs
        .map(([spec, input]) => {
          if (spec.required && !valueOf(input)) return `${spec.label} is required.`;
          return spec.validate ? spec.validate(valueOf(input), values) : null;
        })
        .filter(Boolean);
      if (problems.length) {
        errors.append(...problems.map((problem) => errorBox(problem)));
        return;
      }
      if (!onSubmit) {
        result = values;
        dialog.close();
        return;
      }
      submit.disabled = true;
      try {
        result = (await onSubmit(values)) ?? values;
        dialog.close();
      } catch (error) {
        errors.append(errorBox(error));
      } finally {
        submit.disabled = false;
      }
    });
    dialog.addEventListener('close', () => resolve(result));
    openDialog(dialog);
  });
}

/**
 * A table of rows. columns: [{key, label, render?: (row) => Node|string}]. With selectable, each row
 * gets a labelled checkbox and a select-all box; selected() returns the checked rows.
 */
export function dataTable({ columns, rows, selectable = false, emptyText = 'Nothing here yet.', caption = null, rowKey = null }) {
  const boxes = [];
  const head = h(
    'tr',
    {},
    selectable
      ? h(
          'th',
          { scope: 'col', class: 'select' },
          h('input', {
            type: 'checkbox',
            'aria-label': 'Select all',
            onchange: (event) => boxes.forEach(([box]) => {
              box.checked = event.target.checked;
            }),
          }),
        )
      : null,
    columns.map((column) => h('th', { scope: 'col' }, column.label)),
  );
  const body = rows.map((row) => {
    const cells = columns.map((column) => h('td', { 'data-label': column.label }, column.render ? column.render(row) : (row[column.key] ?? '')));
    let select = null;
    if (selectable) {
      const label = rowKey ? rowKey(row) : String(row[columns[0].key]);
      const box = h('input', { type: 'checkbox', 'aria-label': `Select ${label}` });
      boxes.push([box, row]);
      select = h('td', { class: 'select' }, box);
    }
    return h('tr', {}, select, cells);
  });
  const table = h(
    'table',
    { class: 'data-table' },
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, head),
    h('tbody', {}, body),
  );
  const element = rows.length ? h('div', { class: 'table-wrap' }, table) : h('p', { class: 'empty' }, emptyText);
  return { element, selected: () => boxes.filter(([box]) => box.checked).map(([, row]) => row) };
}

/**
 * Tabs: [{id, label, render: (panel) => void}]; the active one rendered into its panel. Arrow keys
 * move between tabs; onChange(id) is called when the user picks another.
 */
export function tabs(list, activeId, onChange) {
  const container = h('div', { class: 'tabs' });
  const bar = h('div', { role: 'tablist', class: 'tab-bar' });
  const panel = h('div', { role: 'tabpanel', class: 'tab-panel', tabindex: '0' });
  const buttons = list.map((tab) =>
    h(
      'button',
      {
        type: 'button',
        role: 'tab',
        id: `tab-${tab.id}`,
        'aria-selected': tab.id === activeId ? 'true' : 'false',
        tabindex: tab.id === activeId ? '0' : '-1',
        onclick: () => select(tab.id, true),
      },
      tab.label,
    ),
  );
  function select(id, byUser) {
    const tab = list.find((item) => item.id === id) || list[0];
    buttons.forEach((button, index) => {
      const active = list[index].id === tab.id;
      button.setAttribute('aria-selected', active ? 'true' : 'false');
      button.tabIndex = active ? 0 : -1;
    });
    panel.setAttribute('aria-labelledby', `tab-${tab.id}`);
    clear(panel);
    tab.render(panel);
    if (byUser && onChange) onChange(tab.id);
  }
  bar.addEventListener('keydown', (event) => {
    const index = buttons.indexOf(document.activeElement);
    if (index < 0 || (event.key !== 'ArrowRight' && event.key !== 'ArrowLeft')) return;
    const next = (index + (event.key === 'ArrowRight' ? 1 : buttons.length - 1)) % buttons.length;
    buttons[next].focus();
    select(list[next].id, true);
  });
  bar.append(...buttons);
  container.append(bar, panel);
  select(activeId, false);
  return container;
}

/** Run an async renderer; an error it throws (other than 401, which goes to sign-in) is shown in panel. */
export function settle(panel, promise) {
  return Promise.resolve(promise).catch((error) => {
    if (error && error.status === 401) return;
    panel.append(errorBox(error));
    if (!error || error.status === undefined) console.error(error);
  });
}

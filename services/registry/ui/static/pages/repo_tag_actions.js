// Tag actions shared by the tag list and the tag page: pull commands, labels, expiration, delete.
import { h, clear } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { confirmDialog, copyButton, errorBox, field, formatTime, toast } from '../lib/components.js';

// The seed's message for a label that is not key=value.
export const LABEL_FORMAT_ERROR = 'Invalid label format, must be key value separated by =';

/** 'key=value' → {key, value}; null when there is no '=' or no key. */
export function parseLabel(text) {
  const at = text.indexOf('=');
  if (at <= 0) return null;
  return { key: text.slice(0, at).trim(), value: text.slice(at + 1).trim() };
}

/** The pull commands of a tag (or a digest) for podman, docker and skopeo, on this registry's host. */
export function pullCommands(repo, reference) {
  const separator = reference.startsWith('sha256:') ? '@' : ':';
  const image = `${location.host}/${repo.namespace}/${repo.name}${separator}${reference}`;
  return [
    ['Podman', `podman pull ${image}`],
    ['Docker', `docker pull ${image}`],
    ['Skopeo', `skopeo copy docker://${image} oci:${repo.name.split('/').pop()}-layout`],
  ];
}

export function pullCommandList(repo, reference) {
  return h(
    'dl',
    { class: 'details pull-commands' },
    pullCommands(repo, reference).map(([tool, command]) => [
      h('dt', {}, tool),
      h('dd', {}, h('code', {}, command), ' ', copyButton(command, `Copy ${tool} command`)),
    ]),
  );
}

function modal(title, ...content) {
  const titleId = `dialog-${Math.random().toString(36).slice(2)}`;
  const dialog = h('dialog', { 'aria-labelledby': titleId }, h('h2', { id: titleId }, title), ...content);
  const opener = document.activeElement;
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (opener && opener.isConnected) opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  dialog.querySelector('input, button')?.focus();
  return dialog;
}

/** Show a tag's pull commands with copy buttons. */
export function showPullDialog(repo, tag) {
  const dialog = modal(
    `Pull ${repo.namespace}/${repo.name}:${tag.name}`,
    h('h3', {}, 'By tag'),
    pullCommandList(repo, tag.name),
    h('h3', {}, 'By digest'),
    pullCommandList(repo, tag.manifest_digest),
    h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Close')),
  );
}

/**
 * The labels editor of a manifest: its labels as chips (× removes), 'key=value' input added on Enter,
 * on "Add label" or when the input loses focus; "Save labels" adds and deletes through the API.
 * Resolves true when something was saved.
 */
export async function editLabels(path, digest) {
  const { labels } = await api('GET', `${path}/manifest/${digest}/labels`);
  const kept = new Map(labels.map((label) => [label.id, label]));
  const added = [];
  return new Promise((resolve) => {
    let saved = false;
    const chips = h('div', { class: 'label-chips', 'aria-live': 'polite' });
    const errors = h('div', { 'aria-live': 'assertive' });
    const input = h('input', { type: 'text', name: 'label', placeholder: 'com.example.release-date=2023-11-14', autocomplete: 'off' });
    function drawChips() {
      clear(chips);
      const removable = (label, onRemove) =>
        h(
          'span',
          { class: 'chip' },
          `${label.key}=${label.value}`,
          label.source_type && label.source_type !== 'api'
            ? null
            : h('button', { type: 'button', class: 'link', 'aria-label': `Remove label ${label.key}=${label.value}`, onclick: onRemove }, ' ×'),
        );
      for (const label of kept.values()) chips.append(removable(label, () => { kept.delete(label.id); drawChips(); }));
      added.forEach((label, index) => chips.append(removable(label, () => { added.splice(index, 1); drawChips(); })));
      if (!chips.childNodes.length) chips.append(h('span', { class: 'muted' }, 'No labels.'));
    }
    function addFromInput() {
      clear(errors);
      const text = input.value.trim();
      if (!text) return true;
      const label = parseLabel(text);
      if (!label) {
        errors.append(errorBox(LABEL_FORMAT_ERROR));
        return false;
      }
      added.push(label);
      input.value = '';
      drawChips();
      return true;
    }
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        addFromInput();
      }
    });
    input.addEventListener('blur', (event) => {
      if (event.relatedTarget && event.relatedTarget.dataset.role === 'cancel') return;
      addFromInput();
    });
    const save = h('button', { type: 'button', class: 'primary' }, 'Save labels');
    save.addEventListener('click', async () => {
      if (!addFromInput()) return;
      save.disabled = true;
      try {
        const removed = labels.filter((label) => !kept.has(label.id));
        for (const label of removed) await api('DELETE', `${path}/manifest/${digest}/labels/${label.id}`);
        for (const label of added) await api('POST', `${path}/manifest/${digest}/labels`, { key: label.key, value: label.value });
        if (added.length) toast('Created labels successfully.');
        if (removed.length) toast('Deleted labels successfully.');
        saved = added.length > 0 || removed.length > 0;
        dialog.close();
      } catch (error) {
        clear(errors).append(errorBox(error));
      } finally {
        save.disabled = false;
      }
    });
    drawChips();
    const dialog = modal(
      'Edit labels',
      chips,
      field('New label (key=value)', input),
      h('button', { type: 'button', class: 'secondary', onclick: addFromInput }, 'Add label'),
      errors,
      h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'secondary', 'data-role': 'cancel', onclick: () => dialog.close() }, 'Cancel'), save),
    );
    dialog.addEventListener('close', () => resolve(saved));
  });
}

/** The value of a datetime-local input for a time in seconds (the browser's local time). */
function localInputValue(seconds) {
  const date = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/**
 * Change (or clear) the expiration of the tags named: a date-time picker in the browser's time zone.
 * Resolves true when something changed.
 */
export function changeExpiration(path, tags) {
  return new Promise((resolve) => {
    let changed = false;
    const names = tags.map((tag) => tag.name);
    const current = tags.length === 1 && tags[0].end_ts ? localInputValue(tags[0].end_ts) : '';
    const picker = h('input', { type: 'datetime-local', name: 'expiration', value: current, required: true });
    const errors = h('div', { 'aria-live': 'assertive' });
    async function apply(expiration) {
      clear(errors);
      try {
        for (const name of names) await api('PUT', `${path}/tag/${encodeURIComponent(name)}`, { expiration });
        changed = true;
        const when = expiration === null ? 'never' : formatTime(expiration);
        toast(`Successfully set expiration for tag ${names.join(', ')} to ${when}`);
        dialog.close();
      } catch (error) {
        errors.append(errorBox(error));
      }
    }
    const submit = h('button', { type: 'button', class: 'primary' }, 'Change Expiration');
    submit.addEventListener('click', () => {
      const moment = new Date(picker.value);
      if (!picker.value || Number.isNaN(moment.getTime())) {
        clear(errors).append(errorBox('Choose a date and a time.'));
        return;
      }
      apply(Math.floor(moment.getTime() / 1000));
    });
    const clearButton = h('button', { type: 'button', class: 'secondary', onclick: () => apply(null) }, 'Clear expiration');
    const dialog = modal(
      'Change Tags Expiration',
      h('p', {}, names.length === 1 ? `Tag ${names[0]}` : `${names.length} tags: ${names.join(', ')}`),
      field('Expiration date and time', picker),
      errors,
      h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Cancel'), clearButton, submit),
    );
    dialog.addEventListener('close', () => resolve(changed));
  });
}

/** Delete the tags named (into the time machine, restorable from the history). True when done. */
export async function deleteTags(path, names) {
  const ok = await confirmDialog({
    title: names.length === 1 ? `Delete tag ${names[0]}?` : `Delete ${names.length} tags?`,
    message: h('div', {}, h('p', {}, 'These tags will be deleted; they can be restored from the tag history while the time machine keeps them:'), h('ul', {}, names.map((name) => h('li', {}, name)))),
  });
  if (!ok) return false;
  const failed = [];
  for (const name of names) {
    try {
      await api('DELETE', `${path}/tag/${encodeURIComponent(name)}`);
    } catch (error) {
      failed.push(`${name}: ${error.detail || error.message}`);
    }
  }
  if (failed.length) toast(`Could not delete ${failed.join('; ')}`, 'error');
  else toast(names.length === 1 ? `Deleted tag ${names[0]}` : `Deleted ${names.length} tags`);
  return true;
}

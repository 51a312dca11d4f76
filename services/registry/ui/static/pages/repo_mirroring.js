// The Mirroring tab: the repository's mirror configuration (Quay's mirror API), sync now, cancel,
// the last sync's result, and the running sync's progress, polled live while it syncs.
import { h, clear } from '../lib/dom.js';
import { api, ApiError } from '../lib/api.js';
import { errorBox, field, formatBytes, formatTime, toast } from '../lib/components.js';

const POLL_MS = 1000;
const RUNNING = new Set(['SYNCING', 'SYNC_NOW']);

/** The mirror configuration; null when there is none. Throws MirrorApiMissing where the registry's
 * origin does not serve the mirroring API (its own 404 'Not Found' instead of the mirror's). */
async function fetchMirror(path) {
  try {
    return await api('GET', `${path}/mirror`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      if (/no mirror configuration/.test(error.detail)) return null;
      throw new ApiError(404, 'The mirroring API is not served at this address (it is under `quayside up`; with separate services, route /api/v1/repository/*/mirror to the mirror service).');
    }
    throw error;
  }
}

/** A UTC 'YYYY-MM-DDTHH:MM:SSZ' (the API's format) from a datetime-local value in local time. */
function apiDate(localValue) {
  const date = localValue ? new Date(localValue) : new Date();
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function localValue(apiText) {
  const date = apiText ? new Date(apiText) : new Date();
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

async function robotOptions(repo) {
  const path = repo.is_organization ? `/organization/${encodeURIComponent(repo.namespace)}/robots` : '/user/robots';
  try {
    const answer = await api('GET', path);
    return answer.robots.map((robot) => robot.name);
  } catch {
    return [];
  }
}

function statusView(mirror) {
  const progress = mirror.sync_progress;
  const last = mirror.last_sync;
  return h(
    'section',
    { class: 'mirror-status', 'aria-live': 'polite' },
    h('h3', {}, 'Status'),
    h(
      'dl',
      { class: 'details' },
      h('dt', {}, 'Sync status'),
      h('dd', { class: 'sync-status' }, mirror.sync_status),
      h('dt', {}, 'Next sync'),
      h('dd', {}, mirror.is_enabled ? formatTime(mirror.sync_start_date) : 'Disabled'),
    ),
    progress
      ? h(
          'div',
          { class: 'sync-progress' },
          h('label', { class: 'field' }, h('span', { class: 'field-label' }, `Tags ${progress.tags_done} of ${progress.tags_total}`), h('progress', { class: 'progress', max: String(Math.max(progress.tags_total, 1)), value: String(progress.tags_done) })),
          h('p', {}, `${formatBytes(progress.bytes_copied)} copied`, progress.current_tag ? ` · now ${progress.current_tag}` : '', ` · ${progress.tags_failed} failed`),
        )
      : null,
    last
      ? h(
          'div',
          { class: 'last-sync' },
          h('h3', {}, 'Last sync'),
          h(
            'dl',
            { class: 'details' },
            h('dt', {}, 'Result'),
            h('dd', { class: last.status === 'SUCCESS' ? 'status-ok' : 'status-bad' }, last.status),
            h('dt', {}, 'Finished'),
            h('dd', {}, formatTime(last.finished_at)),
            h('dt', {}, 'Tags synced'),
            h('dd', {}, last.tags_synced.length ? last.tags_synced.join(', ') : 'none'),
            h('dt', {}, 'Tags failed'),
            h('dd', {}, Object.keys(last.tags_failed || {}).length ? Object.entries(last.tags_failed).map(([tag, why]) => `${tag}: ${why}`).join('; ') : 'none'),
          ),
        )
      : null,
  );
}

function configForm(mirror, robots) {
  const inputs = {
    external_reference: h('input', { type: 'text', name: 'external_reference', value: mirror?.external_reference || '', required: true, placeholder: 'quay.io/library/alpine' }),
    tags: h('input', { type: 'text', name: 'tags', value: mirror ? mirror.root_rule.rule_value.join(', ') : '*', required: true }),
    robot: h('input', { type: 'text', name: 'robot', value: mirror?.robot_username || robots[0] || '', list: 'mirror-robots', required: true }),
    interval: h('input', { type: 'number', name: 'interval', min: '60', value: String(mirror?.sync_interval || 86400), required: true }),
    start: h('input', { type: 'datetime-local', name: 'start', value: localValue(mirror?.sync_start_date) }),
    username: h('input', { type: 'text', name: 'username', value: mirror?.external_registry_username || '', autocomplete: 'off' }),
    password: h('input', { type: 'password', name: 'password', autocomplete: 'new-password', placeholder: mirror ? 'unchanged' : '' }),
    verify: h('input', { type: 'checkbox', name: 'verify_tls', checked: mirror ? mirror.external_registry_config.verify_tls : true }),
    enabled: h('input', { type: 'checkbox', name: 'enabled', checked: mirror ? mirror.is_enabled : true }),
  };
  const body = () => {
    const values = {
      is_enabled: inputs.enabled.checked,
      external_reference: inputs.external_reference.value.trim(),
      robot_username: inputs.robot.value.trim(),
      sync_interval: Number(inputs.interval.value),
      sync_start_date: apiDate(inputs.start.value),
      root_rule: { rule_kind: 'tag_glob_csv', rule_value: inputs.tags.value.split(',').map((tag) => tag.trim()).filter(Boolean) },
      external_registry_config: { verify_tls: inputs.verify.checked },
    };
    if (inputs.username.value.trim()) {
      values.external_registry_username = inputs.username.value.trim();
      if (inputs.password.value) values.external_registry_password = inputs.password.value;
    } else if (mirror?.external_registry_username) {
      values.external_registry_username = null;
    }
    return values;
  };
  const element = h(
    'div',
    { class: 'mirror-form' },
    field('Registry location', inputs.external_reference),
    field('Tags (comma-separated patterns)', inputs.tags),
    field('Robot account', inputs.robot),
    h('datalist', { id: 'mirror-robots' }, robots.map((name) => h('option', { value: name }))),
    field('Sync interval (seconds)', inputs.interval),
    field('Start date', inputs.start),
    field('Upstream username', inputs.username),
    field('Upstream password', inputs.password),
    h('label', { class: 'radio' }, inputs.verify, 'Verify TLS (off also allows plain HTTP)'),
    h('label', { class: 'radio' }, inputs.enabled, 'Enabled'),
  );
  return { element, body };
}

export async function renderMirroring(panel, ctx) {
  const { repo, path } = ctx;
  const [mirror, robots] = await Promise.all([fetchMirror(path), robotOptions(repo)]);
  const statusSlot = h('div');
  const errors = h('div', { 'aria-live': 'assertive' });
  const form = configForm(mirror, robots);
  let timer = null;

  async function refreshStatus() {
    timer = null;
    if (!panel.isConnected) return;
    try {
      const current = await fetchMirror(path);
      if (!current) return;
      statusSlot.replaceChildren(statusView(current));
      if (RUNNING.has(current.sync_status)) timer = setTimeout(refreshStatus, POLL_MS);
    } catch (error) {
      statusSlot.replaceChildren(errorBox(error));
    }
  }

  const save = h('button', { type: 'button', class: 'primary' }, mirror ? 'Save mirror' : 'Enable mirror');
  save.addEventListener('click', async () => {
    clear(errors);
    try {
      await api(mirror ? 'PUT' : 'POST', `${path}/mirror`, form.body());
      toast('Mirror configuration saved.');
      ctx.reload();
    } catch (error) {
      errors.append(errorBox(error));
    }
  });
  const actions = [save];
  if (mirror) {
    const syncNow = h('button', { type: 'button', class: 'secondary' }, 'Sync now');
    syncNow.addEventListener('click', async () => {
      clear(errors);
      try {
        await api('POST', `${path}/mirror/sync-now`);
        toast('Sync requested.');
        if (!timer) refreshStatus();
      } catch (error) {
        errors.append(errorBox(error));
      }
    });
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel sync');
    cancel.addEventListener('click', async () => {
      clear(errors);
      try {
        await api('POST', `${path}/mirror/sync-cancel`);
        toast('Sync cancelled.');
        refreshStatus();
      } catch (error) {
        errors.append(errorBox(error));
      }
    });
    actions.push(syncNow, cancel);
    statusSlot.append(statusView(mirror));
    if (RUNNING.has(mirror.sync_status)) timer = setTimeout(refreshStatus, POLL_MS);
  }
  panel.append(
    h('h2', {}, 'Repository mirroring'),
    mirror ? null : h('p', {}, 'Mirror this repository from another registry: its tags matching the patterns are copied on each sync, and the repository switches to the MIRROR state.'),
    statusSlot,
    h('h3', {}, 'Configuration'),
    form.element,
    errors,
    h('div', { class: 'toolbar' }, ...actions),
  );
}

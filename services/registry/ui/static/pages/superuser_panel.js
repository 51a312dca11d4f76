// The superuser panel: users (create with a generated password shown once, disable / enable,
// delete), organizations with their storage usage, global messages (create, delete) and the
// registry's read-only mode (shown, switched on for a while or off). Superusers only: the API
// refuses everyone else, and the page says so.

import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import {
  confirmDialog,
  dataTable,
  field,
  formatBytes,
  formatTime,
  pageHeader,
  tabs,
  toast,
} from '../lib/components.js';
import {
  actions,
  rowActions,
  allPages,
  button,
  choiceSelect,
  errorText,
  guarded,
  openDialog,
  secretDialog,
  section,
  seg,
} from '../lib/org_components.js';

const SEVERITIES = { info: 'Info', warning: 'Warning', error: 'Error' };
const MEDIA_TYPES = { 'text/plain': 'Plain text', 'text/markdown': 'Markdown' };
// The read-only banner /messages lists while that mode lasts (services/registry/api/messages.py):
// not a stored message, so it cannot be deleted here.
const READ_ONLY_BANNER_UUID = '00000000-0000-4000-8000-00000000000f';

async function createUser(ctx) {
  const username = h('input', { type: 'text', name: 'username', required: true, autocomplete: 'off' });
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'off' });
  const created = await openDialog({
    title: 'Create user',
    body: [field('Username', username), field('Email (optional)', email)],
    submitText: 'Create user',
    onSubmit: () => {
      const body = { username: username.value.trim() };
      if (email.value.trim()) body.email = email.value.trim();
      return api('POST', '/superuser/users/', body);
    },
  });
  if (!created) return;
  await secretDialog({
    title: `User ${created.username} created`,
    label: 'Password',
    secret: created.password,
    note: 'The generated password is shown this once: give it to the user.',
  });
  ctx.refresh();
}

async function setEnabled(user, enabled, ctx) {
  try {
    await api('PUT', `/superuser/users/${seg(user.username)}`, { enabled });
    toast(enabled ? `Enabled ${user.username}` : `Disabled ${user.username}`);
    ctx.refresh();
  } catch (error) {
    toast(errorText(error), 'error');
  }
}

async function deleteUser(user, ctx) {
  const confirmed = await confirmDialog({
    title: 'Delete user',
    message: `Delete ${user.username} with its repositories and robot accounts? This cannot be undone.`,
    requireTyped: 'confirm',
  });
  if (!confirmed) return;
  try {
    await api('DELETE', `/superuser/users/${seg(user.username)}`);
    toast(`Deleted ${user.username}`);
    ctx.refresh();
  } catch (error) {
    toast(errorText(error), 'error');
  }
}

async function renderUsers(panel, ctx) {
  const { users } = await api('GET', '/superuser/users/');
  const table = dataTable({
    columns: [
      { key: 'username', label: 'Username' },
      { key: 'email', label: 'Email', render: (user) => user.email || '' },
      { key: 'super_user', label: 'Superuser', render: (user) => (user.super_user ? 'Yes' : 'No') },
      { key: 'enabled', label: 'Status', render: (user) => (user.enabled ? 'Enabled' : 'Disabled') },
      {
        key: 'actions',
        label: 'Actions',
        render: (user) =>
          user.super_user
            ? h('span', { class: 'muted' }, 'Superusers are managed in the configuration')
            : rowActions(
                button(user.enabled ? 'Disable' : 'Enable', () => setEnabled(user, !user.enabled, ctx), {
                  'aria-label': `${user.enabled ? 'Disable' : 'Enable'} ${user.username}`,
                }),
                button('Delete', () => deleteUser(user, ctx), {
                  class: 'danger',
                  'aria-label': `Delete ${user.username}`,
                }),
              ),
      },
    ],
    rows: users,
    emptyText: 'No users.',
  });
  panel.append(actions(button('Create user', () => createUser(ctx), { class: 'primary' })), table.element);
}

async function renderOrganizations(panel) {
  const [{ organizations }, usage] = await Promise.all([
    api('GET', '/superuser/organizations/'),
    allPages('/superuser/quotareport?sort=name', 'namespaces'),
  ]);
  const byName = new Map(usage.map((entry) => [entry.namespace, entry]));
  const rows = organizations.map((org) => ({ ...org, usage: byName.get(org.name) }));
  const table = dataTable({
    columns: [
      {
        key: 'name',
        label: 'Organization',
        render: (row) => h('a', { href: `#/organization/${seg(row.name)}` }, row.name),
      },
      { key: 'email', label: 'Email', render: (row) => row.email || '' },
      {
        key: 'used',
        label: 'Storage used',
        render: (row) => formatBytes(row.usage ? row.usage.usage_bytes : 0),
      },
      {
        key: 'limit',
        label: 'Quota',
        render: (row) => {
          if (!row.usage || row.usage.limit_bytes == null) return 'None';
          return `${formatBytes(row.usage.limit_bytes)}${row.usage.default_config ? ' (system default)' : ''}`;
        },
      },
      { key: 'state', label: 'Quota state', render: (row) => (row.usage ? row.usage.state : '') },
    ],
    rows,
    emptyText: 'No organizations.',
  });
  panel.append(table.element);
}

async function createMessage(ctx) {
  const content = h('textarea', { name: 'content', rows: 4, required: true });
  const severity = choiceSelect(SEVERITIES, 'info', { name: 'severity' });
  const mediaType = choiceSelect(MEDIA_TYPES, 'text/plain', { name: 'media_type' });
  const created = await openDialog({
    title: 'Create global message',
    body: [field('Message', content), field('Severity', severity), field('Format', mediaType)],
    submitText: 'Create message',
    onSubmit: () =>
      api('POST', '/messages', {
        message: { content: content.value, severity: severity.value, media_type: mediaType.value },
      }),
  });
  if (created) {
    toast('Created the message: every user sees it now.');
    ctx.refresh();
  }
}

async function deleteMessage(message, ctx) {
  if (
    !(await confirmDialog({ title: 'Delete message', message: 'Stop showing this message to every user?' }))
  )
    return;
  try {
    await api('DELETE', `/message/${seg(message.uuid)}`);
    toast('Deleted the message.');
    ctx.refresh();
  } catch (error) {
    toast(errorText(error), 'error');
  }
}

async function renderMessages(panel, ctx) {
  const { messages } = await api('GET', '/messages');
  const stored = messages.filter((message) => message.uuid !== READ_ONLY_BANNER_UUID);
  const table = dataTable({
    columns: [
      {
        key: 'content',
        label: 'Message',
        render: (message) => h('span', { class: 'org-message' }, message.content),
      },
      {
        key: 'severity',
        label: 'Severity',
        render: (message) => SEVERITIES[message.severity] || message.severity,
      },
      {
        key: 'media_type',
        label: 'Format',
        render: (message) => MEDIA_TYPES[message.media_type] || message.media_type,
      },
      {
        key: 'actions',
        label: 'Actions',
        render: (message) =>
          button('Delete', () => deleteMessage(message, ctx), {
            class: 'danger',
            'aria-label': 'Delete this message',
          }),
      },
    ],
    rows: stored,
    emptyText: 'No global messages.',
  });
  panel.append(
    actions(button('Create message', () => createMessage(ctx), { class: 'primary' })),
    table.element,
  );
}

function stateText(state) {
  if (!state.read_only) return 'The registry accepts writes (read-only mode is off).';
  const until = state.expires_at ? `, until ${formatTime(state.expires_at)}` : '';
  const why = state.reason ? `: ${state.reason}` : '';
  const source = state.forced_by_config
    ? ' (set by QUAYSIDE_REGISTRY_STATE: only the configuration lifts it)'
    : '';
  return `The registry is read-only${until}${why}${source}.`;
}

function renderRegistryState(panel, ctx, state) {
  const reason = h('input', { type: 'text', name: 'reason', autocomplete: 'off', maxlength: 500 });
  const expires = h('input', {
    type: 'text',
    name: 'expires_in',
    autocomplete: 'off',
    placeholder: '30m, 2h, 1d',
  });
  const change = async (readOnly) => {
    const body = { read_only: readOnly, reason: readOnly ? reason.value : '' };
    if (readOnly && expires.value.trim()) body.expires_in = expires.value.trim();
    try {
      await api('PUT', '/superuser/registrystate', body);
      toast(readOnly ? 'The registry is read-only now.' : 'Read-only mode is off.');
      ctx.refresh();
    } catch (error) {
      toast(errorText(error), 'error');
    }
  };
  const changedBy = state.changed_by
    ? `Last changed by ${state.changed_by}, ${formatTime(state.changed_at)}.`
    : '';
  const controls = state.read_only
    ? actions(button('Switch read-only mode off', () => change(false), { disabled: state.forced_by_config }))
    : h(
        'form',
        {
          class: 'toolbar',
          onsubmit: (event) => {
            event.preventDefault();
            change(true);
          },
        },
        field('Reason (shown to users)', reason),
        field('For (optional)', expires),
        h('button', { type: 'submit', class: 'danger' }, 'Switch read-only mode on'),
      );
  panel.append(
    section(
      'Read-only mode',
      h('p', { class: state.read_only ? 'status-bad' : 'status-ok', role: 'status' }, stateText(state)),
      changedBy ? h('p', { class: 'hint' }, changedBy) : null,
      controls,
    ),
  );
}

export async function render(root, params, ctx) {
  if (!ctx.user || !ctx.user.super_user) {
    root.append(pageHeader('Superuser'), h('p', {}, 'Only superusers can see this page.'));
    return;
  }
  const state = await api('GET', '/superuser/registrystate');
  const list = [
    { id: 'users', label: 'Users', render: guarded((panel) => renderUsers(panel, ctx)) },
    { id: 'organizations', label: 'Organizations', render: guarded((panel) => renderOrganizations(panel)) },
    { id: 'messages', label: 'Global messages', render: guarded((panel) => renderMessages(panel, ctx)) },
    {
      id: 'registrystate',
      label: 'Read-only mode',
      render: guarded(async (panel) => renderRegistryState(panel, ctx, state)),
    },
  ];
  const requested = params.query.get('tab');
  const active = list.some((tab) => tab.id === requested) ? requested : 'users';
  root.append(
    pageHeader('Superuser'),
    tabs(list, active, (id) => ctx.replaceQuery({ tab: id })),
  );
}

// The Settings tab: user, robot and team permissions; events and notifications; description;
// visibility; state; delete.
import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { confirmDialog, dataTable, errorBox, field, formDialog, toast } from '../lib/components.js';

const ROLES = [
  { value: 'read', label: 'Read' },
  { value: 'write', label: 'Write' },
  { value: 'admin', label: 'Admin' },
];
const EVENTS = [
  { value: 'repo_push', label: 'Push to Repository' },
  { value: 'repo_mirror_sync_started', label: 'Mirror sync started' },
  { value: 'repo_mirror_sync_success', label: 'Mirror sync succeeded' },
  { value: 'repo_mirror_sync_failed', label: 'Mirror sync failed' },
  { value: 'repo_image_expiry', label: 'Image expiry' },
];
const METHODS = [
  { value: 'webhook', label: 'Webhook POST' },
  { value: 'slack', label: 'Slack Notification' },
  { value: 'email', label: 'Email Notification' },
];
const STATES = [
  { value: 'NORMAL', label: 'Normal' },
  { value: 'READ_ONLY', label: 'Read only' },
  { value: 'MIRROR', label: 'Mirror' },
];

function section(title, ...content) {
  return h('section', { class: 'settings-section' }, h('h2', {}, title), ...content);
}

function roleSelect(name, role, onChange) {
  const select = h(
    'select',
    { name: `role-${name}`, 'aria-label': `Permission of ${name}` },
    ROLES.map((option) => h('option', { value: option.value, selected: option.value === role }, option.label)),
  );
  select.addEventListener('change', () => onChange(select.value));
  return select;
}

async function permissionsSection(ctx) {
  const { path, repo } = ctx;
  const container = h('div');
  async function draw() {
    const [users, teams] = await Promise.all([
      api('GET', `${path}/permissions/user/`),
      repo.is_organization ? api('GET', `${path}/permissions/team/`) : Promise.resolve({ permissions: {} }),
    ]);
    const rows = [
      ...Object.values(users.permissions).map((entry) => ({ ...entry, kind: entry.is_robot ? 'robot' : 'user' })),
      ...Object.values(teams.permissions).map((entry) => ({ ...entry, kind: 'team' })),
    ];
    const endpoint = (row) => `${path}/permissions/${row.kind === 'team' ? 'team' : 'user'}/${encodeURIComponent(row.name)}`;
    const table = dataTable({
      columns: [
        { key: 'name', label: 'Account' },
        { key: 'kind', label: 'Kind', render: (row) => ({ user: 'User', robot: 'Robot account', team: 'Team' })[row.kind] },
        {
          key: 'role',
          label: 'Permission',
          render: (row) =>
            roleSelect(row.name, row.role, async (role) => {
              try {
                await api('PUT', endpoint(row), { role });
                toast(`Successfully updated repository permission of ${row.name} to ${role}.`);
              } catch (error) {
                toast(error.detail || error.message, 'error');
                draw();
              }
            }),
        },
        {
          key: 'remove',
          label: 'Remove',
          render: (row) =>
            h('button', {
              type: 'button',
              class: 'secondary small',
              'aria-label': `Remove permission of ${row.name}`,
              onclick: async () => {
                if (!(await confirmDialog({ title: `Remove the permission of ${row.name}?`, message: `${row.name} loses its explicit access to ${repo.namespace}/${repo.name}.`, confirmText: 'Remove' }))) return;
                await api('DELETE', endpoint(row));
                toast(`Removed the permission of ${row.name}.`);
                draw();
              },
            }, 'Remove'),
        },
      ],
      rows,
      emptyText: 'No user, robot or team has an explicit permission.',
    });
    container.replaceChildren(table.element);
  }
  const add = h('button', { type: 'button', class: 'secondary' }, 'Add permission');
  add.addEventListener('click', async () => {
    const kinds = [{ value: 'user', label: 'User or robot account' }];
    if (repo.is_organization) kinds.push({ value: 'team', label: 'Team' });
    const done = await formDialog({
      title: 'Add permission',
      submitText: 'Add permission',
      fields: [
        { name: 'kind', label: 'Kind', type: 'select', options: kinds, value: 'user' },
        { name: 'name', label: 'Name', required: true, placeholder: repo.is_organization ? `username, ${repo.namespace}+robot or team` : 'username' },
        { name: 'role', label: 'Permission', type: 'select', options: ROLES, value: 'read' },
      ],
      onSubmit: (values) => api('PUT', `${path}/permissions/${values.kind}/${encodeURIComponent(values.name.trim())}`, { role: values.role }),
    });
    if (done) {
      toast('Successfully updated repository permission.');
      draw();
    }
  });
  await draw();
  return section('User, robot and team permissions', container, h('div', { class: 'toolbar' }, add));
}

function methodConfig(values) {
  if (values.method === 'email') return { email: values.target.trim() };
  return { url: values.target.trim() };
}

async function notificationsSection(ctx) {
  const { path } = ctx;
  const container = h('div');
  async function draw() {
    const { notifications } = await api('GET', `${path}/notification/`);
    const label = (options, value) => options.find((option) => option.value === value)?.label || value;
    const table = dataTable({
      columns: [
        { key: 'title', label: 'Title', render: (row) => row.title || '(untitled)' },
        { key: 'event', label: 'Event', render: (row) => label(EVENTS, row.event) },
        { key: 'method', label: 'Notification', render: (row) => label(METHODS, row.method) },
        { key: 'target', label: 'Target', render: (row) => row.config.url || row.config.email || '' },
        { key: 'enabled', label: 'Status', render: (row) => (row.enabled ? 'Enabled' : `Disabled: ${row.disabled_reason || `${row.number_of_failures} failures`}`) },
        {
          key: 'actions',
          label: 'Actions',
          render: (row) =>
            h(
              'div',
              { class: 'row-actions small' },
              h('button', { type: 'button', class: 'secondary', 'aria-label': `Test notification ${row.title || row.uuid}`, onclick: async () => { await api('POST', `${path}/notification/${row.uuid}/test`); toast('Test notification queued.'); } }, 'Test'),
              h('button', {
                type: 'button',
                class: 'danger',
                'aria-label': `Delete notification ${row.title || row.uuid}`,
                onclick: async () => {
                  if (!(await confirmDialog({ title: 'Delete notification?', message: row.title || row.uuid }))) return;
                  await api('DELETE', `${path}/notification/${row.uuid}`);
                  toast('Notification deleted.');
                  draw();
                },
              }, 'Delete'),
            ),
        },
      ],
      rows: notifications,
      emptyText: 'No notifications yet.',
    });
    container.replaceChildren(table.element);
  }
  const create = h('button', { type: 'button', class: 'secondary' }, 'Create Notification');
  create.addEventListener('click', async () => {
    const done = await formDialog({
      title: 'Create notification',
      submitText: 'Submit',
      fields: [
        { name: 'event', label: 'When this event happens', type: 'select', options: EVENTS, value: 'repo_push' },
        { name: 'method', label: 'Then issue a notification', type: 'select', options: METHODS, value: 'webhook' },
        { name: 'target', label: 'Webhook URL or e-mail address', required: true },
        { name: 'title', label: 'Title' },
      ],
      onSubmit: (values) => api('POST', `${path}/notification/`, { event: values.event, method: values.method, config: methodConfig(values), eventConfig: {}, title: values.title || null }),
    });
    if (done) {
      toast('Notification created.');
      draw();
    }
  });
  await draw();
  return section('Events and notifications', container, h('div', { class: 'toolbar' }, create));
}

function descriptionSection(ctx) {
  const { path, repo } = ctx;
  const text = h('textarea', { name: 'description', rows: 4 }, repo.description || '');
  const save = h('button', { type: 'button', class: 'secondary' }, 'Save description');
  save.addEventListener('click', async () => {
    await api('PUT', path, { description: text.value });
    toast('Description saved.');
    ctx.reload();
  });
  return section('Description', field('Description', text), save);
}

function visibilitySection(ctx) {
  const { path, repo } = ctx;
  const next = repo.is_public ? 'private' : 'public';
  const button = h('button', { type: 'button', class: 'secondary' }, repo.is_public ? 'Make Private' : 'Make Public');
  button.addEventListener('click', async () => {
    await api('POST', `${path}/changevisibility`, { visibility: next });
    toast(`The repository is now ${next}.`);
    ctx.reload();
  });
  return section('Repository visibility', h('p', {}, repo.is_public ? 'This repository is public: anyone may pull it.' : 'This repository is private: only accounts with a permission may pull it.'), button);
}

function stateSection(ctx) {
  const { path, repo } = ctx;
  const select = h('select', { name: 'state' }, STATES.map((state) => h('option', { value: state.value, selected: state.value === repo.state }, state.label)));
  const save = h('button', { type: 'button', class: 'secondary' }, 'Change state');
  save.addEventListener('click', async () => {
    await api('PUT', `${path}/changestate`, { state: select.value });
    toast(`Repository state changed to ${select.value}.`);
    ctx.reload();
  });
  return section('Repository state', h('p', { class: 'muted' }, 'Read only refuses every push; Mirror accepts only the mirror\'s pushes.'), h('div', { class: 'inline-form' }, field('State', select), save));
}

function deleteSection(ctx) {
  const { path, repo } = ctx;
  const button = h('button', { type: 'button', class: 'danger' }, 'Delete Repository');
  button.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: `Delete ${repo.namespace}/${repo.name}?`,
      message: 'The repository and all its tags are deleted permanently.',
      requireTyped: 'confirm',
    });
    if (!ok) return;
    await api('DELETE', path);
    toast(`Deleted repository ${repo.namespace}/${repo.name}.`);
    ctx.navigate('#/repositories');
  });
  return section('Delete repository', button);
}

export async function renderSettings(panel, ctx) {
  const guard = (promise) => promise.catch((error) => errorBox(error));
  const [permissions, notifications] = await Promise.all([guard(permissionsSection(ctx)), guard(notificationsSection(ctx))]);
  panel.append(permissions, notifications, descriptionSection(ctx), visibilitySection(ctx), stateSection(ctx), deleteSection(ctx));
}

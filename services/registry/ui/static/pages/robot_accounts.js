// Robot accounts of an organization or of the user's own namespace: create one (with teams and
// repository permissions), its token shown once with a copy button, bulk repository permissions,
// regenerate the token, delete (one, or several after typing "confirm").
// `owner` = {base: '/organization/acme' | '/user', namespace, organization?} (organization: the
// organization's view, for its teams).

import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { confirmDialog, dataTable, field, formatTime, toast } from '../lib/components.js';
import {
  actions,
  rowActions,
  bulkDeleteDialog,
  button,
  errorText,
  namespaceRepositories,
  openDialog,
  roleSelect,
  secretDialog,
  seg,
} from '../lib/org_components.js';

const shortName = (robot) => robot.name.slice(robot.name.indexOf('+') + 1);
const permissionPath = (namespace, repository, robotName) =>
  `/repository/${seg(namespace)}/${repository.split('/').map(seg).join('/')}/permissions/user/${seg(robotName)}`;

/** A checkbox per name (labelled `labelOf(name)`); `chosen()` lists the checked names. */
function checkboxList(legend, names, labelOf = (name) => name) {
  const boxes = names.map((name) => ({ name, input: h('input', { type: 'checkbox', name }) }));
  const element = h(
    'fieldset',
    { class: 'org-checklist' },
    h('legend', {}, legend),
    boxes.length
      ? boxes.map(({ name, input }) => h('label', { class: 'org-check' }, input, ' ', labelOf(name)))
      : h('p', {}, 'None to choose from.'),
  );
  return { element, chosen: () => boxes.filter(({ input }) => input.checked).map(({ name }) => name) };
}

async function showToken(answer) {
  await secretDialog({
    title: `Robot account ${answer.name}`,
    label: 'Token',
    secret: answer.token,
    note: `Log in as ${answer.name} with this token. It is shown this once: copy it now.`,
  });
}

async function createRobot(owner, ctx) {
  const repositories = await namespaceRepositories(owner.namespace);
  const teams = owner.organization ? owner.organization.ordered_teams || [] : [];
  const name = h('input', { type: 'text', name: 'name', required: true, autocomplete: 'off' });
  const description = h('input', { type: 'text', name: 'description', autocomplete: 'off' });
  const teamList = checkboxList('Add to teams', teams);
  const repositoryList = checkboxList('Add to repositories', repositories);
  const role = roleSelect('read', { name: 'role' });
  const body = [
    field('Provide a name for your robot account', name),
    field('Description (optional)', description),
    owner.organization ? teamList.element : null,
    repositoryList.element,
    field('Permission on the chosen repositories', role),
  ].filter(Boolean);
  const created = await openDialog({
    title: 'Create robot account',
    body,
    submitText: 'Review and finish',
    onSubmit: async () => {
      let answer;
      try {
        answer = await api('PUT', `${owner.base}/robots/${seg(name.value.trim())}`, {
          description: description.value,
        });
      } catch (error) {
        throw new Error(`Error creating robot account: ${errorText(error)}`);
      }
      for (const team of teamList.chosen()) {
        await api(
          'PUT',
          `/organization/${seg(owner.namespace)}/team/${seg(team)}/members/${seg(answer.name)}`,
        );
      }
      for (const repository of repositoryList.chosen()) {
        await api('PUT', permissionPath(owner.namespace, repository, answer.name), { role: role.value });
      }
      return answer;
    },
  });
  if (!created) return;
  toast(`Successfully created robot account with robot name: ${created.name}`);
  await showToken(created);
  ctx.refresh();
}

async function setRepositoryPermissions(owner, robot, ctx) {
  const [repositories, granted] = await Promise.all([
    namespaceRepositories(owner.namespace),
    api('GET', `${owner.base}/robots/${seg(shortName(robot))}/permissions`),
  ]);
  const current = new Map(granted.permissions.map((grant) => [grant.repository.name, grant.role]));
  const list = checkboxList('Repositories', repositories, (repository) =>
    current.has(repository) ? `${repository} (now ${current.get(repository)})` : repository,
  );
  const role = roleSelect('read', { withNone: true, name: 'role' });
  const saved = await openDialog({
    title: `Set repository permissions of ${robot.name}`,
    body: [
      h('p', { class: 'hint' }, 'Check the repositories, choose the permission (None removes it), and save.'),
      list.element,
      field('Permission', role),
    ],
    onSubmit: async () => {
      for (const repository of list.chosen()) {
        const path = permissionPath(owner.namespace, repository, robot.name);
        if (role.value) await api('PUT', path, { role: role.value });
        else if (current.has(repository)) await api('DELETE', path);
      }
    },
  });
  if (saved) {
    toast('Successfully updated repository permission');
    ctx.refresh();
  }
}

async function regenerateToken(owner, robot) {
  const confirmed = await confirmDialog({
    title: 'Regenerate token',
    message: `Give ${robot.name} a new token? The current one stops working at once.`,
    confirmText: 'Regenerate',
  });
  if (!confirmed) return;
  try {
    await showToken(await api('POST', `${owner.base}/robots/${seg(shortName(robot))}/regenerate`));
  } catch (error) {
    toast(errorText(error), 'error');
  }
}

async function deleteRobots(owner, robots, ctx) {
  const names = robots.map((robot) => robot.name);
  if (!names.length) {
    toast('Select the robot accounts to delete first.', 'error');
    return;
  }
  if (!(await bulkDeleteDialog({ title: 'Delete robot accounts', noun: 'robot account', names }))) return;
  const failures = [];
  for (const robot of robots) {
    try {
      await api('DELETE', `${owner.base}/robots/${seg(shortName(robot))}`);
    } catch (error) {
      failures.push(`${robot.name}: ${errorText(error)}`);
    }
  }
  if (failures.length) toast(`Failed to delete: ${failures.join('; ')}`, 'error');
  else toast('Successfully deleted robot account');
  ctx.refresh();
}

/** The robot's repository count, expanding (a <details>) to their names. */
function repositoriesCell(repositories) {
  if (!repositories.length) return '0';
  return h(
    'details',
    { class: 'org-expand' },
    h('summary', {}, String(repositories.length)),
    h(
      'ul',
      {},
      repositories.map((repository) => h('li', {}, repository)),
    ),
  );
}

export async function renderRobots(panel, owner, ctx) {
  const answer = await api('GET', `${owner.base}/robots?permissions=true`);
  const admin = owner.organization ? owner.organization.is_admin : true;
  const columns = [
    { key: 'name', label: 'Robot account name' },
    { key: 'description', label: 'Description', render: (robot) => robot.description || '' },
  ];
  if (admin) {
    if (owner.organization) {
      columns.push({
        key: 'teams',
        label: 'Teams',
        render: (robot) => (robot.teams || []).map((team) => team.name).join(', '),
      });
    }
    columns.push({
      key: 'repositories',
      label: 'Repositories',
      render: (robot) => repositoriesCell(robot.repositories || []),
    });
  }
  columns.push({ key: 'created', label: 'Created', render: (robot) => formatTime(robot.created) });
  if (admin) {
    columns.push({
      key: 'actions',
      label: 'Actions',
      render: (robot) =>
        rowActions(
          button('Set repository permissions', () => setRepositoryPermissions(owner, robot, ctx), {
            'aria-label': `Set repository permissions of ${robot.name}`,
          }),
          button('Regenerate token', () => regenerateToken(owner, robot), {
            'aria-label': `Regenerate the token of ${robot.name}`,
          }),
          button('Delete', () => deleteRobots(owner, [robot], ctx), {
            class: 'danger',
            'aria-label': `Delete ${robot.name}`,
          }),
        ),
    });
  }
  const table = dataTable({
    columns,
    rows: answer.robots,
    selectable: admin,
    emptyText: 'No robot accounts yet.',
  });
  if (admin) {
    panel.append(
      actions(
        button('Create robot account', () => createRobot(owner, ctx), { class: 'primary' }),
        button('Delete selected', () => deleteRobots(owner, table.selected(), ctx), { class: 'danger' }),
      ),
    );
  }
  panel.append(table.element);
}

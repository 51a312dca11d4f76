// An organization's "Default permissions" tab (Quay's permission prototypes): what a new
// repository grants automatically, for repositories created by anyone or by a specific user.

import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { confirmDialog, dataTable, field, toast } from '../lib/components.js';
import {
  actions,
  button,
  entityInput,
  errorText,
  openDialog,
  roleSelect,
  seg,
} from '../lib/org_components.js';

function accountLabel(account) {
  if (account.kind === 'team') return `${account.name} (team)`;
  return account.is_robot ? `${account.name} (robot)` : account.name;
}

/** 'team' when `name` is a team of the organization, else 'user' (users and robots alike). */
function delegateKind(name, picked, organization) {
  if (picked === 'team' || (organization.teams && Object.hasOwn(organization.teams, name))) return 'team';
  return 'user';
}

async function createDefaultPermission(organization, ctx) {
  const org = organization.name;
  const anyone = h('input', { type: 'radio', name: 'applies', value: 'anyone', checked: true });
  const specific = h('input', { type: 'radio', name: 'applies', value: 'specific' });
  const creator = entityInput({ namespace: org, name: 'creator' });
  const creatorField = field('Repository creator', creator.element);
  const creatorSlot = h('div', {});
  const toggle = () => creatorSlot.replaceChildren(...(specific.checked ? [creatorField] : []));
  anyone.addEventListener('change', toggle);
  specific.addEventListener('change', toggle);
  const delegate = entityInput({ namespace: org, teams: true, name: 'delegate' });
  const role = roleSelect('read', { name: 'role' });
  const body = [
    h(
      'fieldset',
      { class: 'org-applies' },
      h('legend', {}, 'Create a default permission for repositories created by'),
      h('label', { class: 'radio' }, anyone, 'Anyone'),
      h('label', { class: 'radio' }, specific, 'Specific user'),
    ),
    creatorSlot,
    field('Applied to (user, robot account or team)', delegate.element),
    field('Permission', role),
  ];
  const created = await openDialog({
    title: 'Create default permission',
    body,
    submitText: 'Create default permission',
    onSubmit: async () => {
      const name = delegate.input.value.trim();
      if (!name) throw new Error('Say whom the permission is applied to.');
      const request = {
        role: role.value,
        delegate: { kind: delegateKind(name, delegate.kindOf(name), organization), name },
      };
      if (specific.checked) {
        const activating = creator.input.value.trim();
        if (!activating) throw new Error('Name the repository creator, or choose Anyone.');
        request.activating_user = { name: activating };
      }
      return api('POST', `/organization/${seg(org)}/prototypes`, request);
    },
  });
  if (created) {
    toast('Successfully created default permission for creator.');
    ctx.refresh();
  }
}

async function changeRole(org, prototype, role) {
  try {
    await api('PUT', `/organization/${seg(org)}/prototypes/${seg(prototype.id)}`, { role });
    toast('Successfully updated default permission.');
  } catch (error) {
    toast(errorText(error), 'error');
  }
}

async function deletePrototype(org, prototype, ctx) {
  const confirmed = await confirmDialog({
    title: 'Delete default permission',
    message: `Stop granting ${accountLabel(prototype.delegate)} ${prototype.role} on new repositories? Existing permissions stay.`,
  });
  if (!confirmed) return;
  try {
    await api('DELETE', `/organization/${seg(org)}/prototypes/${seg(prototype.id)}`);
    toast('Deleted the default permission.');
    ctx.refresh();
  } catch (error) {
    toast(errorText(error), 'error');
  }
}

export async function renderDefaultPermissions(panel, organization, ctx) {
  const org = organization.name;
  const { prototypes } = await api('GET', `/organization/${seg(org)}/prototypes`);
  const table = dataTable({
    columns: [
      {
        key: 'activating_user',
        label: 'Repository creator',
        render: (row) => (row.activating_user ? accountLabel(row.activating_user) : 'Anyone'),
      },
      { key: 'delegate', label: 'Applied to', render: (row) => accountLabel(row.delegate) },
      {
        key: 'role',
        label: 'Permission',
        render: (row) => {
          const select = roleSelect(row.role, {
            'aria-label': `Permission of ${accountLabel(row.delegate)}`,
          });
          select.addEventListener('change', () => changeRole(org, row, select.value));
          return select;
        },
      },
      {
        key: 'actions',
        label: 'Actions',
        render: (row) =>
          button('Delete', () => deletePrototype(org, row, ctx), {
            class: 'danger',
            'aria-label': `Delete the default permission of ${accountLabel(row.delegate)}`,
          }),
      },
    ],
    rows: prototypes,
    emptyText: 'No default permissions: new repositories grant only their creator.',
  });
  panel.append(
    h(
      'p',
      { class: 'hint' },
      'Default permissions are granted automatically to a repository when it is created, in addition to its creator.',
    ),
    actions(
      button('Create default permission', () => createDefaultPermission(organization, ctx), {
        class: 'primary',
      }),
    ),
    table.element,
  );
}

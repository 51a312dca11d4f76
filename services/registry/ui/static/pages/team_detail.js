// One team of an organization ("Manage Team Members"): its members, adding a user or robot,
// removing one, its role and description, and its repository permissions.

import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { confirmDialog, dataTable, errorBox, field, loading, pageHeader, toast } from '../lib/components.js';
import {
  TEAM_ROLE_LABELS,
  actions,
  button,
  choiceSelect,
  entityInput,
  errorText,
  namespaceRepositories,
  section,
  seg,
} from '../lib/org_components.js';
import { applyTeamRoles, repositoryRolesFieldset, teamRoles } from './org_teams.js';

function membersSection(org, team, answer, ctx) {
  const teamPath = `/organization/${seg(org)}/team/${seg(team)}`;
  const remove = async (name) => {
    if (
      !(await confirmDialog({
        title: 'Remove member',
        message: `Remove ${name} from ${team}?`,
        confirmText: 'Remove',
      }))
    ) {
      return;
    }
    try {
      await api('DELETE', `${teamPath}/members/${seg(name)}`);
      toast(`Removed ${name} from ${team}`);
      ctx.refresh();
    } catch (error) {
      toast(errorText(error), 'error');
    }
  };
  const table = dataTable({
    columns: [
      { key: 'name', label: 'Name' },
      { key: 'is_robot', label: 'Kind', render: (member) => (member.is_robot ? 'Robot account' : 'User') },
      {
        key: 'actions',
        label: 'Actions',
        render: (member) =>
          answer.can_edit
            ? button('Remove', () => remove(member.name), { 'aria-label': `Remove ${member.name}` })
            : '',
      },
    ],
    rows: answer.members,
    emptyText: 'This team has no members yet.',
  });
  if (!answer.can_edit) return section('Team members', table.element);
  const picker = entityInput({ namespace: org, name: 'member' });
  const form = h(
    'form',
    {
      class: 'org-inline-form',
      onsubmit: async (event) => {
        event.preventDefault();
        const name = picker.input.value.trim();
        if (!name) return;
        try {
          await api('PUT', `${teamPath}/members/${seg(name)}`);
          toast(`Added ${name} to ${team}`);
          ctx.refresh();
        } catch (error) {
          toast(errorText(error), 'error');
        }
      },
    },
    field('User or robot account', picker.element),
    h('button', { type: 'submit', class: 'primary' }, 'Add new member'),
  );
  return section('Team members', form, table.element);
}

function settingsSection(org, teamView, ctx) {
  const role = choiceSelect(TEAM_ROLE_LABELS, teamView.role, { name: 'role' });
  const description = h('textarea', { name: 'description', rows: 2 }, teamView.description || '');
  const form = h(
    'form',
    {
      class: 'org-form',
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          await api('PUT', `/organization/${seg(org)}/team/${seg(teamView.name)}`, {
            role: role.value,
            description: description.value,
          });
          toast('Saved the team');
          ctx.refresh();
        } catch (error) {
          toast(errorText(error), 'error');
        }
      },
    },
    field('Team role', role),
    field('Description', description),
    h('button', { type: 'submit' }, 'Save team'),
  );
  return section('Team settings', form);
}

async function permissionsSection(org, team, ctx) {
  const [repositories, current] = await Promise.all([namespaceRepositories(org), teamRoles(org, team)]);
  const roles = repositoryRolesFieldset(repositories, current);
  const form = h(
    'form',
    {
      class: 'org-form',
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          await applyTeamRoles(org, team, roles.changes());
          toast('Successfully updated repository permission');
          ctx.refresh();
        } catch (error) {
          toast(errorText(error), 'error');
        }
      },
    },
    roles.element,
    h('button', { type: 'submit' }, 'Save permissions'),
  );
  return section('Set repository permissions', form);
}

export async function render(root, params, ctx) {
  const spinner = loading();
  root.append(spinner);
  const { org, team } = params;
  try {
    const [organization, members] = await Promise.all([
      api('GET', `/organization/${seg(org)}`),
      api('GET', `/organization/${seg(org)}/team/${seg(team)}/members`),
    ]);
    const teamView = (organization.teams || {})[team] || { name: team, role: 'member', description: '' };
    const parts = [
      pageHeader(
        `Team ${team}`,
        actions(h('a', { href: `#/organization/${seg(org)}?tab=teams` }, `Back to ${org}`)),
      ),
      teamView.description ? h('p', { class: 'org-description' }, teamView.description) : null,
      membersSection(org, team, members, ctx),
    ];
    if (organization.is_admin) {
      parts.push(settingsSection(org, teamView, ctx), await permissionsSection(org, team, ctx));
    }
    spinner.replaceWith(...parts.filter(Boolean));
  } catch (error) {
    spinner.replaceWith(errorBox(error));
  }
}

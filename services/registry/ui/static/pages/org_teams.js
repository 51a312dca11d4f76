// An organization's "Teams and membership" tab: the Team, Members and Collaborators views; create
// a team with repository permissions and members; set a team's repository permissions; delete.
// The Members and Collaborators views read GET /organization/{org}/members and /collaborators
// (admins only); a team's current roles come from GET /organization/{org}/team/{team}/permissions.
// Each costs one request per page of 100, however many teams and repositories there are.

import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { confirmDialog, dataTable, errorBox, field, loading, toast } from '../lib/components.js';
import {
  TEAM_ROLE_LABELS,
  actions,
  allPages,
  rowActions,
  button,
  choiceSelect,
  entityInput,
  errorText,
  namespaceRepositories,
  openDialog,
  roleSelect,
  seg,
} from '../lib/org_components.js';

const repositoryPath = (org, repository) =>
  `/repository/${seg(org)}/${repository.split('/').map(seg).join('/')}`;

/**
 * A role select (None, Read, Write, Admin) per repository, preset from `current` (name → role).
 * `changes()` lists what differs: [{repository, role}] with role '' meaning "remove".
 */
export function repositoryRolesFieldset(repositories, current = new Map()) {
  const selects = repositories.map((repository) => ({
    repository,
    select: roleSelect(current.get(repository) || '', { withNone: true, name: `role-${repository}` }),
  }));
  const element = h(
    'fieldset',
    { class: 'org-roles' },
    h('legend', {}, 'Repository permissions'),
    selects.length
      ? selects.map(({ repository, select }) => field(repository, select))
      : h('p', {}, 'The organization has no repositories yet.'),
  );
  const changes = () =>
    selects
      .filter(({ repository, select }) => (current.get(repository) || '') !== select.value)
      .map(({ repository, select }) => ({ repository, role: select.value }));
  return { element, changes };
}

/** Apply repository role changes of a team (PUT, or DELETE for ''). */
export async function applyTeamRoles(org, team, changes) {
  for (const { repository, role } of changes) {
    const path = `${repositoryPath(org, repository)}/permissions/team/${seg(team)}`;
    if (role) await api('PUT', path, { role });
    else await api('DELETE', path);
  }
}

/** The team's current role on each repository it has a permission on (name → role). */
export async function teamRoles(org, team) {
  const permissions = await allPages(
    `/organization/${seg(org)}/team/${seg(team)}/permissions`,
    'permissions',
  );
  return new Map(permissions.map((permission) => [permission.repository.name, permission.role]));
}

/** A list of chosen members with an entity picker to add more; `names()` is the chosen list. */
function memberPicker(org) {
  const chosen = [];
  const list = h('ul', { class: 'org-chosen' });
  const picker = entityInput({ namespace: org, name: 'member' });
  const redraw = () =>
    list.replaceChildren(
      ...chosen.map((name) =>
        h(
          'li',
          {},
          name,
          button(
            'Remove',
            () => {
              chosen.splice(chosen.indexOf(name), 1);
              redraw();
            },
            { 'aria-label': `Remove ${name}`, class: 'link' },
          ),
        ),
      ),
    );
  const add = () => {
    const name = picker.input.value.trim();
    if (name && !chosen.includes(name)) chosen.push(name);
    picker.input.value = '';
    redraw();
  };
  picker.input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      add();
    }
  });
  const element = h(
    'fieldset',
    { class: 'org-members' },
    h('legend', {}, 'Team members (users or robot accounts)'),
    field('Add a team member', picker.element),
    button('Add member', add),
    list,
  );
  return { element, names: () => [...chosen] };
}

async function createTeam(organization, ctx) {
  const org = organization.name;
  const repositories = await namespaceRepositories(org);
  const name = h('input', { type: 'text', name: 'name', required: true, autocomplete: 'off' });
  const description = h('textarea', { name: 'description', rows: 2 });
  const role = choiceSelect(TEAM_ROLE_LABELS, 'member', { name: 'role' });
  const roles = repositoryRolesFieldset(repositories);
  const members = memberPicker(org);
  const created = await openDialog({
    title: 'Create team',
    body: [
      field('Team name', name),
      field('Description (optional)', description),
      field('Team role', role),
      roles.element,
      members.element,
    ],
    submitText: 'Review and Finish',
    onSubmit: async () => {
      const team = name.value.trim();
      await api('PUT', `/organization/${seg(org)}/team/${seg(team)}`, {
        role: role.value,
        description: description.value,
      });
      await applyTeamRoles(org, team, roles.changes());
      for (const member of members.names()) {
        await api('PUT', `/organization/${seg(org)}/team/${seg(team)}/members/${seg(member)}`);
      }
      return team;
    },
  });
  if (created) {
    toast(`Successfully created team ${created}`);
    ctx.refresh();
  }
}

async function setTeamPermissions(org, team, ctx) {
  const [repositories, current] = await Promise.all([namespaceRepositories(org), teamRoles(org, team)]);
  const roles = repositoryRolesFieldset(repositories, current);
  const saved = await openDialog({
    title: `Set repository permissions of ${team}`,
    body: roles.element,
    onSubmit: () => applyTeamRoles(org, team, roles.changes()),
  });
  if (saved) {
    toast('Successfully updated repository permission');
    ctx.refresh();
  }
}

async function deleteTeam(org, team, ctx) {
  const confirmed = await confirmDialog({
    title: 'Delete team',
    message: `Delete the team ${team}? Its members lose the repository permissions it gives.`,
  });
  if (!confirmed) return;
  try {
    await api('DELETE', `/organization/${seg(org)}/team/${seg(team)}`);
    toast(`Deleted team ${team}`);
    ctx.refresh();
  } catch (error) {
    toast(errorText(error), 'error');
  }
}

function teamView(organization, ctx) {
  const org = organization.name;
  const rows = (organization.ordered_teams || []).map((name) => organization.teams[name]);
  return dataTable({
    columns: [
      {
        key: 'name',
        label: 'Team name',
        render: (team) =>
          team.can_view
            ? h('a', { href: `#/organization/${seg(org)}/teams/${seg(team.name)}` }, team.name)
            : team.name,
      },
      { key: 'description', label: 'Description', render: (team) => team.description || '' },
      { key: 'member_count', label: 'Members' },
      { key: 'repo_count', label: 'Repositories' },
      { key: 'role', label: 'Team role', render: (team) => TEAM_ROLE_LABELS[team.role] || team.role },
      {
        key: 'actions',
        label: 'Actions',
        render: (team) =>
          organization.is_admin
            ? rowActions(
                h(
                  'a',
                  { href: `#/organization/${seg(org)}/teams/${seg(team.name)}`, class: 'button secondary' },
                  'Manage team members',
                ),
                button('Set repository permissions', () => setTeamPermissions(org, team.name, ctx), {
                  'aria-label': `Set repository permissions of ${team.name}`,
                }),
                team.name === 'owners'
                  ? null
                  : button('Delete', () => deleteTeam(org, team.name, ctx), {
                      class: 'danger',
                      'aria-label': `Delete team ${team.name}`,
                    }),
              )
            : '',
      },
    ],
    rows,
    emptyText: 'No teams.',
  }).element;
}

/** "repository: role" of each direct permission of a member or collaborator. */
const grants = (entry) =>
  entry.repositories.map((repository) => {
    const role = (entry.repository_roles || {})[repository];
    return role ? `${repository}: ${role}` : repository;
  });

async function membersView(org) {
  const members = await allPages(`/organization/${seg(org)}/members`, 'members');
  return dataTable({
    columns: [
      { key: 'name', label: 'User name' },
      { key: 'teams', label: 'Teams', render: (row) => row.teams.map((team) => team.name).join(', ') },
      {
        key: 'repositories',
        label: 'Direct repository permissions',
        render: (row) => grants(row).join(', ') || 'None',
      },
    ],
    rows: members,
    emptyText: 'No team members.',
  }).element;
}

async function collaboratorsView(org) {
  const collaborators = await allPages(`/organization/${seg(org)}/collaborators`, 'collaborators');
  return dataTable({
    columns: [
      { key: 'name', label: 'User name' },
      { key: 'repositories', label: 'Repository permissions', render: (row) => grants(row).join(', ') },
    ],
    rows: collaborators,
    emptyText: 'No collaborators: users outside every team with direct repository permissions.',
  }).element;
}

export async function renderTeams(panel, organization, ctx) {
  const holder = h('div', { class: 'org-view' });
  const views = {
    team: async () => teamView(organization, ctx),
    members: () => membersView(organization.name),
    collaborators: () => collaboratorsView(organization.name),
  };
  const labels = { team: 'Team View', members: 'Members View', collaborators: 'Collaborators View' };
  const switches = Object.keys(views).map((id) =>
    button(labels[id], () => show(id), { 'aria-pressed': 'false', 'data-view': id }),
  );
  async function show(id) {
    switches.forEach((item) => item.setAttribute('aria-pressed', String(item.dataset.view === id)));
    holder.replaceChildren(loading());
    try {
      holder.replaceChildren(await views[id]());
    } catch (error) {
      holder.replaceChildren(errorBox(error));
    }
  }
  const canViewMembers = organization.is_admin;
  panel.append(
    actions(
      organization.is_admin
        ? button('Create new team', () => createTeam(organization, ctx), { class: 'primary' })
        : null,
    ),
    h(
      'div',
      { class: 'org-switch', role: 'group', 'aria-label': 'View' },
      canViewMembers ? switches : switches[0],
    ),
    holder,
  );
  await show('team');
}

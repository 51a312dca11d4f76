// An organization's "Teams and membership" tab: the Team, Members and Collaborators views; create
// a team with repository permissions and members; set a team's repository permissions; delete.
// The Members and Collaborators views are composed from the teams' member lists and the
// repositories' permission lists (the API has no organization-wide member list).

import { h } from '../lib/dom.js';
import { api, ApiError } from '../lib/api.js';
import { confirmDialog, dataTable, errorBox, field, loading, toast } from '../lib/components.js';
import {
  TEAM_ROLE_LABELS,
  actions,
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

/** The team's current role on each of the repositories (name → role). */
export async function teamRoles(org, team, repositories) {
  const roles = new Map();
  await Promise.all(
    repositories.map(async (repository) => {
      try {
        const answer = await api('GET', `${repositoryPath(org, repository)}/permissions/team/${seg(team)}`);
        roles.set(repository, answer.role);
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error;
      }
    }),
  );
  return roles;
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
  const repositories = await namespaceRepositories(org);
  const roles = repositoryRolesFieldset(repositories, await teamRoles(org, team, repositories));
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

/** Members of every team (name → {teams, is_robot}) and direct permissions (name → [repo: role]). */
async function membership(organization) {
  const org = organization.name;
  const teams = organization.ordered_teams || [];
  const answers = await Promise.all(
    teams.map((team) => api('GET', `/organization/${seg(org)}/team/${seg(team)}/members`)),
  );
  const members = new Map();
  answers.forEach((answer, index) => {
    for (const member of answer.members) {
      const entry = members.get(member.name) || { teams: [], is_robot: member.is_robot };
      entry.teams.push(teams[index]);
      members.set(member.name, entry);
    }
  });
  const direct = new Map();
  const repositories = await namespaceRepositories(org);
  await Promise.all(
    repositories.map(async (repository) => {
      const answer = await api('GET', `${repositoryPath(org, repository)}/permissions/user/`);
      for (const holder of Object.values(answer.permissions)) {
        const grants = direct.get(holder.name) || [];
        grants.push(`${repository}: ${holder.role}`);
        direct.set(holder.name, grants);
      }
    }),
  );
  return { members, direct };
}

function membersView({ members, direct }) {
  const rows = [...members.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, entry]) => ({ name, ...entry, grants: direct.get(name) || [] }));
  return dataTable({
    columns: [
      { key: 'name', label: 'User name', render: (row) => (row.is_robot ? `${row.name} (robot)` : row.name) },
      { key: 'teams', label: 'Teams', render: (row) => row.teams.join(', ') },
      {
        key: 'grants',
        label: 'Direct repository permissions',
        render: (row) => row.grants.join(', ') || 'None',
      },
    ],
    rows,
    emptyText: 'No team members.',
  }).element;
}

function collaboratorsView({ members, direct }) {
  const rows = [...direct.entries()]
    .filter(([name]) => !members.has(name) && !name.includes('+'))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, grants]) => ({ name, grants }));
  return dataTable({
    columns: [
      { key: 'name', label: 'User name' },
      { key: 'grants', label: 'Repository permissions', render: (row) => row.grants.join(', ') },
    ],
    rows,
    emptyText: 'No collaborators: users outside every team with direct repository permissions.',
  }).element;
}

export async function renderTeams(panel, organization, ctx) {
  const holder = h('div', { class: 'org-view' });
  let membershipLoad = null;
  const loadMembership = () => {
    membershipLoad ??= membership(organization).catch((error) => {
      membershipLoad = null; // a failed load is tried again the next time a view needs it
      throw error;
    });
    return membershipLoad;
  };
  const views = {
    team: async () => teamView(organization, ctx),
    members: async () => membersView(await loadMembership()),
    collaborators: async () => collaboratorsView(await loadMembership()),
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

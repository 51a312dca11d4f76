// Organizations: the caller's (a superuser's: every one), with repository counts; create; delete
// one or several at once after typing "confirm" (Quay's v2 UI workflow, seed 004). Repository
// counts come from the first page of each organization's repository list ("100+" beyond it).

import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { dataTable, errorBox, field, loading, pageHeader, toast } from '../lib/components.js';
import { actions, bulkDeleteDialog, button, errorText, openDialog, seg } from '../lib/org_components.js';

/** The repository count of a namespace as the first page of its list shows it. */
async function repositoryCount(namespace) {
  try {
    const answer = await api('GET', `/repository?namespace=${seg(namespace)}`);
    return `${answer.repositories.length}${answer.next_page ? '+' : ''}`;
  } catch {
    return '—';
  }
}

async function organizationRows(user) {
  const mine = (await api('GET', '/user/')).organizations;
  const admin = new Map(mine.map((org) => [org.name, org.is_org_admin]));
  const superuser = Boolean(user && user.super_user);
  const names = superuser
    ? (await api('GET', '/superuser/organizations/')).organizations.map((org) => org.name)
    : mine.map((org) => org.name);
  const counts = await Promise.all(names.map(repositoryCount));
  return names.map((name, index) => ({
    name,
    repositories: counts[index],
    role: superuser || admin.get(name) ? 'Admin' : 'Member',
  }));
}

async function createOrganization(ctx) {
  const name = h('input', { type: 'text', name: 'name', required: true, autocomplete: 'off' });
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'off' });
  const created = await openDialog({
    title: 'Create organization',
    body: [field('Organization name', name), field('Email (optional)', email)],
    submitText: 'Create',
    onSubmit: async () => {
      const body = { name: name.value.trim() };
      if (email.value.trim()) body.email = email.value.trim();
      await api('POST', '/organization/', body);
      return body.name;
    },
  });
  if (created) {
    toast(`Successfully created organization ${created}`);
    ctx.refresh();
  }
}

async function deleteOrganizations(table, ctx) {
  const names = table.selected().map((row) => row.name);
  if (!names.length) {
    toast('Select the organizations to delete first.', 'error');
    return;
  }
  if (!(await bulkDeleteDialog({ title: 'Delete organizations', noun: 'organization', names }))) return;
  const failures = [];
  for (const name of names) {
    try {
      await api('DELETE', `/organization/${seg(name)}`);
    } catch (error) {
      failures.push(`${name}: ${errorText(error)}`);
    }
  }
  if (failures.length) toast(`Failed to delete: ${failures.join('; ')}`, 'error');
  else
    toast(names.length === 1 ? `Deleted organization ${names[0]}` : `Deleted ${names.length} organizations`);
  ctx.refresh();
}

export async function render(root, params, ctx) {
  const spinner = loading();
  root.append(spinner);
  let rows;
  try {
    rows = await organizationRows(ctx.user);
  } catch (error) {
    spinner.replaceWith(errorBox(error));
    return;
  }
  const table = dataTable({
    columns: [
      {
        key: 'name',
        label: 'Name',
        render: (row) => h('a', { href: `#/organization/${seg(row.name)}` }, row.name),
      },
      { key: 'repositories', label: 'Repo Count' },
      { key: 'role', label: 'Your role' },
    ],
    rows,
    selectable: true,
    emptyText: 'No organizations yet. Create one to share repositories with teams and robots.',
  });
  spinner.replaceWith(
    pageHeader(
      'Organizations',
      actions(
        button('Create Organization', () => createOrganization(ctx), { class: 'primary' }),
        button('Delete', () => deleteOrganizations(table, ctx), { class: 'danger' }),
      ),
    ),
    table.element,
  );
}

// An organization's Repositories tab: its repositories a page at a time, and creating one.

import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { dataTable, field, formatTime, toast } from '../lib/components.js';
import { actions, button, choiceSelect, openDialog, seg } from '../lib/org_components.js';

function repositoryTable(repositories) {
  return dataTable({
    columns: [
      {
        key: 'name',
        label: 'Name',
        render: (row) =>
          h(
            'a',
            { href: `#/repository/${seg(row.namespace)}/${row.name.split('/').map(seg).join('/')}` },
            row.name,
          ),
      },
      { key: 'is_public', label: 'Visibility', render: (row) => (row.is_public ? 'Public' : 'Private') },
      { key: 'description', label: 'Description', render: (row) => row.description || '' },
      {
        key: 'last_modified',
        label: 'Last modified',
        render: (row) => (row.last_modified ? formatTime(row.last_modified) : 'Never'),
      },
    ],
    rows: repositories,
    emptyText: 'No repositories in this organization yet.',
  });
}

async function createRepository(organization, ctx) {
  const name = h('input', { type: 'text', name: 'repository', required: true, autocomplete: 'off' });
  const visibility = choiceSelect({ private: 'Private', public: 'Public' }, 'private', {
    name: 'visibility',
  });
  const description = h('textarea', { name: 'description', rows: 3 });
  const created = await openDialog({
    title: `Create repository in ${organization.name}`,
    body: [
      field('Repository name', name),
      field('Visibility', visibility),
      field('Description', description),
    ],
    submitText: 'Create',
    onSubmit: async () => {
      await api('POST', '/repository', {
        namespace: organization.name,
        repository: name.value.trim(),
        visibility: visibility.value,
        description: description.value,
      });
      return name.value.trim();
    },
  });
  if (created) {
    toast(`Created repository ${organization.name}/${created}`);
    ctx.refresh();
  }
}

/** Whether the caller may create repositories here: an administrator, or a member of a creator team. */
function canCreate(organization, user) {
  if (organization.is_admin || (user && user.super_user)) return true;
  return Boolean(
    user && (user.organizations || []).some((org) => org.name === organization.name && org.can_create_repo),
  );
}

export async function renderRepositories(panel, organization, ctx) {
  const base = `/repository?namespace=${seg(organization.name)}&last_modified=true`;
  const holder = h('div', {});
  const moreSlot = h('div', {});
  const loaded = [];
  let nextPage = null;
  const more = button('Load more', () => load(nextPage));
  async function load(next) {
    const answer = await api('GET', next ? `${base}&next_page=${seg(next)}` : base);
    loaded.push(...answer.repositories);
    holder.replaceChildren(repositoryTable(loaded).element);
    nextPage = answer.next_page || null;
    moreSlot.replaceChildren(...(nextPage ? [more] : []));
  }
  panel.append(
    canCreate(organization, ctx.user)
      ? actions(button('Create Repository', () => createRepository(organization, ctx), { class: 'primary' }))
      : '',
    holder,
    moreSlot,
  );
  await load(null);
}

// Repositories: every repository the user may read, searchable, with create and bulk delete.
import { h } from '../lib/dom.js';
import { api, repoPath } from '../lib/api.js';
import { confirmDialog, dataTable, errorBox, field, formDialog, formatTime, pageHeader, toast } from '../lib/components.js';

// Quay's advice: these words as a repository name make it unreachable (seed: "Creating a new repository").
const RESERVED_WORDS = ['build', 'trigger', 'tag'];

async function loadPage(nextPage) {
  const query = new URLSearchParams({ public: 'true', last_modified: 'true' });
  if (nextPage) query.set('next_page', nextPage);
  return api('GET', `/repository?${query}`);
}

/** The namespaces the user may create repositories in: their own and organizations allowing it. */
function creatableNamespaces(user) {
  const orgs = (user.organizations || []).filter((org) => org.can_create_repo).map((org) => org.name);
  return [user.username, ...orgs];
}

function repositoryLink(repo) {
  return h('a', { href: `#/repository/${encodeURIComponent(repo.namespace)}/${repo.name}` }, `${repo.namespace}/${repo.name}`);
}

/** The create dialog; the namespaces offered are read afresh (an organization may be new). */
async function createRepositoryDialog() {
  const user = await api('GET', '/user/');
  return formDialog({
    title: 'Create repository',
    submitText: 'Create',
    fields: [
      { name: 'namespace', label: 'Namespace', type: 'select', options: creatableNamespaces(user), value: user.username },
      {
        name: 'repository',
        label: 'Repository name',
        required: true,
        validate: (value) =>
          value.split('/').some((part) => RESERVED_WORDS.includes(part))
            ? `Do not use ${RESERVED_WORDS.join(', ')} as a repository name.`
            : null,
      },
      { name: 'description', label: 'Description', type: 'textarea' },
      { name: 'visibility', label: 'Visibility', type: 'select', options: [{ value: 'private', label: 'Private' }, { value: 'public', label: 'Public' }], value: 'private' },
    ],
    onSubmit: (values) => api('POST', '/repository', values),
  });
}

export async function render(root, params, ctx) {
  const state = { rows: [], nextPage: null };
  const search = h('input', { type: 'search', name: 'search', value: params.query.get('q') || '' });
  const tableSlot = h('div');
  const more = h('button', { type: 'button', class: 'secondary' }, 'Load more');
  let table = null;

  function draw() {
    const text = search.value.trim().toLowerCase();
    const rows = state.rows.filter((repo) => !text || `${repo.namespace}/${repo.name}`.toLowerCase().includes(text));
    table = dataTable({
      columns: [
        { key: 'name', label: 'Name', render: repositoryLink },
        { key: 'visibility', label: 'Visibility', render: (repo) => (repo.is_public ? 'Public' : 'Private') },
        { key: 'state', label: 'State' },
        { key: 'last_modified', label: 'Last modified', render: (repo) => formatTime(repo.last_modified) },
      ],
      rows,
      selectable: true,
      rowKey: (repo) => `${repo.namespace}/${repo.name}`,
      emptyText: text ? 'No repository matches the search.' : 'No repositories yet. Create one, or push an image.',
    });
    tableSlot.replaceChildren(table.element);
    more.hidden = !state.nextPage;
  }

  async function load(reset) {
    const answer = await loadPage(reset ? null : state.nextPage);
    state.rows = reset ? answer.repositories : [...state.rows, ...answer.repositories];
    state.nextPage = answer.next_page || null;
    draw();
  }

  async function deleteSelected() {
    const chosen = table.selected();
    if (!chosen.length) {
      toast('Select the repositories to delete first.', 'error');
      return;
    }
    const names = chosen.map((repo) => `${repo.namespace}/${repo.name}`);
    const ok = await confirmDialog({
      title: `Delete ${names.length === 1 ? 'repository' : `${names.length} repositories`}`,
      message: h('div', {}, h('p', {}, 'These repositories and all their tags will be deleted permanently:'), h('ul', {}, names.map((name) => h('li', {}, name)))),
      requireTyped: 'confirm',
    });
    if (!ok) return;
    const failures = [];
    for (const repo of chosen) {
      try {
        await api('DELETE', repoPath(repo.namespace, repo.name));
      } catch (error) {
        failures.push(`Failed to delete repository ${repo.namespace}/${repo.name}, HTTP${error.status} - ${error.detail}`);
      }
    }
    failures.forEach((message) => toast(message, 'error'));
    if (failures.length < chosen.length) toast(`Deleted ${chosen.length - failures.length} repositories.`);
    await load(true);
  }

  const create = h('button', { type: 'button', class: 'primary' }, 'Create Repository');
  create.addEventListener('click', async () => {
    const created = await createRepositoryDialog();
    if (created) ctx.navigate(`#/repository/${encodeURIComponent(created.namespace)}/${created.name}`);
  });
  const remove = h('button', { type: 'button', class: 'danger' }, 'Delete');
  remove.addEventListener('click', deleteSelected);
  more.addEventListener('click', () => load(false).catch((error) => tableSlot.append(errorBox(error))));
  search.addEventListener('input', () => {
    ctx.replaceQuery({ q: search.value });
    draw();
  });

  root.append(
    pageHeader('Repositories', create),
    h('div', { class: 'toolbar' }, field('Search repositories', search), remove),
    tableSlot,
    h('div', { class: 'pager' }, more),
  );
  await load(true);
}

// A repository: its header and tabs (tags, tag history, mirroring, settings, placement).
import { h } from '../lib/dom.js';
import { api, repoPath } from '../lib/api.js';
import { settle, tabs } from '../lib/components.js';
import { renderTags } from './repo_tags.js';
import { renderHistory } from './repo_history.js';
import { renderMirroring } from './repo_mirroring.js';
import { renderSettings } from './repo_settings.js';
import { renderPlacement } from './repo_placement.js';

/** The hash of a repository page (its tab in the query). */
export function repositoryHash(namespace, name, tab = null) {
  return `#/repository/${encodeURIComponent(namespace)}/${name}${tab ? `?tab=${tab}` : ''}`;
}

function badges(repo) {
  return h(
    'p',
    { class: 'muted' },
    h('span', { class: 'chip' }, repo.is_public ? 'Public' : 'Private'),
    h('span', { class: 'chip' }, `State: ${repo.state}`),
    repo.description ? h('span', { class: 'description' }, repo.description) : null,
  );
}

export async function render(root, params, ctx) {
  const { ns, repo: name } = params;
  const repo = await api('GET', `${repoPath(ns, name)}?includeTags=false`);
  const reload = () => ctx.refresh();
  const context = { ...ctx, repo, path: repoPath(ns, name), reload };
  const list = [
    { id: 'tags', label: 'Tags', render: (panel) => settle(panel, renderTags(panel, context)) },
    { id: 'history', label: 'Tag history', render: (panel) => settle(panel, renderHistory(panel, context)) },
  ];
  if (repo.can_admin) {
    list.push(
      { id: 'mirroring', label: 'Mirroring', render: (panel) => settle(panel, renderMirroring(panel, context)) },
      { id: 'settings', label: 'Settings', render: (panel) => settle(panel, renderSettings(panel, context)) },
      { id: 'placement', label: 'Placement', render: (panel) => settle(panel, renderPlacement(panel, context)) },
    );
  }
  const active = params.query.get('tab') || 'tags';
  root.append(
    h(
      'nav',
      { class: 'breadcrumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: '#/repositories' }, 'Repositories'),
      ' / ',
      repo.is_organization ? h('a', { href: `#/organization/${encodeURIComponent(ns)}` }, ns) : ns,
    ),
    h('header', { class: 'page-header' }, h('h1', {}, `${ns}/${name}`)),
    badges(repo),
    tabs(list, list.some((tab) => tab.id === active) ? active : 'tags', (id) => ctx.replaceQuery({ tab: id })),
  );
}

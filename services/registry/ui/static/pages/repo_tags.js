// The Tags tab: live tags a page at a time (the API's keyset next_page), filter by name, bulk delete
// and expiration, labels, pull commands, and the platforms of multi-arch indexes.
import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { dataTable, field, formatBytes, formatTime, toast } from '../lib/components.js';
import { changeExpiration, deleteTags, editLabels, showPullDialog } from './repo_tag_actions.js';

export const TAGS_PER_PAGE = 50;

/** GET one page of live tags: the first, or the one a previous answer's next_page points at. */
export function fetchTagPage(path, { nextPage = null, filter = '' } = {}) {
  const query = new URLSearchParams({ onlyActiveTags: 'true', limit: String(TAGS_PER_PAGE) });
  if (nextPage) query.set('next_page', nextPage);
  else query.set('page', '1');
  if (filter) query.set('filter_tag_name', `like:${filter}`);
  return api('GET', `${path}/tag/?${query}`);
}

export function shortDigest(digest) {
  return digest ? `${digest.slice(0, 19)}…` : '—';
}

function tagHash(repo, name) {
  return `#/repository/${encodeURIComponent(repo.namespace)}/${repo.name}/tag/${encodeURIComponent(name)}`;
}

/** The platforms of an index, fetched once per digest however many tags point at it. */
function indexPlatforms(path, digest, cache) {
  if (!cache.has(digest)) cache.set(digest, api('GET', `${path}/manifest/${digest}`));
  return cache.get(digest);
}

/** The platform chips of an index (filled in after the row is drawn), '—' for an image. */
function platformCell(path, tag, cache) {
  const cell = h('span', { class: 'platforms' }, tag.is_manifest_list ? '…' : '—');
  if (tag.is_manifest_list) {
    indexPlatforms(path, tag.manifest_digest, cache)
      .then((manifest) => {
        const document = JSON.parse(manifest.manifest_data);
        const platforms = (document.manifests || [])
          .filter((entry) => entry.platform)
          .map((entry) => [entry.platform.os, entry.platform.architecture, entry.platform.variant].filter(Boolean).join('/'));
        cell.replaceChildren(...platforms.map((platform) => h('span', { class: 'chip' }, platform)));
      })
      .catch(() => cell.replaceChildren('—'));
  }
  return cell;
}

export async function renderTags(panel, ctx) {
  const { repo, path } = ctx;
  const pages = [null]; // next_page tokens: pages[i] starts page i+1
  const manifests = new Map(); // digest → GET manifest promise, shared by the pages
  let pageIndex = 0;
  let table = null;
  const filter = h('input', { type: 'search', name: 'filter' });
  const slot = h('div');
  const pageLabel = h('span', { class: 'muted', 'aria-live': 'polite' });
  const previous = h('button', { type: 'button', class: 'secondary' }, 'Previous page');
  const next = h('button', { type: 'button', class: 'secondary' }, 'Next page');

  function selectedOrWarn() {
    const chosen = table ? table.selected() : [];
    if (!chosen.length) toast('Select one or more tags first.', 'error');
    return chosen;
  }

  function actionsCell(tag) {
    return h(
      'div',
      { class: 'row-actions small' },
      h('button', { type: 'button', class: 'secondary', onclick: () => showPullDialog(repo, tag) }, 'Pull'),
      repo.can_write
        ? [
            h('button', { type: 'button', class: 'secondary', onclick: async () => { if (await editLabels(path, tag.manifest_digest)) load(); } }, 'Edit labels'),
            h('button', { type: 'button', class: 'secondary', onclick: async () => { if (await changeExpiration(path, [tag])) load(); } }, 'Change expiration'),
          ]
        : null,
    );
  }

  async function load() {
    const answer = await fetchTagPage(path, { nextPage: pages[pageIndex], filter: filter.value.trim() });
    pages[pageIndex + 1] = answer.next_page || null;
    table = dataTable({
      columns: [
        { key: 'name', label: 'Tag', render: (tag) => h('a', { href: tagHash(repo, tag.name) }, tag.name) },
        { key: 'manifest_digest', label: 'Digest', render: (tag) => h('code', { title: tag.manifest_digest }, shortDigest(tag.manifest_digest)) },
        { key: 'size', label: 'Size', render: (tag) => formatBytes(tag.size) },
        { key: 'last_modified', label: 'Last modified', render: (tag) => formatTime(tag.start_ts) },
        { key: 'expiration', label: 'Expires', render: (tag) => (tag.end_ts ? formatTime(tag.end_ts) : 'Never') },
        { key: 'platforms', label: 'Platforms', render: (tag) => platformCell(path, tag, manifests) },
        { key: 'actions', label: 'Actions', render: actionsCell },
      ],
      rows: answer.tags,
      selectable: repo.can_write,
      rowKey: (tag) => tag.name,
      emptyText: filter.value ? 'No tag matches the filter.' : 'This repository has no tags yet. Push an image to see it here.',
    });
    slot.replaceChildren(table.element);
    pageLabel.textContent = `Page ${pageIndex + 1}`;
    previous.disabled = pageIndex === 0;
    next.disabled = !pages[pageIndex + 1];
  }

  previous.addEventListener('click', () => { pageIndex -= 1; load(); });
  next.addEventListener('click', () => { pageIndex += 1; load(); });
  let typing = null;
  filter.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => { pages.length = 1; pageIndex = 0; load(); }, 250);
  });
  const bulk = repo.can_write
    ? [
        h('button', { type: 'button', class: 'secondary', onclick: async () => { const chosen = selectedOrWarn(); if (chosen.length && (await changeExpiration(path, chosen))) load(); } }, 'Set expiration'),
        h('button', { type: 'button', class: 'danger', onclick: async () => { const chosen = selectedOrWarn(); if (chosen.length && (await deleteTags(path, chosen.map((tag) => tag.name)))) load(); } }, 'Delete tags'),
      ]
    : [];
  panel.append(
    h('div', { class: 'toolbar' }, field('Filter tags', filter), ...bulk),
    slot,
    h('div', { class: 'pager' }, previous, pageLabel, next),
  );
  await load();
}

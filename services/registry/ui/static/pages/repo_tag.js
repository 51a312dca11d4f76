// A tag's details: name, repository, digest, created, modified, size, expiration, labels, how to
// pull it, and its layers (or, for a multi-arch index, its platform manifests).
import { h } from '../lib/dom.js';
import { api, ApiError, repoPath } from '../lib/api.js';
import { dataTable, formatBytes, formatTime, pageHeader } from '../lib/components.js';
import { changeExpiration, deleteTags, editLabels, pullCommandList } from './repo_tag_actions.js';
import { shortDigest } from './repo_tags.js';

async function liveTag(path, name) {
  const query = new URLSearchParams({ specificTag: name, onlyActiveTags: 'true', limit: '1' });
  const { tags } = await api('GET', `${path}/tag/?${query}`);
  if (!tags.length) throw new ApiError(404, `There is no tag ${name} in this repository.`);
  return tags[0];
}

function platformsOf(manifest) {
  const document = JSON.parse(manifest.manifest_data);
  return (document.manifests || []).map((entry) => ({
    digest: entry.digest,
    size: entry.size,
    platform: entry.platform ? [entry.platform.os, entry.platform.architecture, entry.platform.variant].filter(Boolean).join('/') : 'unknown',
  }));
}

function layersTable(manifest) {
  return dataTable({
    caption: 'Layers',
    columns: [
      { key: 'index', label: '#', render: (layer) => String(layer.index + 1) },
      { key: 'blob_digest', label: 'Digest', render: (layer) => h('code', { title: layer.blob_digest }, shortDigest(layer.blob_digest)) },
      { key: 'compressed_size', label: 'Size', render: (layer) => formatBytes(layer.compressed_size) },
      { key: 'command', label: 'Command', render: (layer) => (layer.command ? h('code', {}, layer.command) : '—') },
    ],
    rows: manifest.layers || [],
    emptyText: 'No layers.',
  }).element;
}

export async function render(root, params, ctx) {
  const { ns, repo: name, tag: tagName } = params;
  const path = repoPath(ns, name);
  const [repo, tag] = await Promise.all([api('GET', `${path}?includeTags=false`), liveTag(path, tagName)]);
  const [manifest, labels] = await Promise.all([
    api('GET', `${path}/manifest/${tag.manifest_digest}`),
    api('GET', `${path}/manifest/${tag.manifest_digest}/labels`),
  ]);
  const repoHash = `#/repository/${encodeURIComponent(ns)}/${name}`;
  const actions = [];
  if (repo.can_write) {
    actions.push(
      h('button', { type: 'button', class: 'secondary', onclick: async () => { if (await editLabels(path, tag.manifest_digest)) ctx.refresh(); } }, 'Edit labels'),
      h('button', { type: 'button', class: 'secondary', onclick: async () => { if (await changeExpiration(path, [tag])) ctx.refresh(); } }, 'Change expiration'),
      h('button', { type: 'button', class: 'danger', onclick: async () => { if (await deleteTags(path, [tag.name])) ctx.navigate(repoHash); } }, 'Delete tag'),
    );
  }
  const facts = [
    ['Name', tag.name],
    ['Repository', h('a', { href: repoHash }, `${ns}/${name}`)],
    ['Digest', h('code', {}, tag.manifest_digest)],
    ['Created', formatTime(manifest.created)],
    ['Modified', formatTime(tag.start_ts)],
    ['Size', formatBytes(tag.size)],
    ['Expires', tag.end_ts ? formatTime(tag.end_ts) : 'Never'],
    ['Media type', manifest.media_type],
    ['Labels', labels.labels.length ? labels.labels.map((label) => h('span', { class: 'chip' }, `${label.key}=${label.value}`)) : 'None'],
  ];
  root.append(
    h('nav', { class: 'breadcrumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/repositories' }, 'Repositories'), ' / ', h('a', { href: repoHash }, `${ns}/${name}`)),
    pageHeader(`${ns}/${name}:${tag.name}`, ...actions),
    h('dl', { class: 'details tag-details' }, facts.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)])),
    h('h2', {}, 'Fetch this tag'),
    pullCommandList(repo, tag.name),
    manifest.is_manifest_list
      ? dataTable({
          caption: 'Platforms',
          columns: [
            { key: 'platform', label: 'Platform' },
            { key: 'digest', label: 'Digest', render: (entry) => h('code', { title: entry.digest }, shortDigest(entry.digest)) },
            { key: 'size', label: 'Manifest size', render: (entry) => formatBytes(entry.size) },
          ],
          rows: platformsOf(manifest),
        }).element
      : layersTable(manifest),
  );
}

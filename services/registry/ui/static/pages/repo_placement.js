// The Placement tab (repository administrators): for a tag chosen, where each of its blobs is placed
// and which required locations still miss it (GET …/manifest/{digest}/placements; the chosen tag is
// kept in the page's query, ?tag=); for superusers also the storage locations the repository's
// namespace must be placed in (geo-replication targets) and how far each location's copies are.
import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { dataTable, errorBox, field, formatBytes, loading } from '../lib/components.js';
import { fetchTagPage, shortDigest } from './repo_tags.js';

/** Where the namespace's blobs go: its own targets, or the registry's defaults. */
function placementLine(namespace, targets) {
  const shown = targets.uses_defaults ? targets.locations : targets.targets;
  if (!shown.length) return h('p', {}, `No placement targets for ${namespace}: each blob stays in the location it was pushed to.`);
  return h(
    'p',
    {},
    `Blobs of ${namespace} are placed in: `,
    shown.map((location) => h('span', { class: 'chip' }, location)),
    targets.uses_defaults ? " (the registry's default locations)" : " (this namespace's own targets)",
  );
}

function locationChips(locations, { missing = false } = {}) {
  if (!locations.length) return h('span', { class: 'muted' }, missing ? 'none' : 'nowhere');
  return locations.map((location) =>
    h('span', { class: missing ? 'chip chip-missing' : 'chip chip-placed' }, missing ? `${location} (missing)` : location),
  );
}

/** One line saying how many blobs are placed everywhere they must be. */
function placementSummary(tag, placements) {
  const incomplete = placements.blobs.filter((blob) => blob.missing.length).length;
  const total = placements.blobs.length;
  const state = !placements.required.length
    ? 'no location is required (replication is off or has no targets)'
    : incomplete
      ? `${incomplete} of ${total} not yet in every required location`
      : `all ${total} in every required location`;
  return h(
    'p',
    { class: 'placement-summary', 'aria-live': 'polite' },
    `Tag ${tag.name} (`,
    h('code', { title: placements.manifest }, shortDigest(placements.manifest)),
    `): ${total} blob${total === 1 ? '' : 's'}, ${state}.`,
    placements.truncated ? ' Only the first blobs are listed.' : null,
  );
}

function blobTable(placements) {
  const columns = [
    { key: 'digest', label: 'Blob', render: (blob) => h('code', { title: blob.digest }, shortDigest(blob.digest)) },
    { key: 'kind', label: 'Kind' },
    { key: 'size', label: 'Size', render: (blob) => formatBytes(blob.size) },
    { key: 'locations', label: 'Placed in', render: (blob) => locationChips(blob.locations) },
    { key: 'missing', label: 'Missing from', render: (blob) => locationChips(blob.missing, { missing: true }) },
  ];
  if (placements.blobs.some((blob) => blob.manifests.some((digest) => digest !== placements.manifest))) {
    columns.push({
      key: 'manifests',
      label: 'Platform manifests',
      render: (blob) => blob.manifests.map((digest) => h('code', { class: 'chip', title: digest }, shortDigest(digest))),
    });
  }
  return dataTable({
    columns,
    rows: placements.blobs,
    caption: 'Blobs of the tag and their storage locations',
    emptyText: 'This manifest refers to no blob.',
  }).element;
}

/** The live tag of this name, or null. */
async function liveTag(path, name) {
  const query = new URLSearchParams({ specificTag: name, onlyActiveTags: 'true', limit: '1' });
  const answer = await api('GET', `${path}/tag/?${query}`);
  return answer.tags.find((tag) => tag.name === name) || null;
}

async function showTagPlacements(slot, path, name) {
  slot.replaceChildren(loading());
  try {
    const tag = await liveTag(path, name);
    if (!tag) {
      slot.replaceChildren(errorBox(`No live tag named ${name} in this repository.`));
      return;
    }
    const placements = await api('GET', `${path}/manifest/${tag.manifest_digest}/placements`);
    slot.replaceChildren(placementSummary(tag, placements), blobTable(placements));
  } catch (error) {
    if (error && error.status === 401) return;
    slot.replaceChildren(errorBox(error));
  }
}

/** The tag picker (suggesting the first page of live tags) and the chosen tag's blob placements. */
async function tagPlacements(ctx) {
  const { path } = ctx;
  const firstPage = await fetchTagPage(path);
  const suggestions = h('datalist', { id: 'placement-tags' }, firstPage.tags.map((tag) => h('option', { value: tag.name })));
  const wanted = new URLSearchParams(location.hash.split('?')[1] || '').get('tag');
  const initial = wanted || (firstPage.tags[0] ? firstPage.tags[0].name : '');
  const input = h('input', { type: 'search', name: 'tag', list: 'placement-tags', required: true, maxlength: '128', value: initial });
  const slot = h('div', { class: 'tag-placements' });
  const form = h(
    'form',
    {
      class: 'inline-form',
      onsubmit: (event) => {
        event.preventDefault();
        const name = input.value.trim();
        if (!name) return;
        ctx.replaceQuery({ tag: name });
        showTagPlacements(slot, path, name);
      },
    },
    field('Tag', input),
    suggestions,
    h('button', { type: 'submit' }, 'Show placements'),
  );
  if (initial) showTagPlacements(slot, path, initial);
  else slot.replaceChildren(h('p', { class: 'empty' }, 'This repository has no tags yet. Push an image to see where its blobs are placed.'));
  return [h('h3', {}, 'Where the blobs of a tag are placed'), form, slot];
}

export async function renderPlacement(panel, ctx) {
  if (!ctx.user.super_user) {
    panel.append(h('h2', {}, 'Placement per region'), ...(await tagPlacements(ctx)));
    return;
  }
  const { repo } = ctx;
  const [targets, status, perTag] = await Promise.all([
    api('GET', `/superuser/replication/${encodeURIComponent(repo.namespace)}`),
    api('GET', '/superuser/replication/status'),
    tagPlacements(ctx),
  ]);
  const wanted = new Set(targets.uses_defaults ? targets.locations : targets.targets);
  const rows = status.locations.filter((location) => wanted.has(location.location));
  // Inside h(): the notice is left out when null (Element.append would write "null").
  panel.append(
    h('h2', {}, 'Placement per region'),
    h(
      'div',
      {},
      placementLine(repo.namespace, targets),
      targets.replication_enabled
        ? null
        : h('p', { class: 'muted' }, 'Geo-replication is switched off: targets are kept, but nothing is copied; each blob stays in the location it was pushed to.'),
    ),
    dataTable({
      columns: [
        { key: 'location', label: 'Location' },
        { key: 'state', label: 'State' },
        { key: 'pending', label: 'Copies pending' },
        { key: 'in_flight', label: 'Copying' },
        { key: 'failed', label: 'Failing' },
        { key: 'bytes_copied', label: 'Copied', render: (row) => formatBytes(row.bytes_copied) },
      ],
      rows,
      emptyText: 'No copies were queued for these locations yet.',
    }).element,
    h('p', { class: 'muted' }, 'Counts are for every namespace replicating to each location.'),
    ...perTag,
  );
}

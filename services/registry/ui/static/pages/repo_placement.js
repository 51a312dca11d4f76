// The Placement tab (superusers): the storage locations the repository's namespace must be placed
// in (geo-replication targets), and how far each location's copies are.
import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { dataTable, formatBytes } from '../lib/components.js';

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

export async function renderPlacement(panel, ctx) {
  const { repo } = ctx;
  const [targets, status] = await Promise.all([
    api('GET', `/superuser/replication/${encodeURIComponent(repo.namespace)}`),
    api('GET', '/superuser/replication/status'),
  ]);
  const wanted = new Set(targets.uses_defaults ? targets.locations : targets.targets);
  const rows = status.locations.filter((location) => wanted.has(location.location));
  panel.append(
    h('h2', {}, 'Placement per region'),
    placementLine(repo.namespace, targets),
    targets.replication_enabled
      ? null
      : h('p', { class: 'muted' }, 'Geo-replication is switched off: targets are kept, but nothing is copied; each blob stays in the location it was pushed to.'),
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
  );
}

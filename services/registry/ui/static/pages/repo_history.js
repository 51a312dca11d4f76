// The Tag history tab: every tag change (live and ended tags, newest first), searchable by tag name
// and date range, with restore for deleted or moved tags while the time machine keeps them.
import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { dataTable, field, formatTime, toast } from '../lib/components.js';
import { shortDigest } from './repo_tags.js';

const HISTORY_PAGE = 100;

function fetchHistory(path, { nextPage = null, name = '' }) {
  const query = new URLSearchParams({ limit: String(HISTORY_PAGE) });
  if (nextPage) query.set('next_page', nextPage);
  if (name) query.set('filter_tag_name', `like:${name}`);
  return api('GET', `${path}/tag/?${query}`);
}

/** What happened to the tag in this row, in words. */
function change(row, now) {
  if (row.end_ts === undefined || row.end_ts === null) return `${row.name} points at ${shortDigest(row.manifest_digest)}`;
  if (row.end_ts > now) return `${row.name} expires ${formatTime(row.end_ts)}`;
  return `${row.name} was deleted or moved from ${shortDigest(row.manifest_digest)}`;
}

/** Seconds since the epoch of a date input's value (start of that day, or its end with endOfDay). */
function dayBoundary(value, endOfDay) {
  if (!value) return null;
  const date = new Date(`${value}T00:00:00`);
  if (endOfDay) date.setDate(date.getDate() + 1);
  return Math.floor(date.getTime() / 1000);
}

export async function renderHistory(panel, ctx) {
  const { repo, path } = ctx;
  const state = { rows: [], nextPage: null };
  const name = h('input', { type: 'search', name: 'tag-name' });
  const from = h('input', { type: 'date', name: 'from' });
  const to = h('input', { type: 'date', name: 'to' });
  const slot = h('div');
  const more = h('button', { type: 'button', class: 'secondary' }, 'Load more');

  async function restore(row) {
    await api('POST', `${path}/tag/${encodeURIComponent(row.name)}/restore`, { manifest_digest: row.manifest_digest });
    toast(`Restored tag ${row.name} to ${shortDigest(row.manifest_digest)}`);
    await load(true);
  }

  function draw() {
    const now = Date.now() / 1000;
    const start = dayBoundary(from.value, false);
    const end = dayBoundary(to.value, true);
    const rows = state.rows.filter((row) => (start === null || row.start_ts >= start) && (end === null || row.start_ts < end));
    const table = dataTable({
      columns: [
        { key: 'name', label: 'Tag' },
        { key: 'change', label: 'Change', render: (row) => change(row, now) },
        { key: 'manifest_digest', label: 'Digest', render: (row) => h('code', { title: row.manifest_digest }, shortDigest(row.manifest_digest)) },
        { key: 'start_ts', label: 'Started', render: (row) => formatTime(row.start_ts) },
        { key: 'end_ts', label: 'Ended', render: (row) => (row.end_ts ? formatTime(row.end_ts) : '—') },
        {
          key: 'restore',
          label: 'Restore',
          render: (row) =>
            repo.can_write && row.end_ts && row.end_ts <= now
              ? h('button', { type: 'button', class: 'secondary small', 'aria-label': `Restore ${row.name} to ${row.manifest_digest}`, onclick: () => restore(row).catch((error) => toast(error.detail || error.message, 'error')) }, 'Restore')
              : '',
        },
      ],
      rows,
      emptyText: 'No tag changes match.',
    });
    slot.replaceChildren(table.element);
    more.hidden = !state.nextPage;
  }

  async function load(reset) {
    const answer = await fetchHistory(path, { nextPage: reset ? null : state.nextPage, name: name.value.trim() });
    state.rows = reset ? answer.tags : [...state.rows, ...answer.tags];
    state.nextPage = answer.next_page || null;
    draw();
  }

  let typing = null;
  name.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => load(true), 250);
  });
  from.addEventListener('change', draw);
  to.addEventListener('change', draw);
  more.addEventListener('click', () => load(false));
  panel.append(
    h('div', { class: 'toolbar' }, field('Search by tag name', name), field('From', from), field('To', to)),
    h('p', { class: 'muted' }, 'The date range applies to the changes loaded so far; Load more reaches older ones.'),
    slot,
    h('div', { class: 'pager' }, more),
  );
  await load(true);
}

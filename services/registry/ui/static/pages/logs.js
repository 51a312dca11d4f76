// Usage logs of an organization, a repository or the user's namespace (`base` = the API path that
// owns them: '/organization/acme', '/repository/acme/app', '/user'): a date range (From, To), a
// performer, a filter over the loaded entries, the chart of actions per day (aggregatelogs), the
// entries a page at a time, and Quay's export (an e-mail address or a callback URL).

import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { dataTable, errorBox, field, formatTime, loading, toast } from '../lib/components.js';
import { actionsPerDayChart } from '../lib/chart.js';
import { actions, button, openDialog, seg } from '../lib/org_components.js';

const DAY_MS = 86_400_000;
const DEFAULT_DAYS = 7;

/** A date input's YYYY-MM-DD as Quay's %m/%d/%Y. */
function quayDate(isoDay) {
  const [year, month, day] = isoDay.split('-');
  return `${month}/${day}/${year}`;
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function metadataText(metadata) {
  if (!metadata || typeof metadata !== 'object') return '';
  return Object.entries(metadata)
    .filter(([, value]) => value !== null && value !== undefined && value !== '')
    .map(([key, value]) => `${key}: ${typeof value === 'object' ? JSON.stringify(value) : value}`)
    .join(', ');
}

function performerText(entry) {
  if (!entry.performer) return '(anonymous)';
  return entry.performer.is_robot ? `${entry.performer.name} (robot)` : entry.performer.name;
}

function matches(entry, needle) {
  if (!needle) return true;
  const haystack = `${entry.kind} ${performerText(entry)} ${entry.ip || ''} ${metadataText(entry.metadata)}`;
  return haystack.toLowerCase().includes(needle);
}

function logTable(entries) {
  return dataTable({
    columns: [
      { key: 'datetime', label: 'Date and time', render: (entry) => formatTime(entry.datetime) },
      { key: 'kind', label: 'Action' },
      { key: 'performer', label: 'Performed by', render: performerText },
      { key: 'ip', label: 'IP address', render: (entry) => entry.ip || '' },
      { key: 'metadata', label: 'Details', render: (entry) => metadataText(entry.metadata) },
    ],
    rows: entries,
    emptyText: 'No log entries in this range.',
  }).element;
}

async function exportLogs(base, range) {
  const destination = h('input', { type: 'text', name: 'destination', required: true, autocomplete: 'off' });
  const answer = await openDialog({
    title: 'Export usage logs',
    body: [
      h('p', {}, 'The export runs in the background; it can take a while when there are many logs.'),
      field('Email address or callback URL (http:// or https://)', destination),
    ],
    submitText: 'Export',
    onSubmit: async () => {
      const value = destination.value.trim();
      const body = /^https?:\/\//.test(value) ? { callback_url: value } : { callback_email: value };
      return api('POST', `${base}/exportlogs?${range}`, body);
    },
  });
  if (answer) toast(`Export started (id ${answer.export_id}).`);
}

export async function renderLogs(panel, { base }) {
  const today = new Date();
  const from = h('input', {
    type: 'date',
    name: 'from',
    value: isoDay(new Date(today.getTime() - (DEFAULT_DAYS - 1) * DAY_MS)),
  });
  const to = h('input', { type: 'date', name: 'to', value: isoDay(today) });
  const performer = h('input', { type: 'text', name: 'performer', autocomplete: 'off' });
  const filter = h('input', { type: 'search', name: 'filter', autocomplete: 'off' });
  const chartHolder = h('div', { class: 'org-chart' });
  const tableHolder = h('div', {});
  const moreSlot = h('div', {});
  let entries = [];
  let range = '';
  let nextPage = null;
  const more = button('Load more', () => loadPage(nextPage));

  const redrawTable = () => {
    const needle = filter.value.trim().toLowerCase();
    tableHolder.replaceChildren(logTable(entries.filter((entry) => matches(entry, needle))));
  };
  async function loadPage(next) {
    const query = next ? `${range}&next_page=${seg(next)}` : range;
    const answer = await api('GET', `${base}/logs?${query}`);
    entries = next ? entries.concat(answer.logs) : answer.logs;
    nextPage = answer.next_page || null;
    moreSlot.replaceChildren(...(nextPage ? [more] : []));
    redrawTable();
  }
  async function show() {
    const params = new URLSearchParams();
    if (from.value) params.set('starttime', quayDate(from.value));
    if (to.value) params.set('endtime', quayDate(to.value));
    if (performer.value.trim()) params.set('performer', performer.value.trim());
    range = params.toString();
    chartHolder.replaceChildren(loading());
    tableHolder.replaceChildren();
    moreSlot.replaceChildren();
    try {
      const { aggregated } = await api('GET', `${base}/aggregatelogs?${range}`);
      const start = from.value ? new Date(`${from.value}T00:00:00Z`) : new Date(today.getTime() - DAY_MS);
      const end = to.value ? new Date(`${to.value}T00:00:00Z`) : today;
      chartHolder.replaceChildren(actionsPerDayChart(aggregated, start, end));
      await loadPage(null);
    } catch (error) {
      chartHolder.replaceChildren(errorBox(error));
    }
  }
  filter.addEventListener('input', redrawTable);
  const form = h(
    'form',
    {
      class: 'toolbar',
      onsubmit: (event) => {
        event.preventDefault();
        show();
      },
    },
    field('From', from),
    field('To', to),
    field('Performed by', performer),
    h('button', { type: 'submit' }, 'Show logs'),
  );
  panel.append(
    form,
    actions(button('Export', () => exportLogs(base, range), { class: 'secondary' })),
    chartHolder,
    h('div', { class: 'toolbar' }, field('Filter logs', filter)),
    tableHolder,
    moreSlot,
  );
  await show();
}

// An organization's Quota tab: the usage bar against the quota and its Warning / Reject limits
// (from the organization's view: `quota_report`, `quotas`). As in Quay, only superusers set the
// quota and its limits; the organization's administrators see them.

import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { confirmDialog, dataTable, field, formatBytes, toast } from '../lib/components.js';
import {
  actions,
  button,
  choiceSelect,
  errorText,
  openDialog,
  quotaMeter,
  section,
  seg,
} from '../lib/org_components.js';

async function setQuota(org, quota, ctx) {
  const size = h('input', {
    type: 'text',
    name: 'limit',
    required: true,
    value: quota ? formatBytes(quota.limit_bytes) : '',
    autocomplete: 'off',
  });
  const saved = await openDialog({
    title: quota ? 'Change the quota' : 'Set a quota',
    body: [field('Storage quota (for example 10 GiB or 500 MiB)', size)],
    onSubmit: async () => {
      const body = { limits: size.value.trim() };
      if (quota) await api('PUT', `/organization/${seg(org)}/quota/${quota.id}`, body);
      else await api('POST', `/organization/${seg(org)}/quota`, body);
    },
  });
  if (saved) {
    toast('Saved the quota.');
    ctx.refresh();
  }
}

async function removeQuota(org, quota, ctx) {
  if (
    !(await confirmDialog({
      title: 'Remove the quota',
      message: `Remove the ${formatBytes(quota.limit_bytes)} quota of ${org}?`,
    }))
  ) {
    return;
  }
  try {
    await api('DELETE', `/organization/${seg(org)}/quota/${quota.id}`);
    toast('Removed the quota.');
    ctx.refresh();
  } catch (error) {
    toast(errorText(error), 'error');
  }
}

async function addLimit(org, quota, ctx) {
  const type = choiceSelect({ Warning: 'Warning', Reject: 'Reject' }, 'Warning', { name: 'type' });
  const percent = h('input', {
    type: 'number',
    name: 'percent',
    min: 1,
    max: 100,
    value: 80,
    required: true,
  });
  const saved = await openDialog({
    title: 'Add a quota limit',
    body: [field('Action', type), field('Threshold (percent of the quota)', percent)],
    submitText: 'Add limit',
    onSubmit: () =>
      api('POST', `/organization/${seg(org)}/quota/${quota.id}/limit`, {
        type: type.value,
        threshold_percent: Number(percent.value),
      }),
  });
  if (saved) {
    toast('Added the limit.');
    ctx.refresh();
  }
}

async function removeLimit(org, quota, limit, ctx) {
  try {
    await api('DELETE', `/organization/${seg(org)}/quota/${quota.id}/limit/${limit.id}`);
    toast('Removed the limit.');
    ctx.refresh();
  } catch (error) {
    toast(errorText(error), 'error');
  }
}

function limitsTable(org, quota, superuser, ctx) {
  const columns = [
    { key: 'type', label: 'Action' },
    { key: 'limit_percent', label: 'Threshold', render: (limit) => `${limit.limit_percent} %` },
    {
      key: 'bytes',
      label: 'At',
      render: (limit) => formatBytes(Math.round((quota.limit_bytes * limit.limit_percent) / 100)),
    },
  ];
  if (superuser && quota.id !== null) {
    columns.push({
      key: 'actions',
      label: 'Actions',
      render: (limit) =>
        button('Remove', () => removeLimit(org, quota, limit, ctx), {
          'aria-label': `Remove the ${limit.type} limit`,
        }),
    });
  }
  return dataTable({ columns, rows: quota.limits, emptyText: 'No limits: the quota is only reported.' })
    .element;
}

export async function renderQuota(panel, organization, ctx) {
  const org = organization.name;
  const superuser = Boolean(ctx.user && ctx.user.super_user);
  const report = organization.quota_report || { quota_bytes: 0, configured_quota: null };
  const quota = (organization.quotas || [])[0] || null;
  const usage = section('Usage', quotaMeter(report.quota_bytes, report.configured_quota));
  if (!quota) {
    const note =
      report.configured_quota != null
        ? 'No quota of its own: the system default quota applies.'
        : 'No quota: the organization may grow without limit.';
    panel.append(
      usage,
      section(
        'Quota',
        h('p', {}, note),
        superuser ? actions(button('Set quota', () => setQuota(org, null, ctx), { class: 'primary' })) : null,
      ),
    );
    return;
  }
  panel.append(
    usage,
    section(
      'Quota',
      h('p', {}, `Quota: ${formatBytes(quota.limit_bytes)}`),
      superuser
        ? actions(
            button('Change quota', () => setQuota(org, quota, ctx)),
            button('Add limit', () => addLimit(org, quota, ctx)),
            button('Remove quota', () => removeQuota(org, quota, ctx), { class: 'danger' }),
          )
        : h('p', { class: 'hint' }, 'Only superusers change quotas.'),
      limitsTable(org, quota, superuser, ctx),
    ),
  );
}

// One organization: its tabs (repositories, teams and membership, robot accounts, default
// permissions, usage logs, quota, proxy cache, settings). Others see the repositories they may
// read, members the first three tabs, administrators all (the API decides what each may do: the
// tabs only follow its `is_member` and `is_admin`).

import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { errorBox, loading, pageHeader, tabs } from '../lib/components.js';
import { guarded, seg } from '../lib/org_components.js';
import { renderRepositories } from './org_repositories.js';
import { renderTeams } from './org_teams.js';
import { renderRobots } from './robot_accounts.js';
import { renderDefaultPermissions } from './org_default_permissions.js';
import { renderLogs } from './logs.js';
import { renderQuota } from './org_quota.js';
import { renderProxyCache } from './org_proxycache.js';
import { renderSettings } from './org_settings.js';

function tabList(organization, ctx) {
  const name = organization.name;
  const robotsContext = { base: `/organization/${seg(name)}`, namespace: name, organization };
  const repositories = {
    id: 'repositories',
    label: 'Repositories',
    render: (panel) => renderRepositories(panel, organization, ctx),
  };
  if (!organization.is_member) return [repositories];
  const member = [
    repositories,
    { id: 'teams', label: 'Teams and membership', render: (panel) => renderTeams(panel, organization, ctx) },
    { id: 'robots', label: 'Robot accounts', render: (panel) => renderRobots(panel, robotsContext, ctx) },
  ];
  if (!organization.is_admin) return member;
  return [
    ...member,
    {
      id: 'defaultpermissions',
      label: 'Default permissions',
      render: (panel) => renderDefaultPermissions(panel, organization, ctx),
    },
    {
      id: 'logs',
      label: 'Logs',
      render: (panel) => renderLogs(panel, { base: `/organization/${seg(name)}` }),
    },
    { id: 'quota', label: 'Quota', render: (panel) => renderQuota(panel, organization, ctx) },
    { id: 'proxycache', label: 'Proxy cache', render: (panel) => renderProxyCache(panel, organization, ctx) },
    { id: 'settings', label: 'Settings', render: (panel) => renderSettings(panel, organization, ctx) },
  ];
}

export async function render(root, params, ctx) {
  const spinner = loading();
  root.append(spinner);
  let organization;
  try {
    organization = await api('GET', `/organization/${seg(params.org)}`);
  } catch (error) {
    spinner.replaceWith(errorBox(error));
    return;
  }
  const list = tabList(organization, ctx).map((tab) => ({ ...tab, render: guarded(tab.render) }));
  const requested = params.query.get('tab');
  const active = list.some((tab) => tab.id === requested) ? requested : list[0].id;
  const onChange = (id) => ctx.replaceQuery({ tab: id });
  spinner.replaceWith(
    pageHeader(
      organization.name,
      h('a', { href: '#/organizations', class: 'org-back' }, 'All organizations'),
    ),
    tabs(list, active, onChange),
  );
}

// The signed-in user's own namespace: its robot accounts and its usage logs (`#/user?tab=robots`).

import { pageHeader, tabs } from '../lib/components.js';
import { guarded } from '../lib/org_components.js';
import { renderRobots } from './robot_accounts.js';
import { renderLogs } from './logs.js';

export async function render(root, params, ctx) {
  const user = ctx.user;
  const list = [
    {
      id: 'robots',
      label: 'Robot accounts',
      render: guarded((panel) => renderRobots(panel, { base: '/user', namespace: user.username }, ctx)),
    },
    { id: 'logs', label: 'Usage logs', render: guarded((panel) => renderLogs(panel, { base: '/user' })) },
  ];
  const requested = params.query.get('tab');
  const active = list.some((tab) => tab.id === requested) ? requested : 'robots';
  root.append(
    pageHeader(`Account ${user.username}`),
    tabs(list, active, (id) => ctx.replaceQuery({ tab: id })),
  );
}

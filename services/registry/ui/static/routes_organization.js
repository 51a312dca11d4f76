// Routes of the organization, team, robot, usage-log and superuser pages (merged by app.js).

export const routes = [
  {
    pattern: '/organizations',
    load: () => import('./pages/organizations.js'),
    title: 'Organizations',
    nav: { label: 'Organizations', order: 20 },
  },
  {
    pattern: '/organization/:org',
    load: () => import('./pages/org_detail.js'),
    title: 'Organization',
  },
  {
    pattern: '/organization/:org/teams/:team',
    load: () => import('./pages/team_detail.js'),
    title: 'Team',
  },
  {
    pattern: '/user',
    load: () => import('./pages/robot_user_page.js'),
    title: 'Account',
    nav: { label: 'Account', order: 30 },
  },
  {
    pattern: '/superuser',
    load: () => import('./pages/superuser_panel.js'),
    title: 'Superuser',
    nav: { label: 'Superuser', order: 90, superuser: true },
  },
];

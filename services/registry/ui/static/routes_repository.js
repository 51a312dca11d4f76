// Routes of the repository pages. ':repo*' may contain slashes (acme/team/app).
export const routes = [
  {
    pattern: '/repositories',
    load: () => import('./pages/repositories.js'),
    title: 'Repositories',
    nav: { label: 'Repositories', order: 10 },
  },
  {
    pattern: '/repository/:ns/:repo*/tag/:tag',
    load: () => import('./pages/repo_tag.js'),
    title: 'Tag',
  },
  {
    pattern: '/repository/:ns/:repo*',
    load: () => import('./pages/repo_detail.js'),
    title: 'Repository',
  },
];

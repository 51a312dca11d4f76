// An organization's Proxy cache tab: make it a pull-through cache of an upstream registry
// (validate first, if wished), see its configuration, or stop caching. Upstream credentials are
// sent once and never shown again (the API does not answer them).

import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { confirmDialog, errorBox, field, toast } from '../lib/components.js';
import { actions, button, errorText, section, seg } from '../lib/org_components.js';

const DEFAULT_EXPIRATION_S = 86_400;

function configuredView(org, config, ctx) {
  const remove = async () => {
    const confirmed = await confirmDialog({
      title: 'Stop caching',
      message: `${org} stops being a cache of ${config.upstream_registry}. Cached repositories stay as ordinary ones.`,
      confirmText: 'Delete configuration',
    });
    if (!confirmed) return;
    try {
      await api('DELETE', `/organization/${seg(org)}/proxycache`);
      toast('Deleted the proxy cache configuration.');
      ctx.refresh();
    } catch (error) {
      toast(errorText(error), 'error');
    }
  };
  return section(
    'Proxy cache',
    h(
      'dl',
      { class: 'details' },
      h('dt', {}, 'Remote registry'),
      h('dd', {}, config.upstream_registry),
      h('dt', {}, 'Expiration'),
      h('dd', {}, `${config.expiration_s} seconds`),
      h('dt', {}, 'Insecure'),
      h('dd', {}, config.insecure ? 'Yes: the upstream TLS certificate is not verified' : 'No'),
    ),
    actions(button('Delete proxy cache configuration', remove, { class: 'danger' })),
  );
}

function configurationForm(org, ctx) {
  const upstream = h('input', {
    type: 'text',
    name: 'upstream_registry',
    required: true,
    autocomplete: 'off',
  });
  const username = h('input', { type: 'text', name: 'username', autocomplete: 'off' });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password' });
  const expiration = h('input', {
    type: 'number',
    name: 'expiration_s',
    min: 1,
    value: DEFAULT_EXPIRATION_S,
  });
  const insecure = h('input', { type: 'checkbox', name: 'insecure' });
  const outcome = h('div', { 'aria-live': 'polite' });
  const body = () => {
    const request = {
      upstream_registry: upstream.value.trim(),
      expiration_s: Number(expiration.value) || DEFAULT_EXPIRATION_S,
      insecure: insecure.checked,
    };
    if (username.value) request.upstream_registry_username = username.value;
    if (password.value) request.upstream_registry_password = password.value;
    return request;
  };
  const validate = async () => {
    outcome.replaceChildren();
    try {
      await api('POST', `/organization/${seg(org)}/proxycache/validate`, body());
      outcome.replaceChildren(
        h('p', { class: 'status-ok' }, 'The upstream answers and takes the credentials.'),
      );
    } catch (error) {
      outcome.replaceChildren(errorBox(error));
    }
  };
  const form = h(
    'form',
    {
      class: 'org-form',
      onsubmit: async (event) => {
        event.preventDefault();
        outcome.replaceChildren();
        try {
          await api('POST', `/organization/${seg(org)}/proxycache`, body());
          toast('Saved the proxy cache configuration.');
          ctx.refresh();
        } catch (error) {
          outcome.replaceChildren(errorBox(error));
        }
      },
    },
    field('Remote registry (host[:port][/namespace], for example quay.io)', upstream),
    field('Remote registry username (optional)', username),
    field('Remote registry password (optional)', password),
    field('Expiration (seconds a cached tag is served without asking the upstream)', expiration),
    h('label', { class: 'radio' }, insecure, 'Insecure: do not verify the upstream TLS certificate'),
    outcome,
    actions(
      button('Validate', validate, { class: 'secondary' }),
      h('button', { type: 'submit', class: 'primary' }, 'Save'),
    ),
  );
  return section(
    'Proxy cache',
    h(
      'p',
      { class: 'hint' },
      "A cache organization serves the upstream registry's images under its own name, pulled on first use.",
    ),
    form,
  );
}

export async function renderProxyCache(panel, organization, ctx) {
  const org = organization.name;
  const config = await api('GET', `/organization/${seg(org)}/proxycache`);
  panel.append(config.upstream_registry ? configuredView(org, config, ctx) : configurationForm(org, ctx));
}

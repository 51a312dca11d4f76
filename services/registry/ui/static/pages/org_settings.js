// An organization's Settings tab: its e-mail address and time-machine window (how long deleted
// tags stay restorable), and deleting the organization.

import { h } from '../lib/dom.js';
import { api } from '../lib/api.js';
import { confirmDialog, errorBox, field, toast } from '../lib/components.js';
import { actions, button, choiceSelect, errorText, section, seg } from '../lib/org_components.js';

/** The windows the API accepts (shared/auth/accounts.py TIME_MACHINE_WINDOWS_S). */
export const TIME_MACHINE_CHOICES = {
  0: 'Never (deleted tags are gone at once)',
  86400: '1 day',
  604800: '1 week',
  1209600: '2 weeks',
  2419200: '4 weeks',
};

async function deleteOrganization(org, ctx) {
  const confirmed = await confirmDialog({
    title: 'Delete organization',
    message: `Delete ${org} with all its repositories, teams and robot accounts? This cannot be undone.`,
    requireTyped: 'confirm',
  });
  if (!confirmed) return;
  try {
    await api('DELETE', `/organization/${seg(org)}`);
    toast(`Deleted organization ${org}`);
    ctx.navigate('#/organizations');
  } catch (error) {
    toast(errorText(error), 'error');
  }
}

export async function renderSettings(panel, organization, ctx) {
  const org = organization.name;
  const email = h('input', {
    type: 'email',
    name: 'email',
    value: organization.email || '',
    autocomplete: 'off',
  });
  const timeMachine = choiceSelect(TIME_MACHINE_CHOICES, String(organization.tag_expiration_s), {
    name: 'tag_expiration_s',
  });
  const outcome = h('div', { 'aria-live': 'polite' });
  const form = h(
    'form',
    {
      class: 'org-form',
      onsubmit: async (event) => {
        event.preventDefault();
        outcome.replaceChildren();
        try {
          await api('PUT', `/organization/${seg(org)}`, {
            email: email.value.trim() || null,
            tag_expiration_s: Number(timeMachine.value),
          });
          toast('Successfully updated organization settings');
        } catch (error) {
          outcome.replaceChildren(errorBox(error));
        }
      },
    },
    field('Email', email),
    field('Time machine', timeMachine),
    h('p', { class: 'hint' }, 'How long deleted and replaced tags stay restorable from the tag history.'),
    outcome,
    h('button', { type: 'submit', class: 'primary' }, 'Save'),
  );
  panel.append(
    section('Organization settings', form),
    section(
      'Delete organization',
      actions(button('Delete organization', () => deleteOrganization(org, ctx), { class: 'danger' })),
    ),
  );
}

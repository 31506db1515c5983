// Messages for the user, in one aria-live region. Errors stay until dismissed or replaced
// by the same kind of message; the rest fade out.

import { $, h, icon, ICONS } from './dom.js';

const INFO_MS = 6000;
const keyed = new Map();

/**
 * Show a message. `kind`: info | success | error | warning. `key` replaces an earlier message
 * with the same key (so a retried action does not stack errors). `action`: {label, run}.
 */
export function notify(message, { kind = 'info', key, action, sticky } = {}) {
  const region = $('notices');
  if (key && keyed.has(key)) dismiss(keyed.get(key));
  const item = h(
    'div',
    { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : null },
    icon(kind === 'error' || kind === 'warning' ? ICONS.alert : kind === 'success' ? ICONS.check : ICONS.info, 'notice-icon'),
    h('p', { class: 'notice-text', text: message }),
  );
  if (action) {
    item.append(
      h('button', {
        type: 'button',
        class: 'btn btn-sm btn-secondary notice-action',
        text: action.label,
        onclick: () => {
          dismiss(item);
          action.run();
        },
      }),
    );
  }
  item.append(
    h(
      'button',
      { type: 'button', class: 'icon-btn notice-close', 'aria-label': 'Dismiss message', onclick: () => dismiss(item) },
      icon(ICONS.close),
    ),
  );
  if (key) {
    item.dataset.key = key;
    keyed.set(key, item);
  }
  region.append(item);
  if (!sticky && kind !== 'error' && kind !== 'warning') {
    setTimeout(() => dismiss(item), INFO_MS);
  }
  return item;
}

export function dismiss(item) {
  if (!item || !item.isConnected) return;
  if (item.dataset.key && keyed.get(item.dataset.key) === item) keyed.delete(item.dataset.key);
  item.remove();
}

export function dismissKey(key) {
  if (keyed.has(key)) dismiss(keyed.get(key));
}

export function clearNotices() {
  for (const item of [...$('notices').children]) dismiss(item);
}

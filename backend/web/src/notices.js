// Messages for the user, in one aria-live region. Errors stay until dismissed or replaced
// by the same kind of message (or fade when `transient`: also shown by their field); the
// rest fade out.

import { $, h, icon, ICONS } from './dom.js';

const INFO_MS = 6000;
const TRANSIENT_ERROR_MS = 9000;
const keyed = new Map();

/**
 * Show a message. `kind`: info | success | error | warning. `key` replaces an earlier message
 * with the same key (so a retried action does not stack errors). `action`: {label, run}.
 */
export function notify(message, { kind = 'info', key, action, sticky, transient } = {}) {
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
  // Above an open modal dialog, re-stack the region first (then the addition is announced).
  if (document.querySelector('dialog[open]')) bringToFront(region);
  region.append(item);
  if (transient) {
    // Errors also shown next to their field fade out, so they do not cover the form.
    setTimeout(() => dismiss(item), TRANSIENT_ERROR_MS);
  } else if (!sticky && kind !== 'error' && kind !== 'warning') {
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

/**
 * Keep the messages above any open modal dialog: the region is a manual popover (top layer),
 * re-shown so it stacks over the newest dialog. Without popover support it stays a fixed box.
 */
export function bringToFront(region = $('notices')) {
  if (typeof region.showPopover !== 'function') return;
  try {
    if (region.matches(':popover-open')) region.hidePopover();
    region.showPopover();
  } catch {
    // Not connected yet, or popovers unsupported: the fixed position still shows it.
  }
}

/** Open a modal dialog, keeping the messages visible above it. */
export function openModal(dialog) {
  if (!dialog.open) dialog.showModal();
  if ($('notices').childElementCount) bringToFront();
}

// "My tokens": polled every 2 s while signed in, updated in place (so focus and selections
// survive), with a live countdown corrected for the server's clock.

import { api, NetworkError } from './api.js';
import { $, h, icon, ICONS, setText, show } from './dom.js';
import { describeError } from './errors.js';
import {
  formatBytes,
  formatCountdown,
  formatDuration,
  formatTime,
  shortHex,
  subtype,
} from './format.js';
import { dismissKey, notify } from './notices.js';
import { on, serverNow, state, updateSkew } from './state.js';

const POLL_MS = 2000;
const HIDDEN_POLL_MS = 10000;

const STATUS = {
  pending_mint: { label: 'Pending mint', tone: 'pending' },
  minted: { label: 'Minted', tone: 'ok' },
  persistent: { label: 'Persistent', tone: 'accent' },
  expired: { label: 'Expired', tone: 'muted' },
  deleted: { label: 'Deleted', tone: 'muted' },
};

const KIND_NAME = { text: 'Text prompt', image: 'Image', audio: 'Audio clip' };

/** id → {el, refs, token} */
const cards = new Map();
/** Things this page did that the server has not reflected yet: id → {persistTx, burnTx}. */
const pending = new Map();
const fresh = new Set();

let actions = null;
let running = false;
let generation = 0;
let wake = null;
let ticker = null;
let offline = false;
let loaded = false;

/** `handlers`: {view, persist, remove, burn, receipt}(token) */
export function initTokens(handlers) {
  actions = handlers;
  on('token-created', (id) => {
    if (id) fresh.add(id);
    refreshNow();
  });
  on('token-changed', () => refreshNow());
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refreshNow();
  });
}

export function startPolling() {
  stopPolling();
  running = true;
  loaded = false;
  const gen = ++generation;
  loop(gen);
  ticker = setInterval(tick, 1000);
}

export function stopPolling() {
  running = false;
  generation++;
  if (wake) wake();
  clearInterval(ticker);
  ticker = null;
  for (const { el } of cards.values()) el.remove();
  cards.clear();
  pending.clear();
  fresh.clear();
  show($('tokens-empty'), false);
  setText($('tokens-count'), '');
  offline = false;
  dismissKey('poll');
}

export function refreshNow() {
  if (wake) wake();
}

/** Remember a transaction this page sent for a token, shown until the server catches up. */
export function notePending(id, patch) {
  pending.set(id, { ...(pending.get(id) || {}), ...patch });
  const card = cards.get(id);
  if (card) update(card, card.token);
}

async function loop(gen) {
  while (running && gen === generation) {
    try {
      const answer = await api.tokens();
      if (gen !== generation) return;
      updateSkew(answer.server_time);
      render(Array.isArray(answer.tokens) ? answer.tokens : []);
      if (offline) {
        offline = false;
        dismissKey('poll');
        notify('Connection to the SLT server is back.', { kind: 'success', key: 'poll' });
      }
    } catch (err) {
      if (gen !== generation) return;
      if (err instanceof NetworkError) {
        if (!offline) {
          offline = true;
          notify(`${describeError(err)} Retrying every few seconds…`, { kind: 'error', key: 'poll' });
        }
      } else if (err.status !== 401) {
        notify(describeError(err), { kind: 'error', key: 'poll' });
      }
    }
    await new Promise((resolve) => {
      const timer = setTimeout(done, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
      wake = done;
      function done() {
        clearTimeout(timer);
        wake = null;
        resolve();
      }
    });
  }
}

// Rendering ---------------------------------------------------------------------------------

function render(tokens) {
  const list = $('token-list');
  const sorted = [...tokens].sort((a, b) => Number(b.created_at || 0) - Number(a.created_at || 0));
  const seen = new Set();
  let previous = null;
  for (const token of sorted) {
    seen.add(token.id);
    let card = cards.get(token.id);
    if (!card) {
      card = build(token);
      cards.set(token.id, card);
      if (fresh.delete(token.id) || loaded) card.el.classList.add('fresh');
    }
    update(card, token);
    // Keep DOM order equal to `sorted` without moving nodes that are already in place.
    const expected = previous ? previous.nextSibling : list.firstChild;
    if (expected !== card.el) list.insertBefore(card.el, expected);
    previous = card.el;
  }
  for (const [id, card] of cards) {
    if (!seen.has(id)) {
      card.el.remove();
      cards.delete(id);
    }
  }
  loaded = true;
  show($('tokens-empty'), sorted.length === 0);
  const live = sorted.filter((t) => ['pending_mint', 'minted', 'persistent'].includes(t.status));
  setText(
    $('tokens-count'),
    sorted.length ? `${live.length} live · ${sorted.length} in total` : '',
  );
}

function build(token) {
  const refs = {};
  const button = (name, label, cls) =>
    (refs[name] = h('button', {
      type: 'button',
      class: `btn btn-sm ${cls}`,
      text: label,
      onclick: () => actions[name](refs.token),
    }));

  const el = h(
    'li',
    { class: 'token-card', dataset: { id: token.id } },
    h(
      'div',
      { class: 'tc-head' },
      (refs.kindIcon = h('span', { class: 'tc-kind', 'aria-hidden': 'true' })),
      h(
        'div',
        { class: 'tc-title' },
        h(
          'h3',
          { class: 'tc-name' },
          (refs.name = h('span')),
          (refs.tokenId = h('span', { class: 'tc-id mono', hidden: true })),
        ),
        (refs.meta = h('p', { class: 'tc-meta' })),
      ),
      (refs.badge = h('span', { class: 'badge' })),
    ),
    h(
      'div',
      { class: 'tc-life' },
      h(
        'div',
        { class: 'tc-life-row' },
        (refs.lifeLabel = h('span', { class: 'tc-life-label' })),
        (refs.countdown = h('span', { class: 'tc-countdown mono' })),
      ),
      (refs.progress = h('progress', { class: 'tc-progress', max: '1', value: '1' })),
    ),
    (refs.details = h('dl', { class: 'tc-details' })),
    (refs.note = h('p', { class: 'tc-note', hidden: true })),
    h(
      'div',
      { class: 'tc-actions' },
      button('view', 'View', 'btn-secondary'),
      button('persist', 'Make persistent', 'btn-secondary'),
      button('receipt', 'Receipt', 'btn-secondary'),
      h('span', { class: 'tc-actions-spacer' }),
      button('remove', 'Delete', 'btn-ghost btn-danger-text'),
      button('burn', 'Burn from wallet', 'btn-ghost btn-danger-text'),
    ),
  );
  refs.rows = {
    commitment: detailRow(refs.details, 'Commitment'),
    mint: detailRow(refs.details, 'Mint tx'),
    burn: detailRow(refs.details, 'Burn tx'),
  };
  return { el, refs, token, kind: null };
}

function detailRow(dl, label) {
  const value = h('code', { class: 'mono' });
  const copy = h(
    'button',
    {
      type: 'button',
      class: 'icon-btn copy-btn',
      'aria-label': `Copy ${label.toLowerCase()}`,
      title: `Copy ${label.toLowerCase()}`,
      onclick: () => copyText(value.dataset.full || value.textContent, label),
    },
    icon(ICONS.copy),
  );
  const row = h('div', { class: 'tc-row', hidden: true }, h('dt', { text: label }), h('dd', {}, value, copy));
  dl.append(row);
  return { row, value, copy };
}

function setRow(row, full, { short = true, copy = true } = {}) {
  const has = full !== null && full !== undefined && full !== '';
  show(row.row, has);
  if (!has) return;
  const text = short ? shortHex(full, 8, 6) : String(full);
  setText(row.value, text);
  row.value.dataset.full = String(full);
  row.value.title = String(full);
  show(row.copy, copy);
}

function update(card, token) {
  const { refs } = card;
  card.token = token;
  refs.token = token;
  const chain = token.chain || {};
  const status = STATUS[token.status] ? token.status : 'pending_mint';
  const kind = KIND_NAME[token.kind] ? token.kind : 'text';

  if (card.kind !== kind) {
    card.kind = kind;
    refs.kindIcon.replaceChildren(icon(ICONS[kind]));
    refs.kindIcon.className = `tc-kind tc-kind-${kind}`;
  }
  card.el.dataset.status = status;
  setText(refs.name, KIND_NAME[kind]);
  const parts = [];
  if (kind !== 'text' && token.content_type) parts.push(subtype(token.content_type));
  if (token.size !== undefined && token.size !== null) parts.push(formatBytes(token.size));
  if (token.created_at) parts.push(`created ${formatTime(token.created_at)}`);
  setText(refs.meta, parts.join(' · '));
  setText(refs.badge, STATUS[status].label);
  refs.badge.className = `badge badge-${STATUS[status].tone}`;

  const hasId = chain.token_id !== null && chain.token_id !== undefined;
  setText(refs.tokenId, hasId ? `#${chain.token_id}` : '');
  refs.tokenId.title = hasId ? `Token ID ${chain.token_id} on chain ${chain.chain_id ?? ''}` : '';
  show(refs.tokenId, hasId);
  setRow(refs.rows.commitment, chain.commitment);
  setRow(refs.rows.mint, chain.mint_tx);
  setRow(refs.rows.burn, chain.burn_tx);

  // What this page is waiting for.
  const local = pending.get(token.id) || {};
  let note = '';
  if (local.persistTx && status !== 'persistent') {
    note = `Persist transaction ${shortHex(local.persistTx, 10, 8)} sent. Waiting for the chain to confirm…`;
  } else if (local.burnTx && status !== 'deleted') {
    note = `Burn transaction ${shortHex(local.burnTx, 10, 8)} sent. Waiting for the server to shred the data…`;
  } else if (local.persistRequested && status !== 'persistent') {
    note = 'Persisting… waiting for the chain.';
  }
  if (local.persistTx && status === 'persistent') pending.delete(token.id);
  setText(refs.note, note);
  show(refs.note, !!note);

  const live = status === 'pending_mint' || status === 'minted' || status === 'persistent';
  const minted = chain.token_id !== null && chain.token_id !== undefined;
  show(refs.view, live);
  show(
    refs.persist,
    status === 'minted' && token.switchable && !token.persistent && minted && !local.persistTx,
  );
  show(refs.receipt, status === 'deleted');
  show(refs.remove, live);
  show(refs.burn, live && minted && !local.burnTx);
  for (const name of ['view', 'persist', 'receipt', 'remove', 'burn']) {
    refs[name].setAttribute('aria-label', `${refs[name].textContent}: ${KIND_NAME[kind]} ${describeWhen(token)}`);
  }
  updateLife(card);
}

function describeWhen(token) {
  return token.created_at ? `created ${formatTime(token.created_at)}` : token.id;
}

function updateLife(card) {
  const { refs, token } = card;
  const status = card.el.dataset.status;
  const progress = refs.progress;
  show(progress, status !== 'deleted' && status !== 'expired');
  if (status === 'deleted' || status === 'expired' || status === 'persistent' || token.persistent) {
    card.el.classList.remove('ending'); // the urgent style is for a running countdown only
  }
  if (status === 'deleted') {
    setText(refs.lifeLabel, token.shredded_at ? 'Deleted and shredded at' : 'Deleted and shredded');
    setText(refs.countdown, token.shredded_at ? formatTime(token.shredded_at) : '');
    return;
  }
  if (status === 'expired') {
    setText(refs.lifeLabel, token.expires_at ? 'Expired and shredded at' : 'Expired and shredded');
    setText(refs.countdown, token.expires_at ? formatTime(token.expires_at) : '');
    return;
  }
  if (status === 'persistent' || token.persistent || !token.expires_at) {
    setText(refs.lifeLabel, 'Kept until you delete it');
    setText(refs.countdown, 'No expiry');
    setProgress(progress, 1, 'No expiry');
    return;
  }
  const remaining = Number(token.expires_at) - serverNow();
  const total = Number(token.expires_at) - Number(token.created_at || token.expires_at - 3600);
  if (remaining <= 0) {
    setText(refs.lifeLabel, 'Expiring…');
    setText(refs.countdown, '0:00');
    setProgress(progress, 0, 'Expiring now');
    return;
  }
  setText(refs.lifeLabel, 'Expires in');
  setText(refs.countdown, formatCountdown(remaining));
  refs.countdown.title = `Expires ${formatTime(token.expires_at)}`;
  card.el.classList.toggle('ending', remaining < 60);
  setProgress(progress, total > 0 ? remaining / total : 0, `${formatDuration(remaining)} left`);
}

function setProgress(progress, fraction, label) {
  const value = Math.max(0, Math.min(1, fraction)).toFixed(3);
  if (progress.getAttribute('value') !== value) progress.setAttribute('value', value);
  progress.setAttribute('aria-label', `Lifetime: ${label}`);
}

function tick() {
  for (const card of cards.values()) updateLife(card);
}

export async function copyText(text, label = 'Value') {
  try {
    await navigator.clipboard.writeText(text);
    notify(`${label} copied.`, { kind: 'success', key: 'copy' });
  } catch {
    notify(`Copying is blocked here. ${label}: ${text}`, { kind: 'info', key: 'copy', sticky: true });
  }
}

export function chainIdOf(token) {
  return (token && token.chain && token.chain.chain_id) || (state.config && state.config.chain_id);
}

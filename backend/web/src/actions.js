// What the owner can do to a token: persist it, delete it through the API, or burn it from the
// wallet, each with the progress shown until the server and the chain agree.

import { encodeFunctionData, parseAbi } from 'viem';

import { api } from './api.js';
import { ensureChain } from './auth.js';
import { $, h, icon, ICONS, setText } from './dom.js';
import { describeError } from './errors.js';
import { formatTime, shortHex } from './format.js';
import { notify, openModal } from './notices.js';
import { emit, state } from './state.js';
import { chainIdOf, copyText, notePending } from './tokens.js';

const SLT_ABI = parseAbi(['function burn(uint256 tokenId)', 'function persist(uint256 tokenId)']);
const POLL_MS = 2000;
const POLL_LIMIT_MS = 10 * 60 * 1000;

let receiptWatch = 0; // bumps to stop the current receipt poll

export function initActions() {
  const dialog = $('receipt-dialog');
  dialog.querySelector('.js-close').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => {
    receiptWatch++;
  });
}

const tokenLabel = (token) =>
  token.chain && token.chain.token_id !== null && token.chain.token_id !== undefined
    ? `token #${token.chain.token_id}`
    : 'this token';

// Confirmation ---------------------------------------------------------------------------------

function confirm({ title, text, ok }) {
  const dialog = $('confirm-dialog');
  setText($('confirm-title'), title);
  setText($('confirm-text'), text);
  setText($('confirm-ok'), ok);
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    openModal(dialog);
    dialog.querySelector('button[value="cancel"]').focus();
  });
}

// Persist ------------------------------------------------------------------------------------

export async function persistToken(token) {
  let answer;
  try {
    answer = await api.persist(token.id);
  } catch (err) {
    notify(describeError(err, 'persist'), { kind: 'error', key: `persist-${token.id}` });
    return;
  }
  const tx = answer && answer.transaction;
  if (!tx) {
    notePending(token.id, { persistRequested: true });
    notify('Persisting… the token will show as persistent once the chain confirms.', { kind: 'info' });
    emit('token-changed', token.id);
    return;
  }
  try {
    await ensureChain(tx.chain_id || chainIdOf(token));
    notify('Confirm the persist transaction in your wallet.', { kind: 'info', key: `persist-${token.id}` });
    const hash = await state.wallet.sendTransaction({ to: tx.to, data: tx.data });
    notePending(token.id, { persistTx: hash });
    notify(`Persist transaction sent: ${shortHex(hash, 10, 8)}. It becomes persistent once mined.`, {
      kind: 'success',
      key: `persist-${token.id}`,
    });
    emit('token-changed', token.id);
  } catch (err) {
    notify(describeError(err, 'persist'), { kind: 'error', key: `persist-${token.id}` });
  }
}

// Delete through the API ------------------------------------------------------------------

export async function deleteToken(token) {
  const ok = await confirm({
    title: `Delete ${tokenLabel(token)}?`,
    text:
      'Its encrypted data is shredded right away and the token is burned on chain. ' +
      'This cannot be undone.',
    ok: 'Delete',
  });
  if (!ok) return;
  let answer;
  try {
    answer = await api.remove(token.id);
  } catch (err) {
    notify(describeError(err, 'delete'), { kind: 'error', key: `delete-${token.id}` });
    return;
  }
  emit('token-changed', token.id);
  notify('Deleted. The data is shredded; the burn receipt follows.', { kind: 'success' });
  openReceipt(token, answer && answer.receipt, { mode: 'api' });
}

export async function showReceipt(token) {
  let receipt;
  try {
    receipt = await api.receipt(token.id);
  } catch (err) {
    notify(describeError(err, 'receipt'), { kind: 'error', key: `receipt-${token.id}` });
    return;
  }
  openReceipt(token, receipt, { mode: 'api' });
}

// Burn from the wallet -------------------------------------------------------------------

export async function burnFromWallet(token) {
  const chain = token.chain || {};
  if (chain.token_id === null || chain.token_id === undefined) {
    notify('This token is not minted yet, so there is nothing to burn. Try again in a moment.', {
      kind: 'warning',
    });
    return;
  }
  const ok = await confirm({
    title: `Burn ${tokenLabel(token)} from your wallet?`,
    text:
      'Your wallet sends burn() to the contract. When the server sees the burn it shreds the ' +
      'encrypted data. This cannot be undone.',
    ok: 'Burn',
  });
  if (!ok) return;
  let hash;
  try {
    await ensureChain(chainIdOf(token));
    const data = encodeFunctionData({
      abi: SLT_ABI,
      functionName: 'burn',
      args: [BigInt(chain.token_id)],
    });
    notify('Confirm the burn transaction in your wallet.', { kind: 'info', key: `burn-${token.id}` });
    hash = await state.wallet.sendTransaction({ to: chain.contract || state.config.contract, data });
  } catch (err) {
    notify(describeError(err, 'burn'), { kind: 'error', key: `burn-${token.id}` });
    return;
  }
  notePending(token.id, { burnTx: hash });
  notify(`Burn transaction sent: ${shortHex(hash, 10, 8)}.`, { kind: 'success', key: `burn-${token.id}` });
  openReceipt(token, null, { mode: 'wallet', burnTx: hash });
}

// The receipt dialog -------------------------------------------------------------------------

function openReceipt(token, receipt, { mode, burnTx }) {
  const dialog = $('receipt-dialog');
  const watch = ++receiptWatch;
  setText($('receipt-title'), mode === 'wallet' ? 'Burning from your wallet' : 'Deletion receipt');
  const view = { token, receipt, mode, burnTx, status: null };
  paintReceipt(view);
  openModal(dialog);
  pollReceipt(view, watch);
}

async function pollReceipt(view, watch) {
  const started = Date.now();
  while (watch === receiptWatch && Date.now() - started < POLL_LIMIT_MS) {
    if (receiptDone(view)) return;
    await new Promise((r) => setTimeout(r, POLL_MS));
    if (watch !== receiptWatch || !state.address) return;
    try {
      if (view.mode === 'wallet' && !view.shredded) {
        const status = await api.token(view.token.id);
        if (status.status === 'deleted') {
          view.shredded = status.shredded_at || true;
          view.token = status;
          emit('token-changed', status.id);
          try {
            view.receipt = await api.receipt(view.token.id);
          } catch {
            // The receipt is a bonus here; the status already says "deleted".
          }
        }
      } else {
        view.receipt = await api.receipt(view.token.id);
      }
    } catch (err) {
      if (err && (err.status === 404 || err.status === 410) && view.mode === 'wallet') {
        view.shredded = true;
      } else if (err && err.status !== 401) {
        notify(describeError(err, 'receipt'), { kind: 'error', key: 'receipt-poll' });
      }
    }
    if (watch !== receiptWatch) return;
    paintReceipt(view);
  }
}

function receiptDone(view) {
  const r = view.receipt;
  if (view.mode === 'wallet' && !view.shredded) return false;
  if (!r) return view.mode === 'wallet' && view.shredded;
  return !!r.burn_tx || r.burn_status === 'not_minted' || r.burn_status === 'burned';
}

function paintReceipt(view) {
  const steps = $('receipt-steps');
  const r = view.receipt || {};
  const items = [];
  if (view.mode === 'wallet') {
    items.push(step('done', 'Burn transaction sent from your wallet', shortHex(view.burnTx, 10, 8)));
    items.push(
      view.shredded
        ? step('done', 'Server saw the burn and shredded the data', when(r.shredded_at || view.token.shredded_at))
        : step('current', 'Waiting for the server to see the burn and shred the data…', ''),
    );
  } else {
    items.push(step('done', 'Encrypted data shredded', when(r.shredded_at)));
    if (r.burn_status === 'not_minted') {
      items.push(step('done', 'Never minted, so there is nothing to burn', ''));
    } else if (r.burn_tx || r.burn_status === 'burned') {
      items.push(step('done', 'Token burned on chain', r.burn_tx ? shortHex(r.burn_tx, 10, 8) : ''));
    } else {
      items.push(step('current', 'Burning the token on chain…', ''));
    }
  }
  steps.replaceChildren(...items);

  const dl = $('receipt-details');
  const rows = [
    ['Token', r.token || view.token.id, false],
    ['Token ID', valueOr(r.token_id, view.token.chain && view.token.chain.token_id, (v) => `#${v}`), false],
    ['Commitment', r.commitment || (view.token.chain && view.token.chain.commitment), true],
    ['Shredded at', when(r.shredded_at || (view.shredded !== true ? view.shredded : null)), false],
    ['Burn status', r.burn_status ? BURN_STATUS[r.burn_status] || r.burn_status : null, false],
    ['Burn tx', r.burn_tx || view.burnTx, true],
  ];
  dl.replaceChildren(
    ...rows
      .filter(([, v]) => v)
      .map(([label, value, copy]) =>
        h(
          'div',
          { class: 'tc-row' },
          h('dt', { text: label }),
          h(
            'dd',
            {},
            h('code', { class: 'mono wrap', text: value }),
            copy
              ? h(
                  'button',
                  {
                    type: 'button',
                    class: 'icon-btn copy-btn',
                    'aria-label': `Copy ${label.toLowerCase()}`,
                    title: `Copy ${label.toLowerCase()}`,
                    onclick: () => copyText(value, label),
                  },
                  icon(ICONS.copy),
                )
              : null,
          ),
        ),
      ),
  );
}

const BURN_STATUS = { pending: 'Pending', burned: 'Burned', not_minted: 'Not minted' };

const valueOr = (a, b, fmt) => {
  const v = a !== null && a !== undefined ? a : b;
  return v !== null && v !== undefined ? fmt(v) : null;
};

const when = (t) => (typeof t === 'number' || (typeof t === 'string' && t) ? formatTime(t) : '');

function step(stateName, title, detail) {
  return h(
    'li',
    { class: 'step', dataset: { state: stateName } },
    h('span', { class: 'step-mark', 'aria-hidden': 'true' }),
    h(
      'span',
      { class: 'step-body' },
      h('span', { class: 'step-title', text: title }),
      detail ? h('span', { class: 'step-detail mono wrap', text: detail }) : null,
    ),
  );
}

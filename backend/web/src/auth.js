// Connect a wallet, get onto the backend's chain, and Sign-In with Ethereum (EIP-4361).

import { getAddress } from 'viem';
import { createSiweMessage } from 'viem/siwe';

import { api, setSession } from './api.js';
import { drawAvatar } from './avatar.js';
import { $, clear, h, setText, show } from './dom.js';
import { describeError, UserError } from './errors.js';
import { shortAddress } from './format.js';
import { dismissKey, notify, openModal } from './notices.js';
import { emit, serverNow, state } from './state.js';
import { discoverWallets, onWalletsChanged, parseChainId, Wallet } from './wallet.js';

const NO_WALLET =
  'No wallet found. Install a browser wallet such as MetaMask or Rabby, then reload this page.';

let busy = false;

export function initAuth() {
  $('connect').addEventListener('click', () => run(connect));
  $('switch-chain').addEventListener('click', () => run(switchChain));
  $('sign-in').addEventListener('click', () => run(signIn));
  $('sign-out').addEventListener('click', () => signOut());
  refreshWalletHint();
  onWalletsChanged(() => {
    if (!state.wallet) refreshWalletHint();
  });
}

async function refreshWalletHint() {
  const wallets = await discoverWallets();
  if (state.wallet) return;
  const detail = $('step-connect-detail');
  if (wallets.length === 0) {
    setText(detail, 'No wallet found in this browser.');
    setStep('step-connect', 'error');
  } else if (wallets.length === 1) {
    setText(detail, `${wallets[0].name} is ready.`);
    setStep('step-connect', 'current');
  } else {
    setText(detail, `${wallets.length} wallets found. You will choose one.`);
    setStep('step-connect', 'current');
  }
}

/** Run one step of the flow, one at a time, with its errors shown to the user. */
async function run(step) {
  if (busy) return;
  busy = true;
  try {
    await step();
  } finally {
    busy = false;
  }
}

function setStep(id, stateName) {
  $(id).dataset.state = stateName;
}

function setButtons({ connect = false, switchChain = false, signIn = false }) {
  show($('connect'), connect);
  show($('switch-chain'), switchChain);
  show($('sign-in'), signIn);
}

function setBusy(button, label) {
  const el = $(button);
  if (label) {
    if (!el.hasAttribute('aria-busy')) el.dataset.label = el.textContent;
    el.textContent = label;
    el.disabled = true;
    el.setAttribute('aria-busy', 'true');
  } else {
    if (el.hasAttribute('aria-busy') && el.dataset.label) el.textContent = el.dataset.label;
    el.disabled = false;
    el.removeAttribute('aria-busy');
  }
}

// Step 1 ----------------------------------------------------------------------------------

async function connect() {
  dismissKey('auth');
  setBusy('connect', 'Looking for wallets…');
  let detail;
  try {
    const wallets = await discoverWallets();
    if (wallets.length === 0) {
      setStep('step-connect', 'error');
      setText($('step-connect-detail'), 'No wallet found in this browser.');
      notify(NO_WALLET, { kind: 'error', key: 'auth' });
      return;
    }
    if (wallets.length > 1) setBusy('connect', 'Choose a wallet…');
    detail = wallets.length === 1 ? wallets[0] : await pickWallet(wallets);
    if (!detail) return; // closed the picker
    setBusy('connect', `Confirm in ${detail.name}…`);
    const wallet = new Wallet(detail);
    await wallet.connect();
    adoptWallet(wallet);
  } catch (err) {
    setStep('step-connect', 'error');
    notify(describeError(err, 'connect'), { kind: 'error', key: 'auth' });
    return;
  } finally {
    setBusy('connect');
  }
  setStep('step-connect', 'done');
  setText(
    $('step-connect-detail'),
    `${shortAddress(state.wallet.address)} in ${state.wallet.name}`,
  );
  await checkChainThenSignIn();
}

function adoptWallet(wallet) {
  if (state.wallet && state.wallet !== wallet) state.wallet.dispose();
  state.wallet = wallet;
  wallet.on('accountsChanged', onAccountsChanged);
  wallet.on('chainChanged', onChainChanged);
  wallet.on('disconnect', () => onAccountsChanged([]));
}

function pickWallet(wallets) {
  const dialog = $('wallet-dialog');
  const list = $('wallet-list');
  clear(list);
  return new Promise((resolve) => {
    let chosen = null;
    for (const w of wallets) {
      const img = w.icon
        ? h('img', { src: w.icon, alt: '', width: 32, height: 32, class: 'wallet-icon' })
        : h('span', { class: 'wallet-icon wallet-icon-blank', 'aria-hidden': 'true', text: w.name.slice(0, 1) });
      list.append(
        h(
          'li',
          {},
          h(
            'button',
            {
              type: 'button',
              class: 'wallet-option',
              onclick: () => {
                chosen = w;
                dialog.close('chosen');
              },
            },
            img,
            h('span', { class: 'wallet-name', text: w.name }),
            w.rdns ? h('span', { class: 'wallet-rdns muted', text: w.rdns }) : null,
          ),
        ),
      );
    }
    dialog.addEventListener('close', () => resolve(chosen), { once: true });
    openModal(dialog);
    list.querySelector('button')?.focus();
  });
}

// Step 2 ----------------------------------------------------------------------------------

function chainLabel(id) {
  const cfg = state.config;
  return Number(id) === Number(cfg.chain_id) ? `${cfg.chain_name} (${cfg.chain_id})` : `chain ${id}`;
}

function onRightChain() {
  return state.wallet && Number(state.wallet.chainId) === Number(state.config.chain_id);
}

async function checkChainThenSignIn() {
  if (!onRightChain()) {
    showWrongChain();
    return;
  }
  dismissKey('chain');
  setStep('step-network', 'done');
  setText($('step-network-detail'), `On ${chainLabel(state.config.chain_id)}`);
  updateNetworkPill();
  await signIn();
}

function showWrongChain() {
  const { chain_name: name, chain_id: id } = state.config;
  setStep('step-network', 'error');
  setText(
    $('step-network-detail'),
    `Your wallet is on chain ${state.wallet.chainId}; switch to ${name} (${id}).`,
  );
  setButtons({ switchChain: true });
  $('switch-chain').textContent = `Switch to ${name}`;
  updateNetworkPill();
  notify(
    `Wrong network: your wallet is on chain ${state.wallet.chainId}, but SLT runs on ${name} ` +
      `(chain ${id}). Switch network to continue.`,
    { kind: 'warning', key: 'chain' },
  );
}

async function switchChain() {
  setBusy('switch-chain', 'Confirm in your wallet…');
  try {
    await state.wallet.switchTo(state.config);
  } catch (err) {
    notify(describeError(err, 'switch'), { kind: 'error', key: 'auth' });
    return;
  } finally {
    setBusy('switch-chain');
  }
  if (!onRightChain()) {
    showWrongChain();
    return;
  }
  setButtons({});
  await checkChainThenSignIn();
}

/**
 * Before a transaction: make sure the wallet is on the backend's chain, asking it to switch if
 * not. Throws a user-facing error when it stays elsewhere.
 */
export async function ensureChain(expectedChainId = state.config.chain_id) {
  const wallet = state.wallet;
  if (!wallet) throw new UserError('Connect your wallet first.');
  await wallet.refreshChain();
  if (Number(wallet.chainId) === Number(expectedChainId)) return;
  notify(
    `Your wallet is on chain ${wallet.chainId}; asking it to switch to ${chainLabel(expectedChainId)}.`,
    { kind: 'info', key: 'chain' },
  );
  await wallet.switchTo({ ...state.config, chain_id: expectedChainId });
  if (Number(wallet.chainId) !== Number(expectedChainId)) {
    throw new UserError(
      `Wrong network: the wallet is still on chain ${wallet.chainId}. Switch to ${chainLabel(expectedChainId)} and try again.`,
    );
  }
  dismissKey('chain');
  updateNetworkPill();
}

// Step 3 ----------------------------------------------------------------------------------

async function signIn() {
  setButtons({ signIn: true });
  setStep('step-sign', 'current');
  setBusy('sign-in', 'Preparing sign-in…');
  try {
    const nonce = await api.nonce();
    const message = createSiweMessage({
      address: getAddress(state.wallet.address),
      chainId: Number(nonce.chain_id),
      domain: nonce.domain,
      uri: nonce.uri,
      nonce: nonce.nonce,
      statement: nonce.statement || undefined,
      version: '1',
      // The server's clock, not this computer's: a skewed local clock must not block sign-in.
      issuedAt: new Date(Math.floor(serverNow()) * 1000),
    });
    setBusy('sign-in', 'Sign the message in your wallet…');
    const signature = await state.wallet.signMessage(message);
    setBusy('sign-in', 'Signing in…');
    const session = await api.verify(message, signature);
    setSession(session.token);
    state.address = session.address || state.wallet.address;
  } catch (err) {
    setStep('step-sign', 'error');
    setText($('step-sign-detail'), 'Not signed in yet. Sign in to try again.');
    notify(describeError(err, 'sign'), { kind: 'error', key: 'auth' });
    return;
  } finally {
    setBusy('sign-in');
  }
  dismissKey('auth');
  setStep('step-sign', 'done');
  setText($('step-sign-detail'), 'Signed in.');
  showAccount();
  emit('signed-in', state.address);
}

function showAccount() {
  setText($('account-address'), shortAddress(state.address));
  $('account-address').title = state.address;
  drawAvatar($('account-avatar'), state.address);
  show($('account'), true);
  updateNetworkPill();
}

export function updateNetworkPill() {
  const pill = $('network-pill');
  const cfg = state.config;
  if (!cfg) return;
  show(pill, true);
  const wrong = state.wallet && !onRightChain();
  pill.className = `pill ${wrong ? 'pill-warning' : state.wallet ? 'pill-ok' : 'pill-muted'}`;
  setText($('network-name'), wrong ? 'Wrong network' : cfg.chain_name || `Chain ${cfg.chain_id}`);
  pill.title = wrong
    ? `Your wallet is on chain ${state.wallet.chainId}; SLT runs on ${cfg.chain_name} (${cfg.chain_id})`
    : `SLT runs on ${cfg.chain_name} (chain ${cfg.chain_id})`;
}

// Wallet events and sign-out -----------------------------------------------------------------

function onAccountsChanged(accounts) {
  const next = Array.isArray(accounts) && accounts.length ? accounts[0] : null;
  if (!state.wallet) return;
  if (next && state.wallet.address && next.toLowerCase() === state.wallet.address.toLowerCase()) {
    return;
  }
  if (state.address) {
    signOut({ quiet: true });
    notify(
      next
        ? `Your wallet switched to ${shortAddress(next)}. Sign in again to see that account’s tokens.`
        : 'Your wallet disconnected from this site, so you were signed out.',
      { kind: 'warning', key: 'auth' },
    );
  } else {
    resetFlow();
  }
}

function onChainChanged(chainId) {
  if (!state.wallet) return;
  state.wallet.chainId = parseChainId(chainId);
  updateNetworkPill();
  if (state.address) {
    if (onRightChain()) dismissKey('chain');
    else {
      notify(
        `Your wallet moved to chain ${state.wallet.chainId}. Persist and burn need ` +
          `${chainLabel(state.config.chain_id)}; you will be asked to switch back.`,
        { kind: 'warning', key: 'chain' },
      );
    }
  } else if (!$('switch-chain').hidden && onRightChain()) {
    run(checkChainThenSignIn);
  }
}

export async function signOut({ quiet = false, server = true } = {}) {
  const wasSignedIn = state.address !== null;
  if (wasSignedIn && server) {
    try {
      await api.logout();
    } catch {
      // The session is dropped locally either way.
    }
  }
  setSession(null);
  state.address = null;
  show($('account'), false);
  resetFlow();
  emit('signed-out');
  if (wasSignedIn && !quiet) notify('You are signed out.', { kind: 'info', key: 'auth' });
}

/** The session expired or was revoked on the server. */
export function sessionLost() {
  if (state.address === null) return;
  signOut({ quiet: true, server: false }); // the server has already forgotten the session
  notify('Your session has ended. Sign in again to continue.', { kind: 'warning', key: 'auth' });
}

function resetFlow() {
  if (state.wallet) state.wallet.dispose();
  state.wallet = null;
  setStep('step-connect', 'current');
  setStep('step-network', 'todo');
  setStep('step-sign', 'todo');
  setText($('step-network-detail'), `Chain ${state.config ? state.config.chain_id : ''}`);
  setText($('step-sign-detail'), 'Free: a signature, not a transaction.');
  setButtons({ connect: true });
  updateNetworkPill();
  refreshWalletHint();
}

// Symbiotic Learning Token: the page. Boots from GET /config, then signs in with the wallet.

import { burnFromWallet, deleteToken, initActions, persistToken, showReceipt } from './actions.js';
import { api, onSessionLost } from './api.js';
import { initAuth, sessionLost, updateNetworkPill } from './auth.js';
import { initComposer, resetComposer } from './composer.js';
import { $, setText, show } from './dom.js';
import { describeError } from './errors.js';
import { bringToFront, clearNotices, dismissKey, notify } from './notices.js';
import { on, state, updateSkew } from './state.js';
import { initTokens, startPolling, stopPolling } from './tokens.js';
import { closeViewer, initViewer, openViewer } from './viewer.js';
import { startDiscovery } from './wallet.js';

// Listen for EIP-6963 announcements before anything else can miss them.
startDiscovery();
bringToFront();

const VIEWS = ['loading', 'offline', 'welcome', 'app'];

function showView(name) {
  for (const v of VIEWS) show($(`view-${v}`), v === name);
  document.body.dataset.view = name;
}

async function loadConfig() {
  showView('loading');
  try {
    const config = await api.config();
    if (!config || config.chain_id === undefined) throw new Error('The server sent no configuration.');
    return config;
  } catch (err) {
    showView('offline');
    notify(describeError(err, 'config'), { kind: 'error', key: 'config' });
    $('retry-config').focus();
    return null;
  }
}

function applyConfig(config) {
  state.config = config;
  updateSkew(config.server_time);
  for (const el of document.querySelectorAll('.js-chain-name')) setText(el, config.chain_name || `chain ${config.chain_id}`);
  for (const el of document.querySelectorAll('.js-chain-id')) setText(el, String(config.chain_id));
  setText($('contract-address'), config.contract || '');
  show($('contract-line'), !!config.contract);
  if (!config.max_upload_bytes) config.max_upload_bytes = 0;
  updateNetworkPill();
}

let booted = false;

async function boot() {
  const config = await loadConfig();
  if (!config) return;
  dismissKey('config');
  applyConfig(config);
  if (!booted) {
    booted = true;
    initAuth();
    initComposer(config);
    initViewer();
    initActions();
    initTokens({
      view: openViewer,
      persist: persistToken,
      remove: deleteToken,
      burn: burnFromWallet,
      receipt: showReceipt,
    });
    onSessionLost(() => sessionLost());
  }
  showView('welcome');
}

on('signed-in', () => {
  showView('app');
  startPolling();
  const heading = $('composer-title');
  heading.setAttribute('tabindex', '-1');
  heading.focus();
});

on('signed-out', () => {
  stopPolling();
  closeViewer();
  for (const id of ['receipt-dialog', 'confirm-dialog']) {
    const d = $(id);
    if (d.open) d.close();
  }
  resetComposer();
  if (state.config) showView('welcome');
});

$('retry-config').addEventListener('click', () => {
  clearNotices();
  boot();
});

// Plaintext never outlives the page: close the viewer when the page is hidden for good.
window.addEventListener('pagehide', () => closeViewer());

boot();

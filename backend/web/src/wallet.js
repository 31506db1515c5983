// Browser wallets: EIP-6963 discovery (mipd) with a window.ethereum fallback, and the few
// EIP-1193 calls the page needs. The page never talks to a node itself: only to the wallet.

import { createStore } from 'mipd';
import { stringToHex } from 'viem';

export const USER_REJECTED = 4001;
export const UNAUTHORIZED = 4100;
export const UNRECOGNIZED_CHAIN = 4902;
export const REQUEST_PENDING = -32002;

/** An EIP-1193 error, normalised: some wallets nest the real code in `data.originalError`. */
export class WalletError extends Error {
  constructor(code, message, cause) {
    super(message || 'The wallet refused the request.');
    this.name = 'WalletError';
    this.code = code;
    this.cause = cause;
  }
}

export function toWalletError(err) {
  if (err instanceof WalletError) return err;
  const nested = err && err.data && err.data.originalError;
  const code = Number(err && (err.code ?? (nested && nested.code)));
  const message = (err && err.message) || (nested && nested.message) || String(err);
  return new WalletError(Number.isFinite(code) ? code : undefined, message, err);
}

let store = null;

/** Start listening for EIP-6963 announcements as early as possible. */
export function startDiscovery() {
  if (!store) store = createStore();
  return store;
}

/**
 * The wallets of this browser: every EIP-6963 announcement, else window.ethereum alone.
 * Waits up to `waitMs` for a first announcement (wallets answer the request synchronously,
 * but some inject late).
 */
export async function discoverWallets(waitMs = 400) {
  const s = startDiscovery();
  if (s.getProviders().length === 0) {
    await new Promise((resolve) => {
      const timer = setTimeout(done, waitMs);
      const unsubscribe = s.subscribe((list) => {
        if (list.length) done();
      });
      function done() {
        clearTimeout(timer);
        unsubscribe();
        resolve();
      }
    });
  }
  const announced = s.getProviders().map((d) => ({
    id: d.info.uuid,
    name: d.info.name || 'Wallet',
    icon: safeIcon(d.info.icon),
    rdns: d.info.rdns || '',
    provider: d.provider,
  }));
  if (announced.length) return announced;
  const legacy = typeof window !== 'undefined' ? window.ethereum : undefined;
  if (legacy && typeof legacy.request === 'function') {
    return [{ id: 'injected', name: legacyName(legacy), icon: '', rdns: '', provider: legacy }];
  }
  return [];
}

/** Subscribe to wallets announced later (e.g. an extension enabled after load). */
export function onWalletsChanged(listener) {
  return startDiscovery().subscribe(() => listener());
}

function safeIcon(icon) {
  // EIP-6963 icons are data URIs; anything else would be a request to a third party.
  return typeof icon === 'string' && /^data:image\/(svg\+xml|png|jpeg|webp|gif)[;,]/i.test(icon)
    ? icon
    : '';
}

function legacyName(p) {
  if (p.isRabby) return 'Rabby';
  if (p.isCoinbaseWallet) return 'Coinbase Wallet';
  if (p.isBraveWallet) return 'Brave Wallet';
  if (p.isMetaMask) return 'MetaMask';
  return 'Browser wallet';
}

export const hexChainId = (id) => `0x${Number(id).toString(16)}`;
export const parseChainId = (value) => {
  if (typeof value === 'number') return value;
  const s = String(value);
  return s.startsWith('0x') ? Number.parseInt(s, 16) : Number.parseInt(s, 10);
};

/** One connected wallet. */
export class Wallet {
  constructor(detail) {
    this.detail = detail;
    this.provider = detail.provider;
    this.address = null;
    this.chainId = null;
    this.listeners = [];
  }

  get name() {
    return this.detail.name;
  }

  async request(method, params) {
    try {
      const args = params === undefined ? { method } : { method, params };
      return await this.provider.request(args);
    } catch (err) {
      throw toWalletError(err);
    }
  }

  async connect() {
    const accounts = await this.request('eth_requestAccounts');
    if (!Array.isArray(accounts) || accounts.length === 0) {
      throw new WalletError(UNAUTHORIZED, 'The wallet shared no account.');
    }
    this.address = accounts[0];
    this.chainId = parseChainId(await this.request('eth_chainId'));
    return this.address;
  }

  async refreshChain() {
    this.chainId = parseChainId(await this.request('eth_chainId'));
    return this.chainId;
  }

  /** Ask the wallet to switch to the backend's chain, adding it first if it is unknown. */
  async switchTo({ chain_id: chainId, chain_name: chainName, rpc_url: rpcUrl }) {
    const hex = hexChainId(chainId);
    try {
      await this.request('wallet_switchEthereumChain', [{ chainId: hex }]);
    } catch (err) {
      if (err.code !== UNRECOGNIZED_CHAIN) throw err;
      await this.request('wallet_addEthereumChain', [
        {
          chainId: hex,
          chainName: chainName || `Chain ${chainId}`,
          rpcUrls: [rpcUrl],
          nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
        },
      ]);
      // Most wallets switch on add; ask again for those that do not (a no-op otherwise).
      if (parseChainId(await this.request('eth_chainId')) !== Number(chainId)) {
        await this.request('wallet_switchEthereumChain', [{ chainId: hex }]);
      }
    }
    return this.refreshChain();
  }

  /** EIP-191 personal_sign of a UTF-8 message, hex encoded as the method expects. */
  signMessage(message) {
    return this.request('personal_sign', [stringToHex(message), this.address]);
  }

  sendTransaction({ to, data }) {
    return this.request('eth_sendTransaction', [{ from: this.address, to, data }]);
  }

  on(event, handler) {
    if (typeof this.provider.on !== 'function') return;
    this.provider.on(event, handler);
    this.listeners.push([event, handler]);
  }

  dispose() {
    const remove = this.provider.removeListener || this.provider.off;
    for (const [event, handler] of this.listeners) {
      if (typeof remove === 'function') remove.call(this.provider, event, handler);
    }
    this.listeners = [];
  }
}

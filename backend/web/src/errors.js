// One clear sentence for every failure the user can meet.

import { ApiError, NetworkError } from './api.js';
import { REQUEST_PENDING, UNAUTHORIZED, USER_REJECTED, WalletError } from './wallet.js';

const REJECTED = {
  connect: 'You declined the connection request in your wallet.',
  sign: 'You declined to sign the sign-in message, so you are not signed in.',
  switch: 'You declined to switch network in your wallet.',
  persist: 'You declined the persist transaction in your wallet. The token is unchanged.',
  burn: 'You declined the burn transaction in your wallet. The token is unchanged.',
};

/**
 * A human message for any error. `action` names what the user was doing
 * (connect, sign, switch, persist, burn, create, ...).
 */
export function describeError(err, action = '') {
  if (err instanceof NetworkError) {
    return 'Can’t reach the SLT server. Check your connection or that the server is running, then try again.';
  }
  if (err instanceof ApiError) {
    if (err.status === 401) return 'Your session has ended. Sign in again to continue.';
    if (err.status === 413) return `That file is too large. ${err.description}`;
    if (err.status === 415) return `That file type isn’t accepted. ${err.description}`;
    if (err.status === 429) {
      const wait = Number(err.retryAfter);
      return Number.isFinite(wait) && wait > 0
        ? `Too many requests. Try again in ${Math.ceil(wait)} s.`
        : 'Too many requests. Wait a moment and try again.';
    }
    return err.description;
  }
  if (err instanceof WalletError) {
    if (err.code === USER_REJECTED) return REJECTED[action] || 'You declined the request in your wallet.';
    if (err.code === REQUEST_PENDING) {
      return 'Your wallet already has a request waiting. Open the wallet to answer it.';
    }
    if (err.code === UNAUTHORIZED) return 'The wallet has not authorised this site. Connect again.';
    if (err.code === 4900 || err.code === 4901) {
      return 'The wallet is not connected to a network right now.';
    }
    return `The wallet reported an error: ${err.message}`;
  }
  if (err && err.userMessage) return err.userMessage;
  return `Something went wrong: ${(err && err.message) || err}`;
}

/** An error whose message is already meant for the user. */
export class UserError extends Error {
  constructor(message) {
    super(message);
    this.name = 'UserError';
    this.userMessage = message;
  }
}

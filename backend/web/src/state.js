// Shared in-memory state. Nothing here is ever written to any browser storage.

export const state = {
  /** GET /config */
  config: null,
  /** The connected Wallet, if any. */
  wallet: null,
  /** The signed-in address (from POST /auth/verify), or null when signed out. */
  address: null,
  /** Server clock minus local clock, in seconds (from `server_time`). */
  skew: 0,
};

let skewKnown = false;

/**
 * Learn the server's clock from a `server_time`. Network latency makes each sample jitter by a
 * fraction of a second, so the estimate only moves for a real difference (> 1 s): countdowns
 * then tick down steadily instead of stalling or jumping back.
 */
export function updateSkew(serverTime) {
  const t = Number(serverTime);
  if (!Number.isFinite(t) || t <= 0) return;
  const sample = t - Date.now() / 1000;
  if (!skewKnown || Math.abs(sample - state.skew) > 1) {
    state.skew = sample;
    skewKnown = true;
  }
}

/** "Now" on the server's clock, in seconds. */
export function serverNow() {
  return Date.now() / 1000 + state.skew;
}

const listeners = new Map();

export function on(event, handler) {
  if (!listeners.has(event)) listeners.set(event, new Set());
  listeners.get(event).add(handler);
}

export function emit(event, detail) {
  for (const handler of listeners.get(event) || []) handler(detail);
}

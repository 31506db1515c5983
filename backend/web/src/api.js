// The backend's HTTP API (docs/API.md), same origin only. The bearer token lives in this
// module's memory and nowhere else: no storage, no cookies.

let bearer = null;

export function setSession(token) {
  bearer = token || null;
}

/** The backend answered with an error body `{code, name, description}`. */
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const description =
      (body && typeof body.description === 'string' && body.description) ||
      `The server answered ${status}${body && body.name ? ` ${body.name}` : ''}.`;
    super(description);
    this.name = 'ApiError';
    this.status = status;
    this.code = (body && body.code) || `http_${status}`;
    this.reason = (body && body.name) || '';
    this.description = description;
    this.retryAfter = retryAfter;
  }
}

/** The server could not be reached at all (fetch rejected). */
export class NetworkError extends Error {
  constructor(cause) {
    super('The SLT server could not be reached.');
    this.name = 'NetworkError';
    this.cause = cause;
  }
}

let onUnauthorized = () => {};

/** Called when an authenticated request answers 401: the session is gone. */
export function onSessionLost(handler) {
  onUnauthorized = handler;
}

/**
 * One request. `json` sends a JSON body, `form` a FormData (multipart). Answers the parsed
 * JSON body, or null for an empty answer (204).
 */
export async function request(
  method,
  path,
  { json, form, auth = true, signal, reportUnauthorized = true } = {},
) {
  const headers = { Accept: 'application/json' };
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart boundary
  }
  const sentWithSession = auth && bearer !== null;
  if (sentWithSession) headers.Authorization = `Bearer ${bearer}`;

  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body,
      signal,
      cache: 'no-store',
      credentials: 'same-origin',
      redirect: 'error',
      referrerPolicy: 'no-referrer',
    });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new NetworkError(err);
  }

  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data, response.headers.get('Retry-After'));
    if (response.status === 401 && sentWithSession && reportUnauthorized) onUnauthorized(error);
    throw error;
  }
  return data;
}

export const api = {
  config: () => request('GET', '/config', { auth: false }),
  nonce: () => request('GET', '/auth/nonce', { auth: false }),
  verify: (message, signature) =>
    request('POST', '/auth/verify', { json: { message, signature }, auth: false }),
  session: () => request('GET', '/auth/session'),
  logout: () => request('POST', '/auth/logout', { json: {}, reportUnauthorized: false }),
  generateText: (fields) => request('POST', '/generate', { json: fields }),
  generateFile: (formData) => request('POST', '/generate', { form: formData }),
  tokens: () => request('GET', '/tokens'),
  token: (id) => request('GET', `/tokens/${encodeURIComponent(id)}`),
  decrypt: (id) => request('POST', `/tokens/${encodeURIComponent(id)}/decrypt`, { json: {} }),
  persist: (id) => request('POST', `/tokens/${encodeURIComponent(id)}/persist`, { json: {} }),
  remove: (id) => request('DELETE', `/tokens/${encodeURIComponent(id)}`),
  receipt: (id) => request('GET', `/tokens/${encodeURIComponent(id)}/receipt`),
};

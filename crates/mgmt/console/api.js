// The only way the console reaches the broker: /api with Basic credentials
// kept in sessionStorage (gone when the tab closes), RabbitMQ's error
// bodies turned into ApiError with the server's text.

const KEY = 'warren.auth';

export class ApiError extends Error {
  constructor(status, error, reason) {
    super(reason || error || `HTTP ${status}`);
    this.status = status;
    this.error = error;
  }
}

export function setCredentials(user, pass) {
  sessionStorage.setItem(KEY, btoa(unescape(encodeURIComponent(`${user}:${pass}`))));
  sessionStorage.setItem(KEY + '.user', user);
}
export function clearCredentials() { sessionStorage.removeItem(KEY); sessionStorage.removeItem(KEY + '.user'); }
export function hasCredentials() { return !!sessionStorage.getItem(KEY); }

/** A path segment, percent-encoded as RabbitMQ's clients do ('/' → %2F). */
export const enc = (s) => encodeURIComponent(s);

/** Sends a request; resolves to the JSON body (null when empty). */
export async function api(method, path, body, headers = {}) {
  const h = { Authorization: 'Basic ' + sessionStorage.getItem(KEY), ...headers };
  let payload;
  if (body instanceof FormData || typeof body === 'string') payload = body;
  else if (body !== undefined) { payload = JSON.stringify(body); h['Content-Type'] = 'application/json'; }
  let res;
  try {
    res = await fetch('/api' + path, { method, headers: h, body: payload });
  } catch (e) {
    throw new ApiError(0, 'network', `The broker cannot be reached (${e.message})`);
  }
  const text = await res.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = text; } }
  if (!res.ok) {
    const reason = data && typeof data === 'object' ? data.reason : (res.status === 401 ? 'Login failed' : text);
    throw new ApiError(res.status, data && data.error, `${reason || res.statusText} (HTTP ${res.status})`);
  }
  return data;
}

export const get = (p) => api('GET', p);
export const put = (p, b) => api('PUT', p, b ?? {});
export const post = (p, b) => api('POST', p, b ?? {});
export const del = (p, headers) => api('DELETE', p, undefined, headers);

/** Management tags that may use the console (RabbitMQ's is_mgmt_user). */
export const MGMT_TAGS = ['management', 'policymaker', 'monitoring', 'administrator'];

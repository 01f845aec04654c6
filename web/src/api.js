// HTTP API calls. The session cookie authenticates them (same origin), so
// no token is ever held by page scripts after the invitation is exchanged.

export class APIError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; resolves with the decoded JSON (or null), rejects with APIError. */
export async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new APIError(0, "network", "The server cannot be reached. Check the connection.");
  }
  if (res.status === 204) return null;
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    throw new APIError(res.status, err.code, err.message);
  }
  return data;
}

export const enc = encodeURIComponent;

export function docPath(summit, doc, rest = "") {
  return `/api/summits/${enc(summit)}/docs/${enc(doc)}${rest}`;
}

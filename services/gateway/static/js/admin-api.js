// Every admin call goes through here: the bearer token from sessionStorage (gone when the tab closes), JSON in
// and out, errors as ApiError with the API's stable code, and one place that notices a refused token.
const TOKEN_KEY = "lookalike.adminToken";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  get refused() {
    return this.status === 401 || this.status === 403;
  }
}

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  start: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  end: () => sessionStorage.removeItem(TOKEN_KEY),
};

let refusedHandler = () => {};

// The page returns to the login form when the server refuses the stored token (rotated, or the server restarted
// with another one).
export function onRefused(handler) {
  refusedHandler = handler;
}

async function request(path, { method = "GET", json, form, token }) {
  const headers = { Authorization: `Bearer ${token ?? session.token() ?? ""}` };
  let body = form;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, cache: "no-store" });
  } catch {
    throw new ApiError(0, "network", "the server cannot be reached");
  }
  if (response.ok) return response;
  let error = {};
  try {
    error = (await response.json()).error ?? {};
  } catch {
    // Not the API's JSON (a proxy's error page): the status says enough.
  }
  throw new ApiError(response.status, error.code ?? `http_${response.status}`, error.message ?? response.statusText);
}

// The request, and the page told when the server refuses the stored token. `token` checks another one instead
// (the login form): its refusal is the caller's to show.
async function guarded(path, options) {
  try {
    return await request(path, options);
  } catch (error) {
    if (error instanceof ApiError && error.refused && options.token === undefined) refusedHandler(error);
    throw error;
  }
}

// api("/admin/groups"), api(path, {method: "POST", json}), api(path, {method: "POST", form}).
export async function api(path, options = {}) {
  const response = await guarded(path, options);
  return response.status === 204 ? null : response.json();
}

// A picture behind the token (an <img src> cannot send the header), decoded upright for a canvas.
export async function bitmap(path) {
  const response = await guarded(path, {});
  return createImageBitmap(await response.blob());
}

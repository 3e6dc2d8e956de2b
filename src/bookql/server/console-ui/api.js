// The console's only way to the server: the public GraphQL API at /graphql.
//
// Operations are sent by their sha256 alone (`documentId`), from the hashes the server
// publishes at /console/documents.json: they are trusted documents, so the console works when
// the server refuses every other document (BOOKQL_TRUSTED_DOCUMENTS_ONLY).
//
// Tokens: the access token lives in this module's memory only; the refresh token in memory
// and in this tab's sessionStorage (so a reload keeps the session, and closing the tab ends
// it; never localStorage, never a cookie). The access token is refreshed before it expires,
// and once on an error whose reason is TOKEN_EXPIRED; one refresh at a time, because a
// refresh token works once and a second use ends the session.

const ENDPOINT = new URL("/graphql", window.location.href);
const REFRESH_KEY = "bookql.console.refreshToken";

export class ApiError extends Error {
  constructor(message, code = "ERROR", reason = null) {
    super(message);
    this.code = code;
    this.reason = reason;
  }
}

let hashes = null;
function documentIds() {
  hashes ??= fetch("/console/documents.json", { cache: "no-cache" }).then((response) => {
    if (!response.ok) throw new ApiError(`the console's operations did not load (${response.status})`);
    return response.json();
  });
  return hashes;
}

async function documentId(name) {
  const id = (await documentIds())[name];
  if (!id) throw new ApiError(`the server does not know the console's operation ${name}`);
  return `sha256:${id}`;
}

const session = { access: null, refresh: null, user: null, timer: null };
const listeners = new Set();
let refreshing = null;

export function onSessionChange(listener) {
  listeners.add(listener);
}

export function currentUser() {
  return session.user;
}

export function isAdmin() {
  return session.user?.role === "ADMIN";
}

function notify() {
  for (const listener of listeners) listener(session.user);
}

function start(payload) {
  session.access = payload.accessToken;
  session.refresh = payload.refreshToken;
  session.user = payload.user;
  window.sessionStorage.setItem(REFRESH_KEY, payload.refreshToken);
  window.clearTimeout(session.timer);
  // Refresh ahead of expiry: at half the lifetime, at most a minute early.
  const lead = Math.min(60, payload.expiresIn / 2);
  session.timer = window.setTimeout(() => {
    refresh().catch(() => {});
  }, (payload.expiresIn - lead) * 1000);
  notify();
}

function end() {
  window.clearTimeout(session.timer);
  session.access = session.refresh = session.user = null;
  window.sessionStorage.removeItem(REFRESH_KEY);
  notify();
}

function firstError(body) {
  const error = body?.errors?.[0];
  if (!error) return null;
  return new ApiError(error.message, error.extensions?.code, error.extensions?.reason);
}

async function post(name, variables, token) {
  const headers = {
    "Content-Type": "application/json",
    Accept: "application/graphql-response+json, application/json",
  };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(ENDPOINT, {
    method: "POST",
    headers,
    credentials: "omit",
    cache: "no-store",
    body: JSON.stringify({ operationName: name, documentId: await documentId(name), variables }),
  });
  try {
    return await response.json();
  } catch {
    throw new ApiError(`the server answered ${response.status} without a GraphQL body`, "HTTP_ERROR");
  }
}

/** The data of one operation, as the signed-in user if there is one; an ApiError otherwise. */
export async function call(name, variables = {}) {
  if (refreshing) await refreshing.catch(() => {});
  let body = await post(name, variables, session.access);
  let error = firstError(body);
  if (error?.reason === "TOKEN_EXPIRED" && session.refresh) {
    await refresh();
    body = await post(name, variables, session.access);
    error = firstError(body);
  }
  if (error) throw error;
  return body.data;
}

/** Trade the refresh token for new tokens; concurrent callers share the one exchange. */
export function refresh() {
  if (!refreshing) {
    const token = session.refresh;
    refreshing = (async () => {
      try {
        const body = await post("ConsoleRefresh", { refreshToken: token });
        const error = firstError(body);
        if (error) {
          // Only a refused refresh token ends the session; a busy or failing server does not.
          if (error.code === "UNAUTHENTICATED") end();
          throw error;
        }
        start(body.data.refresh);
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

export async function signIn(username, password) {
  const body = await post("ConsoleLogin", { username, password });
  const error = firstError(body);
  if (error) throw error;
  start(body.data.login);
}

export async function signOut() {
  const token = session.refresh;
  if (refreshing) await refreshing.catch(() => {});
  try {
    if (token) await post("ConsoleLogout", { refreshToken: session.refresh ?? token }, session.access);
  } finally {
    end();
  }
}

/** Sign back in after a reload of this tab, from the refresh token it kept. */
export async function resume() {
  const token = window.sessionStorage.getItem(REFRESH_KEY);
  if (!token) return;
  session.refresh = token;
  try {
    await refresh();
  } catch {
    end();
  }
}

/**
 * A subscription over graphql-transport-ws on /graphql, signed in as the current user;
 * `handlers` gets `next(data)`, `error(ApiError)` and `complete()`. Returns a function that
 * ends it.
 */
export function subscribe(name, variables, handlers) {
  const url = new URL(ENDPOINT);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url, "graphql-transport-ws");
  let finished = false;
  const finish = () => {
    finished = true;
    socket.close(1000);
  };
  socket.addEventListener("open", async () => {
    if (refreshing) await refreshing.catch(() => {});
    const payload = session.access ? { Authorization: `Bearer ${session.access}` } : {};
    socket.send(JSON.stringify({ type: "connection_init", payload }));
  });
  socket.addEventListener("message", async (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "connection_ack") {
      const payload = { operationName: name, documentId: await documentId(name), variables };
      socket.send(JSON.stringify({ id: "1", type: "subscribe", payload }));
    } else if (message.type === "ping") {
      socket.send(JSON.stringify({ type: "pong" }));
    } else if (message.type === "next") {
      const error = firstError(message.payload);
      if (error) handlers.error(error);
      else handlers.next(message.payload.data);
    } else if (message.type === "error") {
      const error = firstError({ errors: message.payload });
      finish();
      handlers.error(error ?? new ApiError("the subscription was refused"));
    } else if (message.type === "complete") {
      finish();
      handlers.complete?.();
    }
  });
  socket.addEventListener("close", (event) => {
    if (finished) return;
    finished = true;
    const why = event.reason ? `: ${event.reason}` : "";
    handlers.error(new ApiError(`the live connection closed (${event.code}${why})`, "CONNECTION_CLOSED"));
  });
  return () => {
    if (finished) return;
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ id: "1", type: "complete" }));
    finish();
  };
}

// The console's token handling (console-ui/api.js) against a scripted server, in Node:
// refresh ahead of expiry, once on TOKEN_EXPIRED for concurrent callers, the session ended
// when a refresh is refused. Run by tests/server/test_console.py with the module's path.
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";

const storage = new Map();
const timers = [];
globalThis.window = {
  location: { href: "http://console.test/console" },
  sessionStorage: {
    getItem: (key) => storage.get(key) ?? null,
    setItem: (key, value) => storage.set(key, value),
    removeItem: (key) => storage.delete(key),
  },
  setTimeout: (run, ms) => timers.push({ run, ms }),
  clearTimeout: () => {},
};

const sent = [];
let answer = () => ({ data: {} });
const reply = (body) => ({ ok: true, status: 200, json: async () => body });
globalThis.fetch = async (url, init) => {
  if (String(url).endsWith("/console/documents.json")) {
    return reply({ ConsoleLogin: "1".repeat(64), ConsoleRefresh: "2".repeat(64), ConsoleBooks: "3".repeat(64) });
  }
  const body = JSON.parse(init.body);
  assert.equal(body.query, undefined, "documents go by hash only");
  assert.match(body.documentId, /^sha256:[0-9]{64}$/);
  const request = { name: body.operationName, token: init.headers.Authorization ?? null, variables: body.variables };
  sent.push(request);
  await new Promise((resolve) => setImmediate(resolve));
  return reply(answer(request));
};

const tokens = (n, expiresIn = 60) => ({
  accessToken: `access${n}`,
  refreshToken: `refresh${n}`,
  expiresIn,
  user: { username: "root", role: "ADMIN" },
});
const expired = { errors: [{ message: "expired", extensions: { code: "UNAUTHENTICATED", reason: "TOKEN_EXPIRED" } }] };

const api = await import(pathToFileURL(process.argv[2]).href);
const seen = [];
api.onSessionChange((user) => seen.push(user?.username ?? null));

answer = () => ({ data: { login: tokens(1) } });
await api.signIn("root", "secret");
assert.equal(storage.get("bookql.console.refreshToken"), "refresh1");
assert.deepEqual(timers.map((t) => t.ms), [30000], "refreshed at half the lifetime");

// Two calls meet an expired token: one refresh, then both retried with the new token.
let refreshes = 0;
answer = (request) => {
  if (request.name === "ConsoleRefresh") {
    refreshes += 1;
    assert.equal(request.variables.refreshToken, "refresh1");
    return { data: { refresh: tokens(2) } };
  }
  return request.token === "Bearer access2" ? { data: { books: request.variables.n } } : expired;
};
const both = await Promise.all([api.call("ConsoleBooks", { n: 1 }), api.call("ConsoleBooks", { n: 2 })]);
assert.deepEqual(both, [{ books: 1 }, { books: 2 }]);
assert.equal(refreshes, 1, "one refresh at a time");
assert.equal(storage.get("bookql.console.refreshToken"), "refresh2");

// The timer refreshes ahead of expiry (at most a minute early for long-lived tokens).
answer = (request) => ({ data: { refresh: { ...tokens(3, 900), refreshToken: `refresh3-from-${request.variables.refreshToken}` } } });
await timers.at(-1).run();
await new Promise((resolve) => setTimeout(resolve, 10));
assert.equal(storage.get("bookql.console.refreshToken"), "refresh3-from-refresh2");
assert.equal(timers.at(-1).ms, 840000);

// A refused refresh ends the session; the call fails with the server's error.
answer = (request) =>
  request.name === "ConsoleRefresh"
    ? { errors: [{ message: "session ended", extensions: { code: "UNAUTHENTICATED" } }] }
    : expired;
await assert.rejects(api.call("ConsoleBooks", { n: 3 }), (error) => error.code === "UNAUTHENTICATED");
assert.equal(api.currentUser(), null);
assert.equal(storage.has("bookql.console.refreshToken"), false);
assert.deepEqual(seen, ["root", "root", "root", null]);
console.log("tokens: ok");

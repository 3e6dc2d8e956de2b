// The console's shell: routes (in the URL's fragment), the header's session, and errors.
import * as adminScreens from "./admin.js";
import { book, browse, overview } from "./catalogue.js";
import { currentUser, isAdmin, onSessionChange, resume, signIn, signOut } from "./api.js";
import { append, h, heading } from "./dom.js";

const main = document.getElementById("main");
const alertBox = document.getElementById("alert");
const notice = document.getElementById("notice");
const sessionBox = document.getElementById("session");

const TITLES = {
  overview: "Overview",
  browse: "Browse",
  book: "Book",
  signin: "Sign in",
  crawls: "Crawl runs",
  models: "Models",
  users: "Users",
};

let leaving = [];
let rendering = 0;

function parseRoute() {
  const [path, query = ""] = window.location.hash.replace(/^#\/?/, "").split("?");
  const [name, ...rest] = path.split("/");
  return {
    name: name || "overview",
    arg: rest.length ? decodeURIComponent(rest.join("/")) : "",
    params: new URLSearchParams(query),
  };
}

function signInScreen(route) {
  if (currentUser()) return [heading("Signed in"), h("p", {}, `You are signed in as ${currentUser().username}.`)];
  const username = h("input", { type: "text", name: "username", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "stack", "aria-label": "Sign in" },
    h("label", {}, "User name", username), h("label", {}, "Password", password), button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      await signIn(username.value, password.value);
      window.location.hash = route.params.get("next") || "#/overview";
    } catch (error) {
      button.disabled = false;
      fail(error);
    }
  });
  return [heading("Sign in"), form,
    h("p", { class: "status" }, "Your session lasts until you sign out or close this tab.")];
}

function adminOnly(screen) {
  return async (route, context) => {
    if (isAdmin()) return screen(route, context);
    const next = encodeURIComponent(window.location.hash);
    return [heading(TITLES[route.name]),
      h("p", {}, "This screen is for administrators. ",
        currentUser() ? "You are signed in without that role." : h("a", { href: `#/signin?next=${next}` }, "Sign in"),
        currentUser() ? "" : " as an administrator to use it.")];
  };
}

const SCREENS = {
  overview,
  browse,
  book,
  signin: signInScreen,
  crawls: adminOnly(adminScreens.crawls),
  models: adminOnly(adminScreens.models),
  users: adminOnly(adminScreens.users),
};

function fail(error) {
  alertBox.textContent = error?.message ? `${error.message}${error.code && error.code !== "ERROR" ? ` (${error.code})` : ""}` : String(error);
}

async function render(message = "") {
  const ticket = ++rendering;
  for (const stop of leaving) stop();
  leaving = [];
  alertBox.textContent = "";
  notice.textContent = message;
  const route = parseRoute();
  const screen = Object.hasOwn(SCREENS, route.name) ? SCREENS[route.name] : undefined;
  document.title = `${TITLES[route.name] ?? "Not found"} · bookql console`;
  for (const link of document.querySelectorAll("#nav a")) {
    const current = link.getAttribute("href") === `#/${route.name}`;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  main.setAttribute("aria-busy", "true");
  const context = {
    onLeave: (stop) => leaving.push(stop),
    fail,
    reload: (text) => render(text),
  };
  let content;
  try {
    content = screen ? await screen(route, context) : [heading("Not found"), h("p", {}, "No such screen.")];
  } catch (error) {
    content = [heading(TITLES[route.name] ?? "Error"), h("p", { class: "error" }, "This screen could not be loaded.")];
    fail(error);
  }
  if (ticket !== rendering) return;
  main.replaceChildren();
  append(main, content);
  main.removeAttribute("aria-busy");
  main.dataset.screen = route.name;
  main.querySelector("h1")?.focus();
}

function showSession(user) {
  for (const item of document.querySelectorAll("#nav .admin")) item.hidden = user?.role !== "ADMIN";
  if (!user) {
    sessionBox.replaceChildren(h("a", { href: "#/signin" }, "Sign in"));
    return;
  }
  const out = h("button", { type: "button", class: "secondary" }, "Sign out");
  out.addEventListener("click", async () => {
    await signOut();
    window.location.hash = "#/overview";
  });
  sessionBox.replaceChildren(
    h("span", { id: "signed-in-as" }, `Signed in as ${user.username}${user.role === "ADMIN" ? " (administrator)" : ""}`),
    out,
  );
}

let lastRole;
onSessionChange((user) => {
  showSession(user);
  const role = user?.role ?? null;
  // Screens change with who is looking (a refresh keeps the same role: nothing to redraw).
  if (role !== lastRole) {
    lastRole = role;
    render();
  }
});

window.addEventListener("hashchange", () => render());
// The skip link moves focus to the content without going through the router.
document.querySelector("a.skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
showSession(null);
lastRole = null;
await resume();
if (lastRole === null) render();

// Administrators' screens: crawl runs watched live, model versions, users.
import { call, subscribe } from "./api.js";
import { scatterChart } from "./charts.js";
import { h, heading, liveStatus, money, number, table, when } from "./dom.js";

const RUN_COLUMNS = [
  ["Status", (r) => r.status],
  ["Started", (r) => when(r.startedAt ?? r.createdAt)],
  ["Finished", (r) => when(r.finishedAt)],
  ["Pages", (r) => number(r.pages), { numeric: true }],
  ["Books read", (r) => number(r.items), { numeric: true }],
  ["New", (r) => number(r.newBooks), { numeric: true }],
  ["Updated", (r) => number(r.updatedBooks), { numeric: true }],
  ["Unchanged", (r) => number(r.unchangedBooks), { numeric: true }],
  ["Removed", (r) => number(r.removedBooks), { numeric: true }],
  ["Errors", (r) => number(r.errors), { numeric: true }],
  ["Start URL", (r) => r.startUrl],
  ["Message", (r) => r.message ?? ""],
];

const FINISHED = new Set(["SUCCEEDED", "PARTIAL", "FAILED"]);

function progressText(run) {
  const counts = `${number(run.pages)} pages, ${number(run.items)} books read (${number(run.newBooks)} new, ` +
    `${number(run.updatedBooks)} updated, ${number(run.unchangedBooks)} unchanged, ` +
    `${number(run.removedBooks)} removed), ${number(run.errors)} errors`;
  return `Crawl ${run.status.toLowerCase()}: ${counts}.${run.message ? ` ${run.message}` : ""}`;
}

export async function crawls(route, context) {
  const runs = (await call("ConsoleCrawlRuns")).crawlRuns.edges.map((edge) => edge.node);
  const list = h("div", {}, table("Recent crawl runs", RUN_COLUMNS, runs, { id: "crawl-runs" }));
  const progress = h("p", { class: "progress", role: "status", "aria-live": "polite", id: "crawl-progress" },
    "No crawl is running.");
  const startUrl = h("input", { type: "url", name: "startUrl", placeholder: "the server's default" });
  const button = h("button", { type: "submit" }, "Start a crawl");
  const refreshList = async () => {
    const latest = (await call("ConsoleCrawlRuns")).crawlRuns.edges.map((edge) => edge.node);
    list.replaceChildren(table("Recent crawl runs", RUN_COLUMNS, latest, { id: "crawl-runs" }));
  };
  const watch = (run) => {
    progress.textContent = progressText(run);
    button.disabled = true;
    const stop = subscribe("ConsoleCrawlProgress", { runId: run.id }, {
      next: ({ crawlProgress }) => {
        progress.textContent = progressText(crawlProgress);
      },
      error: (error) => {
        progress.textContent = `Watching the crawl failed: ${error.message}`;
        button.disabled = false;
      },
      complete: () => {
        button.disabled = false;
        progress.dataset.finished = "";
        refreshList().catch(context.fail);
      },
    });
    context.onLeave(stop);
  };
  const form = h("form", { class: "filters", "aria-label": "Start a crawl" },
    h("label", {}, "Start URL (optional)", startUrl), button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      const { startCrawl } = await call("ConsoleStartCrawl", { startUrl: startUrl.value || null });
      watch(startCrawl);
      await refreshList();
    } catch (error) {
      button.disabled = false;
      context.fail(error);
    }
  });
  const running = runs.find((run) => !FINISHED.has(run.status));
  if (running) watch(running);
  return [heading("Crawl runs"), form, h("h2", {}, "Progress"), progress, list];
}

function scores(metrics) {
  const rows = [
    ["This version", metrics.model],
    ["Baseline: mean price", metrics.baselineMean],
    ["Baseline: category's mean price", metrics.baselineCategoryMean],
  ];
  return table("Errors on the held-out books (GBP)", [
    ["Predictor", ([name]) => name],
    ["MAE", ([, s]) => number(s.mae, 2), { numeric: true }],
    ["RMSE", ([, s]) => number(s.rmse, 2), { numeric: true }],
    ["R²", ([, s]) => number(s.r2, 3), { numeric: true }],
  ], rows, { id: "model-scores" });
}

function liveMae(model) {
  const live = model.liveMetrics;
  return live ? `${number(live.mae, 2)} over ${number(live.predictions)}` : "—";
}

function confirmActivation(version) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { "aria-labelledby": "confirm-heading", id: "confirm-activation" },
      h("h2", { id: "confirm-heading" }, "Activate this model version?"),
      h("p", {}, `Every server process will predict with version ${version} from now on.`),
      h("div", { class: "actions" },
        h("button", { type: "button", value: "yes", onclick: () => dialog.close("yes") }, "Activate"),
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close("no") }, "Cancel")));
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "yes");
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export async function models(route, context) {
  const list = (await call("ConsoleModels")).models;
  const activate = async (model) => {
    if (!(await confirmActivation(model.version))) return;
    try {
      await call("ConsoleActivateModel", { version: model.version });
      context.reload(`Version ${model.version} is active.`);
    } catch (error) {
      context.fail(error);
    }
  };
  const train = h("button", { type: "button", class: "secondary" }, "Train a new version");
  train.addEventListener("click", async () => {
    train.disabled = true;
    try {
      const { trainModel } = await call("ConsoleTrainModel");
      context.reload(`Training version ${trainModel.version}; reload this screen to see it finish.`);
    } catch (error) {
      train.disabled = false;
      context.fail(error);
    }
  });
  const view = [
    heading("Model versions"),
    table(null, [
      ["Version", (m) => h("a", { href: `#/models/${encodeURIComponent(m.version)}` }, m.version)],
      ["Status", (m) => m.status],
      ["Active", (m) => (m.active ? "active" : "")],
      ["Created", (m) => when(m.createdAt)],
      ["MAE", (m) => number(m.metrics?.model.mae, 2), { numeric: true }],
      ["Mean baseline MAE", (m) => number(m.metrics?.baselineMean.mae, 2), { numeric: true }],
      ["Live MAE", liveMae],
      ["Problem", (m) => m.problem ?? m.message ?? ""],
      ["", (m) => (m.status === "READY" && !m.active && !m.problem
        ? h("button", { type: "button", "aria-label": `Activate ${m.version}`, onclick: () => activate(m) }, "Activate")
        : "")],
    ], list, { id: "models" }),
    train,
  ];
  if (!route.arg) return view;
  const chosen = list.find((m) => m.version === route.arg);
  if (!chosen) return [...view, h("p", { class: "error" }, `No version ${route.arg}.`)];
  const { node } = await call("ConsoleHeldOut", { id: chosen.id });
  const points = node?.heldOutPredictions;
  const metrics = chosen.metrics;
  return [
    ...view,
    h("section", { "aria-labelledby": "version-heading", id: "model-detail" },
      h("h2", { id: "version-heading" }, `Version ${chosen.version}`),
      metrics ? [
        scores(metrics),
        h("dl", { class: "facts" },
          [
            ["Cross-validation MAE", number(metrics.crossValidationMae, 2)],
            [`${Math.round(metrics.intervalLevel * 100)}% interval`, `± ${money(metrics.intervalHalfWidth)}`],
            ["Interval coverage (held out)", `${(metrics.intervalCoverage * 100).toFixed(1)}%`],
            ["Training rows", number(metrics.trainingRows)],
            ["Live MAE (logged predictions)", liveMae(chosen)],
          ].map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)])),
      ] : h("p", {}, "This version has no metrics."),
      points
        ? [
          scatterChart(
            "Held-out books: predicted against actual price",
            `${points.length} held-out books; a perfect model would put every point on the diagonal. The table below lists them.`,
            points.map((p) => p.actual),
            points.map((p) => p.predicted),
            "Actual price (£)",
            "Predicted (£)",
          ),
          h("details", {}, h("summary", {}, "Held-out books as a table"),
            table("Held-out predictions", [
              ["Title", (p) => p.title],
              ["Actual", (p) => money(p.actual), { numeric: true }],
              ["Predicted", (p) => money(p.predicted), { numeric: true }],
            ], points, { id: "held-out" })),
        ]
        : h("p", {}, "This version was trained before held-out predictions were kept.")),
  ];
}

export async function users(route, context) {
  const page = (await call("ConsoleUsers", { after: route.params.get("after") || null })).users;
  const status = liveStatus();
  const change = async (name, variables, done) => {
    try {
      const result = await call(name, variables);
      const user = Object.values(result)[0].user;
      status.textContent = done(user);
    } catch (error) {
      // Show the accounts as they are, then why the change was refused.
      await context.reload();
      context.fail(error);
    }
  };
  const rows = page.edges.map((edge) => edge.node);
  return [
    heading("Users"),
    h("p", {}, `${number(page.totalCount)} accounts.`),
    status,
    table(null, [
      ["User", (u) => u.username],
      ["Email", (u) => u.email ?? "—"],
      ["Role", (u) => {
        const select = h("select", { "aria-label": `Role of ${u.username}`, "data-user": u.username },
          ["USER", "ADMIN"].map((role) => h("option", { value: role, selected: role === u.role }, role.toLowerCase())));
        select.addEventListener("change", () => change("ConsoleSetRole", { userId: u.id, role: select.value },
          (user) => `${u.username} is now ${user.role === "ADMIN" ? "an administrator" : "a user"}.`));
        return select;
      }],
      ["Active", (u) => {
        const box = h("input", { type: "checkbox", checked: u.active, "aria-label": `${u.username} is active`, "data-user": u.username });
        box.addEventListener("change", () => change("ConsoleSetActive", { userId: u.id, active: box.checked },
          (user) => `${u.username} is ${user.active ? "active" : "deactivated: their sessions have ended"}.`));
        return box;
      }],
      ["Created", (u) => when(u.createdAt)],
      ["Last sign-in", (u) => when(u.lastLoginAt)],
    ], rows, { id: "users" }),
    page.pageInfo.hasNextPage
      ? h("nav", { class: "pager", "aria-label": "Pages" },
        h("a", { href: `#/users?after=${encodeURIComponent(page.pageInfo.endCursor)}`, rel: "next" }, "Next page"))
      : null,
  ];
}

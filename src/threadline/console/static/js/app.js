// The console shell: sign-in, navigation and the hash router.

import { ApiError, forgetKey, get, getKey, getProject, setKey, setProject } from "./api.js";
import { clear, errorBox, field, h } from "./dom.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const signout = document.getElementById("signout");
export const session = { info: null };

const routes = [
  [/^\/playground(?:\/(asst_[^/]+))?$/, () => import("./playground.js").then((m) => m.playground)],
  [/^\/threads$/, () => import("./threads.js").then((m) => m.threadList)],
  [/^\/threads\/([^/]+)$/, () => import("./threads.js").then((m) => m.threadView)],
  [/^\/threads\/([^/]+)\/runs\/([^/]+)$/, () => import("./threads.js").then((m) => m.runView)],
  [/^\/threads\/([^/]+)\/runs\/([^/]+)\/retrieval$/, () => import("./retrieval.js").then((m) => m.inspector)],
  [/^\/assistants$/, () => import("./assistants.js").then((m) => m.assistantList)],
  [/^\/assistants\/([^/]+)$/, () => import("./assistants.js").then((m) => m.assistantEdit)],
  [/^\/files$/, () => import("./stores.js").then((m) => m.filesPage)],
  [/^\/vector_stores\/([^/]+)$/, () => import("./stores.js").then((m) => m.storeView)],
  [/^\/usage$/, () => import("./usage.js").then((m) => m.usagePage)],
];

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/playground";
  const [path, qs] = raw.split("?");
  return { path, params: new URLSearchParams(qs || "") };
}

let renderId = 0;

async function render() {
  const id = ++renderId;
  if (!getKey()) return signIn();
  if (!session.info) {
    try {
      session.info = await get("/console/session");
    } catch (err) {
      if (err instanceof ApiError && getProject() && [401, 404].includes(err.status) && err.body && err.body.error && /project/.test(err.body.error.code || "")) {
        setProject(null); // the chosen project was archived (or this key may not choose one): back to the key's own
        return render();
      }
      if (err instanceof ApiError && err.status === 401) return signIn(err);
      clear(main).append(errorBox(err));
      return;
    }
    showShell();
  }
  const { path, params } = parseHash();
  for (const [pattern, load] of routes) {
    const m = pattern.exec(path);
    if (!m) continue;
    const view = await load();
    const page = h("div", { class: "page" });
    try {
      await view(page, ...m.slice(1).map((x) => (x === undefined ? x : decodeURIComponent(x))), params);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return signIn(err);
      if (!page.querySelector("h1")) page.append(h("h1", {}, err instanceof ApiError && err.status === 404 ? "Not found" : "Error"));
      page.append(errorBox(err));
    }
    if (id !== renderId) return; // a newer navigation won
    clear(main).append(page);
    main.dataset.route = location.hash; // which navigation the content shows (the browser tests wait for it)
    markNav(path);
    const title = page.querySelector("h1");
    document.title = `${title ? title.textContent : "Console"} · threadline`;
    if (!params.has("cite")) main.focus({ preventScroll: true });
    page.dispatchEvent(new CustomEvent("console:shown"));
    return;
  }
  clear(main).append(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/playground" }, "Back to the playground")));
  main.dataset.route = location.hash;
}

function markNav(path) {
  for (const a of nav.querySelectorAll("a")) {
    const target = a.getAttribute("href").slice(1);
    if (path === target || path.startsWith(`${target}/`)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function showShell() {
  nav.hidden = false;
  signout.hidden = false;
  const slot = clear(document.getElementById("project-slot"));
  const info = session.info;
  // An admin key (or anyone on an open server) may look at any project: the choice goes out as `OpenAI-Project`.
  if (Array.isArray(info.projects) && info.projects.length) {
    const current = info.project && info.project.id;
    const select = h(
      "select",
      { id: "project" },
      info.projects.map((p) => h("option", { value: p.id, selected: p.id === current }, p.name || p.id)),
    );
    select.addEventListener("change", () => {
      setProject(select.value);
      session.info = null;
      // An object of the previous project is not in this one: show the section's list instead.
      const section = parseHash().path.split("/")[1] || "playground";
      if (location.hash === `#/${section}`) render();
      else location.hash = `#/${section}`;
    });
    slot.append(field("Project", select));
  } else if (info.project) {
    slot.append(h("span", { class: "project" }, `Project: ${info.project.name || info.project.id}`));
  }
  if (info.auth === "open") slot.append(h("span", { class: "warn" }, "Open server: no API keys configured"));
}

function signIn(err) {
  session.info = null;
  nav.hidden = true;
  signout.hidden = true;
  clear(document.getElementById("project-slot"));
  const input = h("input", { type: "password", name: "key", autocomplete: "current-password", required: true });
  const remember = h("input", { type: "checkbox", name: "remember", id: "remember" });
  const status = h("div", { "aria-live": "polite" }, err ? errorBox(err) : null);
  const form = h(
    "form",
    { class: "signin", "aria-label": "Sign in" },
    h("h1", {}, "Sign in"),
    h("p", {}, "Enter an API key of this server. A project key shows its project's data; an admin key can switch between projects."),
    field("API key", input),
    h("div", { class: "check" }, remember, h("label", { for: "remember" }, "Remember on this device")),
    h("button", { type: "submit" }, "Sign in"),
    status,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    try {
      const { api } = await import("./api.js");
      session.info = await api("GET", "/console/session", { key });
      setKey(key, remember.checked);
      showShell();
      if (!location.hash || location.hash === "#/login") location.hash = "#/playground";
      else render();
    } catch (error) {
      clear(status).append(errorBox(error));
      input.focus();
    }
  });
  clear(main).append(form);
  input.focus();
}

signout.addEventListener("click", () => {
  forgetKey();
  session.info = null;
  location.hash = "#/playground";
  signIn();
});

document.addEventListener("console:unauthorized", () => {
  if (session.info) {
    forgetKey();
    signIn(new Error("Your API key was refused. Sign in again."));
  }
});

window.addEventListener("hashchange", render);
render();

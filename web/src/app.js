// Communiqué's browser client: the router, the page shell and the session.
// Addresses (all bookmarkable):
//   /join#token=…                 an invitation: becomes a session cookie
//   /s/{summit}                   the summit's home
//   /s/{summit}/d/{doc}           drafting (chair, delegates) or following (observers)
//   /s/{summit}/d/{doc}/approved  following the approved text (everyone)
//   /s/{summit}/d/{doc}/review    the chair's review of pending changes
//   /s/{summit}/d/{doc}/history   versions, redlines between them, exports

import { api, enc } from "./api.js";
import { h, replace, notify } from "./dom.js";
import { ROLE_LABEL } from "./roles.js";
import { joinView, signInForm } from "./views/join.js";
import { homeView } from "./views/home.js";
import { draftView } from "./views/draft.js";
import { followView } from "./views/follow.js";
import { reviewView } from "./views/review.js";
import { historyView } from "./views/history.js";

const app = {
  me: null, // {role, summit, delegation, name}
  summits: new Map(), // id → {id, title}
  view: null, // the current view's {destroy}
  navigate,
  reload: () => render(),
};


const routes = [
  [/^\/join\/?$/, (ctx) => joinView(ctx)],
  [/^\/s\/([^/]+)\/?$/, (ctx, s) => homeView(ctx, s)],
  [/^\/s\/([^/]+)\/d\/([^/]+)\/?$/, (ctx, s, d) => (app.me.role === "observer" ? followView(ctx, s, d) : draftView(ctx, s, d))],
  [/^\/s\/([^/]+)\/d\/([^/]+)\/approved\/?$/, (ctx, s, d) => followView(ctx, s, d)],
  [/^\/s\/([^/]+)\/d\/([^/]+)\/review\/?$/, (ctx, s, d) => reviewView(ctx, s, d)],
  [/^\/s\/([^/]+)\/d\/([^/]+)\/history\/?$/, (ctx, s, d) => historyView(ctx, s, d)],
];

function navigate(path, { replace: rep = false } = {}) {
  if (rep) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render().then(() => {
    // As after a page load: start at the top, and let screen readers start
    // at the new page's content.
    scrollTo(0, 0);
    document.getElementById("main")?.focus({ preventScroll: true });
  });
}

async function loadMe() {
  // The session cookie is HttpOnly; its readable companion says whether
  // there is one to ask about (so a signed-out visit makes no refused call).
  if (!/(^|;\s*)communique_signed_in=1/.test(document.cookie)) {
    app.me = null;
    return null;
  }
  try {
    app.me = await api("GET", "/api/me");
  } catch (e) {
    if (e.status === 401) app.me = null;
    else throw e;
  }
  return app.me;
}

async function summitInfo(id) {
  if (!app.summits.has(id)) {
    try {
      app.summits.set(id, await api("GET", `/api/summits/${enc(id)}`));
    } catch {
      app.summits.set(id, { id, title: id });
    }
  }
  return app.summits.get(id);
}

function shell(summit) {
  const me = app.me;
  const home = me && me.summit ? `/s/${enc(me.summit)}` : "/";
  const who = me
    ? h(
        "div",
        { class: "me" },
        h("span", { class: `role-badge role-${me.role}` }, ROLE_LABEL[me.role] || me.role),
        h("span", { class: "me-name" }, me.delegation ? `${me.delegation} · ${me.name}` : me.name),
        h("button", { type: "button", class: "btn btn-quiet", onclick: signOut }, "Sign out"),
      )
    : null;
  const header = h(
    "header",
    { class: "topbar" },
    h(
      "div",
      { class: "topbar-inner" },
      h("a", { class: "brand", href: home, "aria-label": "Communiqué home" }, h("span", { class: "brand-mark", "aria-hidden": "true" }), "Communiqué"),
      summit ? h("span", { class: "summit-name" }, summit.title) : null,
      who,
    ),
  );
  const main = h("main", { id: "main", tabindex: "-1" });
  const footer = h("footer", { class: "footer" }, "Communiqué — live drafting of outcome documents");
  replace(document.getElementById("app"), header, main, footer);
  return main;
}

async function signOut() {
  try {
    await api("DELETE", "/api/session");
  } catch {
    /* the cookie is gone or was never there */
  }
  app.me = null;
  navigate("/");
}

let renderSeq = 0;

async function render() {
  const seq = ++renderSeq;
  if (app.view) {
    try {
      app.view.destroy?.();
    } catch (e) {
      console.warn(e);
    }
    app.view = null;
  }
  const path = location.pathname;
  if (/^\/join\/?$/.test(path)) {
    const main = shell(null);
    app.view = joinView({ app, main });
    return;
  }
  let me;
  try {
    me = app.me || (await loadMe());
  } catch (e) {
    const main = shell(null);
    main.append(h("h1", null, "Communiqué"), h("p", { class: "error" }, `The server cannot be reached: ${e.message}`));
    return;
  }
  if (seq !== renderSeq) return;
  if (!me) {
    const main = shell(null);
    document.title = "Sign in — Communiqué";
    main.append(signInForm({ app, main }));
    return;
  }
  if (path === "/" || path === "") {
    if (me.summit) return navigate(`/s/${enc(me.summit)}`, { replace: true });
    const main = shell(null);
    main.append(
      h("h1", null, "Server administration"),
      h("p", null, "The admin token manages summits and invitations through the HTTP API (see docs/protocol.md). Open a summit's address, /s/{summit}, to read it."),
    );
    return;
  }
  for (const [re, view] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    const [s, d] = m.slice(1).map(decodeURIComponent);
    if (me.role !== "admin" && me.summit !== s) {
      const main = shell(null);
      main.append(
        h("h1", null, "Another summit"),
        h("p", null, "This address belongs to a summit your invitation does not cover."),
        h("p", null, h("a", { href: `/s/${enc(me.summit)}` }, "Go to your summit")),
      );
      return;
    }
    const summit = await summitInfo(s);
    if (seq !== renderSeq) return;
    const main = shell(summit);
    app.view = view({ app, main, summit, me }, s, d) || null;
    return;
  }
  const main = shell(null);
  document.title = "Not found — Communiqué";
  main.append(h("h1", null, "Page not found"), h("p", null, h("a", { href: "/" }, "Go to the summit's home")));
}

// Same-origin links navigate inside the app (downloads and API links do not).
document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest && e.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download") || a.origin !== location.origin) return;
  if (a.pathname.startsWith("/api/") || a.pathname.startsWith("/assets/")) return;
  if (a.pathname === location.pathname && a.hash) return; // in-page anchor
  e.preventDefault();
  navigate(a.pathname + a.search + a.hash);
});

addEventListener("popstate", () => render());
addEventListener("unhandledrejection", (e) => {
  console.warn("communiqué:", e.reason);
  notify(`Something went wrong: ${e.reason && e.reason.message ? e.reason.message : e.reason}`, "error");
  e.preventDefault();
});

export { app };
render();

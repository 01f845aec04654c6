// /s/{summit}: the summit's documents in order, with their state, and who
// is drafting right now, by delegation. Live: each document is followed on
// its approved stream (which also carries join/leave of drafters), and the
// pending counts are refreshed while the page is open.

import { api, enc, docPath } from "../api.js";
import { h, replace } from "../dom.js";
import { Follower } from "../follower.js";
import { colorClass } from "../colors.js";
import { canReadDraft, shortLabel, authorOf } from "../roles.js";
import { exportLinks } from "./common.js";
import { invitePanel, newDocPanel } from "./manage.js";

const REFRESH = 8000;

export function homeView({ app, main, summit, me }, s) {
  document.title = `${summit.title} — Communiqué`;
  const list = h("ol", { class: "doc-list", "aria-label": "Outcome documents" });
  const online = h("div", { class: "online" }, h("p", { class: "muted" }, "Nobody is drafting right now."));
  const headingId = "docs-heading";
  main.append(
    h(
      "div",
      { class: "page home" },
      h(
        "div",
        { class: "page-head" },
        h("p", { class: "eyebrow" }, "Outcome documents"),
        h("h1", { tabindex: "-1" }, summit.title),
        h("p", { class: "lede" }, me.role === "observer" ? "Follow the approved texts as the chair's office adopts them." : "Draft the texts together; the chair's office approves each change."),
      ),
      h(
        "div",
        { class: "home-grid" },
        h("section", { "aria-labelledby": headingId }, h("h2", { id: headingId, class: "section-title" }, "Documents"), list),
        h(
          "aside",
          { class: "side", "aria-label": "Participants and downloads" },
          h("section", { class: "panel" }, h("h2", { class: "panel-title" }, "Drafting now"), online),
          h("section", { class: "panel" }, h("h2", { class: "panel-title" }, "Download"), exportLinks(s, me)),
          me.role === "chair" ? invitePanel(s) : null,
          me.role === "chair" ? newDocPanel(s, () => app.reload()) : null,
        ),
      ),
    ),
  );

  const docs = new Map(); // id → {meta, pending, follower, peers: Map}
  let stopped = false;

  function renderDocs() {
    replace(
      list,
      [...docs.values()].map(({ meta, pending }, i) => {
        const base = `/s/${enc(s)}/d/${enc(meta.id)}`;
        let state;
        if (meta.adopted) state = h("span", { class: "badge badge-adopted" }, "Adopted");
        else if (pending === null || pending === undefined) state = h("span", { class: "badge" }, canReadDraft(me) ? "…" : "In negotiation");
        else if (pending === 0) state = h("span", { class: "badge badge-clear" }, "No pending changes");
        else state = h("span", { class: "badge badge-pending" }, `${pending} pending change${pending === 1 ? "" : "s"}`);
        const drafting = docs.get(meta.id).peers.size;
        return h(
          "li",
          { class: "doc-card", "data-doc": meta.id },
          h("span", { class: "doc-no", "aria-hidden": "true" }, String(i + 1)),
          h(
            "div",
            { class: "doc-card-body" },
            h("h3", { class: "doc-title" }, h("a", { href: base }, meta.title)),
            h(
              "p",
              { class: "doc-state" },
              state,
              drafting ? h("span", { class: "muted" }, ` · ${drafting} drafting`) : null,
            ),
            h(
              "p",
              { class: "doc-actions" },
              me.role === "observer" || meta.adopted
                ? h("a", { href: meta.adopted && me.role !== "observer" ? `${base}/approved` : base, class: "btn btn-small" }, "Read")
                : h("a", { href: base, class: "btn btn-small btn-primary" }, "Draft"),
              me.role === "chair" && !meta.adopted ? h("a", { href: `${base}/review`, class: "btn btn-small" }, "Review changes") : null,
              me.role !== "observer" && !meta.adopted ? h("a", { href: `${base}/approved`, class: "btn btn-small" }, "Approved text") : null,
              h("a", { href: `${base}/history`, class: "btn btn-small" }, "History"),
            ),
          ),
        );
      }),
    );
  }

  function renderOnline() {
    const groups = new Map(); // author → {label, people: [{name, doc}]}
    for (const { meta, peers } of docs.values()) {
      for (const p of peers.values()) {
        const key = authorOf(p);
        if (!groups.has(key)) groups.set(key, { label: shortLabel(p), people: new Map() });
        const g = groups.get(key);
        const who = g.people.get(p.name) || { name: p.name, docs: new Set() };
        who.docs.add(meta.title);
        g.people.set(p.name, who);
      }
    }
    if (!groups.size) {
      replace(online, h("p", { class: "muted" }, "Nobody is drafting right now."));
      return;
    }
    const keys = [...groups.keys()].sort((a, b) => (a === "chair" ? -1 : b === "chair" ? 1 : a.localeCompare(b)));
    replace(
      online,
      h(
        "ul",
        { class: "presence-list", "aria-label": "Drafting now, by delegation" },
        keys.map((k) => {
          const g = groups.get(k);
          return h(
            "li",
            null,
            h("span", { class: `dot ${colorClass(k)}`, "aria-hidden": "true" }),
            h("strong", null, g.label),
            h(
              "ul",
              { class: "presence-people" },
              [...g.people.values()].map((p) => h("li", null, p.name, h("span", { class: "muted" }, ` — ${[...p.docs].join(", ")}`))),
            ),
          );
        }),
      ),
    );
  }

  async function refreshPending() {
    if (!canReadDraft(me)) return;
    await Promise.all(
      [...docs.values()].map(async (d) => {
        if (d.meta.adopted) {
          d.pending = 0;
          return;
        }
        try {
          const c = await api("GET", docPath(s, d.meta.id, "/changes"));
          d.pending = c.changes.length;
        } catch {
          d.pending = null;
        }
      }),
    );
    if (!stopped) renderDocs();
  }

  let timer = null;
  async function load() {
    let metas;
    try {
      metas = await api("GET", `/api/summits/${enc(s)}/docs`);
    } catch (e) {
      replace(list, h("li", { class: "error" }, `The documents could not be loaded: ${e.message}`));
      return;
    }
    if (stopped) return;
    for (const meta of metas) {
      const d = { meta, pending: null, peers: new Map(), follower: null };
      d.follower = new Follower(s, meta.id, "approved", {
        hello: (m) => {
          d.peers = new Map((m.presence || []).map((p) => [p.client, p]));
          if (m.adopted) d.meta.adopted = true;
          renderDocs();
          renderOnline();
        },
        presence: (m) => {
          if (m.event === "leave") d.peers.delete(m.peer.client);
          else if (m.event === "join") d.peers.set(m.peer.client, m.peer);
          renderDocs();
          renderOnline();
        },
        text: (_t, info) => {
          if (info.op) refreshPending();
        },
        adopted: () => {
          d.meta.adopted = true;
          d.pending = 0;
          renderDocs();
        },
      });
      docs.set(meta.id, d);
      d.follower.start();
    }
    if (!metas.length) replace(list, h("li", { class: "muted" }, "No documents yet."));
    else renderDocs();
    await refreshPending();
    timer = setInterval(refreshPending, REFRESH);
  }
  load();

  return {
    destroy() {
      stopped = true;
      clearInterval(timer);
      for (const d of docs.values()) d.follower.stop();
    },
  };
}

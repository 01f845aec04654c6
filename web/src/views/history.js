// /s/{summit}/d/{doc}/history: a version slider over either stream, an
// attributed redline between two versions, the adopted versions, the
// decisions taken, and downloads. The address keeps the choices
// (?stream=&v=&from=&to=) so a view can be bookmarked or shared.

import { api, docPath } from "../api.js";
import { h, replace, dateTime, id } from "../dom.js";
import { renderRedline, authorChips, describe } from "../redline.js";
import { pageHead, docTabs, loadError, exportLinks } from "./common.js";
import { canReadDraft } from "../roles.js";

const NOT_YET = "History is not available on this server yet.";

export function historyView({ main, summit, me }, s, d) {
  const page = h("div", { class: "page history" });
  main.append(page);
  let destroyed = false;
  let meta = null;
  const q = new URLSearchParams(location.search);
  let stream = canReadDraft(me) && q.get("stream") === "draft" ? "draft" : "approved";

  const sliderId = id("version");
  const slider = h("input", { type: "range", id: sliderId, min: "0", max: "0", step: "1", value: "0", class: "slider" });
  const versionOut = h("output", { for: sliderId, class: "version-out" });
  const versionMeta = h("p", { class: "muted small version-meta" });
  const textBox = h("article", { class: "reading plain", "aria-label": "Text at the chosen version" });
  const fromId = id("from");
  const toId = id("to");
  const fromIn = h("input", { type: "number", id: fromId, min: "0", class: "input input-num", inputmode: "numeric" });
  const toIn = h("input", { type: "number", id: toId, min: "0", class: "input input-num", inputmode: "numeric" });
  const compareBox = h("div", { class: "compare-out" });
  const adoptedBox = h("div");
  const decisionsBox = h("div");
  const streamRadios = h("fieldset", { class: "radios" }, h("legend", null, "Text"));

  function head() {
    return stream === "approved" ? meta.approved.version : meta.draft ? meta.draft.version : 0;
  }

  function keepInURL() {
    const p = new URLSearchParams({ stream, v: slider.value });
    if (fromIn.value !== "") p.set("from", fromIn.value);
    if (toIn.value !== "") p.set("to", toIn.value);
    history.replaceState(null, "", `${location.pathname}?${p}`);
  }

  let textSeq = 0;
  async function showVersion() {
    const v = Number(slider.value);
    const seq = ++textSeq;
    versionOut.textContent = `Version ${v} of ${head()}`;
    keepInURL();
    try {
      const [t, hist] = await Promise.all([
        api("GET", docPath(s, d, `/text?stream=${stream}&version=${v}`)),
        v > 0 ? api("GET", docPath(s, d, `/history?stream=${stream}&after=${v - 1}&limit=1`)) : Promise.resolve(null),
      ]);
      if (seq !== textSeq) return;
      replace(textBox, t.text);
      const op = hist && hist.ops && hist.ops[0];
      if (!op) versionMeta.textContent = "The text as the document was created.";
      else {
        const who = op.name || op.author;
        const dec = op.decision ? ` — ${op.decision.kind === "reject" ? "rejected" : "approved"} a change${op.decision.authors?.length ? ` by ${op.decision.authors.join(", ")}` : ""}` : "";
        versionMeta.textContent = `${dateTime(op.time)} · ${who}${dec}`;
      }
    } catch (e) {
      if (seq !== textSeq) return;
      replace(textBox, h("p", { class: "muted" }, e.status === 404 ? NOT_YET : `This version could not be loaded: ${e.message}`));
      versionMeta.textContent = "";
    }
  }

  async function compare() {
    const from = Number(fromIn.value || 0);
    const to = Number(toIn.value || head());
    keepInURL();
    if (from > to) {
      replace(compareBox, h("p", { class: "error", role: "alert" }, "“From” must not be after “To”."));
      return;
    }
    replace(compareBox, h("p", { class: "muted" }, "Comparing…"));
    try {
      const [r, base] = await Promise.all([
        api("GET", docPath(s, d, `/redline?stream=${stream}&from=${from}&to=${to}`)),
        api("GET", docPath(s, d, `/text?stream=${stream}&version=${from}`)),
      ]);
      const n = r.changes.length;
      replace(
        compareBox,
        h("p", { class: "review-summary", role: "status" }, n ? `${n} change${n === 1 ? "" : "s"} from version ${from} to version ${to}.` : `No change between versions ${from} and ${to}.`),
        n
          ? h(
              "ol",
              { class: "change-list compact", "aria-label": "Changes between the versions" },
              r.changes.map((c, i) =>
                h(
                  "li",
                  { class: "change-card" },
                  h("div", { class: "change-head" }, h("a", { href: `#hunk-${i + 1}`, class: "change-no" }, `Change ${i + 1}`), h("span", { class: "chips" }, authorChips(c.authors))),
                  h("p", { class: "small" }, describe(c)),
                ),
              ),
            )
          : null,
        h("div", { class: "reading redline" }, renderRedline(base.text, r.changes)),
      );
    } catch (e) {
      replace(compareBox, h("p", { class: "muted" }, e.status === 404 ? NOT_YET : `The comparison failed: ${e.message}`));
    }
  }

  function renderAdoptions() {
    const list = meta.adoptions || [];
    if (!list.length) {
      replace(adoptedBox, h("p", { class: "muted small" }, "Not adopted yet."));
      return;
    }
    replace(
      adoptedBox,
      h(
        "ol",
        { class: "adoptions" },
        list.map((a) =>
          h(
            "li",
            null,
            h(
              "button",
              {
                type: "button",
                class: "link-btn",
                onclick: () => {
                  setStream("approved");
                  slider.value = String(a.approved_version);
                  showVersion();
                },
              },
              a.name,
            ),
            h("span", { class: "muted small" }, ` — ${dateTime(Date.parse(a.time))}, approved version ${a.approved_version}`),
          ),
        ),
      ),
    );
  }

  async function loadDecisions() {
    if (!canReadDraft(me)) return;
    try {
      const list = await api("GET", docPath(s, d, "/decisions"));
      if (!list.length) {
        replace(decisionsBox, h("p", { class: "muted small" }, "No decision yet."));
        return;
      }
      replace(
        decisionsBox,
        h(
          "ol",
          { class: "decisions" },
          list
            .slice()
            .reverse()
            .map((x) =>
              h(
                "li",
                null,
                h("span", { class: x.kind === "reject" ? "badge badge-rejected" : "badge badge-clear" }, x.kind === "reject" ? "Rejected" : "Approved"),
                " ",
                authorChips(x.authors),
                h("span", { class: "small" }, ` ${describe(x)}`),
                h("span", { class: "muted small" }, ` — ${dateTime(Date.parse(x.time))}, ${x.by}`),
              ),
            ),
        ),
      );
    } catch (e) {
      replace(decisionsBox, h("p", { class: "muted small" }, e.status === 404 ? NOT_YET : `Could not load the decisions: ${e.message}`));
    }
  }

  function setStream(st) {
    stream = st;
    for (const r of streamRadios.querySelectorAll("input")) r.checked = r.value === st;
    slider.max = String(head());
    toIn.max = fromIn.max = String(head());
    if (Number(slider.value) > head()) slider.value = String(head());
  }

  async function start() {
    try {
      meta = await api("GET", docPath(s, d));
    } catch (e) {
      page.append(pageHead({ s, summit, title: "History", eyebrow: "History" }));
      loadError(page, "document", e);
      return;
    }
    if (destroyed) return;
    document.title = `History: ${meta.title} — Communiqué`;
    const choices = canReadDraft(me)
      ? [
          ["approved", "Approved text"],
          ["draft", "Draft"],
        ]
      : [["approved", "Approved text"]];
    for (const [value, label] of choices) {
      const rid = id("stream");
      streamRadios.append(
        h(
          "label",
          { class: "radio", for: rid },
          h("input", {
            type: "radio",
            id: rid,
            name: "stream",
            value,
            checked: value === stream,
            onchange: () => {
              setStream(value);
              slider.value = String(head());
              showVersion();
            },
          }),
          ` ${label}`,
        ),
      );
    }
    setStream(stream);
    const v = Number(q.get("v"));
    slider.value = String(q.has("v") && v >= 0 && v <= head() ? v : head());
    if (q.has("from")) fromIn.value = q.get("from");
    if (q.has("to")) toIn.value = q.get("to");
    let debounce = null;
    slider.addEventListener("input", () => {
      versionOut.textContent = `Version ${slider.value} of ${head()}`;
      clearTimeout(debounce);
      debounce = setTimeout(showVersion, 120);
    });

    page.append(
      pageHead({ s, summit, title: meta.title, eyebrow: "History" }),
      docTabs(s, d, me, "history", meta.adopted),
      h(
        "div",
        { class: "doc-grid" },
        h(
          "div",
          { class: "reading-col" },
          h(
            "section",
            { class: "panel", "aria-labelledby": "read-title" },
            h("h2", { id: "read-title", class: "section-title" }, "Read a version"),
            streamRadios,
            h("div", { class: "slider-row" }, h("label", { for: sliderId }, "Version"), slider, versionOut),
            versionMeta,
            textBox,
          ),
          h(
            "section",
            { class: "panel", "aria-labelledby": "cmp-title" },
            h("h2", { id: "cmp-title", class: "section-title" }, "Compare two versions"),
            h(
              "form",
              {
                class: "compare-form",
                onsubmit: (e) => {
                  e.preventDefault();
                  compare();
                },
              },
              h("label", { for: fromId }, "From version"),
              fromIn,
              h("label", { for: toId }, "To version"),
              toIn,
              h("button", { type: "submit", class: "btn" }, "Show changes"),
            ),
            compareBox,
          ),
        ),
        h(
          "aside",
          { class: "side", "aria-label": "Adopted versions, decisions and downloads" },
          h("section", { class: "panel" }, h("h2", { class: "panel-title" }, "Adopted versions"), adoptedBox),
          canReadDraft(me) ? h("section", { class: "panel" }, h("h2", { class: "panel-title" }, "Decisions"), decisionsBox) : null,
          h("section", { class: "panel" }, h("h2", { class: "panel-title" }, "Download"), exportLinks(s, me)),
        ),
      ),
    );
    fromIn.placeholder = "0";
    toIn.placeholder = String(head());
    renderAdoptions();
    showVersion();
    loadDecisions();
    if (q.has("from") || q.has("to")) compare();
  }
  start();

  return {
    destroy() {
      destroyed = true;
    },
  };
}

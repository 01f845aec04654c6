// The chair's office on the home page: invitations (create one, copy its
// link, revoke any) and new documents (annexes).

import { api, enc } from "../api.js";
import { h, replace, notify, id, announce } from "../dom.js";
import { ROLE_LABEL } from "../roles.js";

export function invitePanel(s) {
  const roleId = id("role");
  const delId = id("delegation");
  const nameId = id("name");
  const role = h(
    "select",
    { id: roleId, class: "input" },
    h("option", { value: "delegate" }, "Delegate"),
    h("option", { value: "observer" }, "Observer"),
    h("option", { value: "chair" }, "Chair's office"),
  );
  const delegation = h("input", { id: delId, class: "input", maxlength: "32", placeholder: "e.g. KOR", autocomplete: "off", pattern: "[A-Za-z0-9_\\-]{1,32}" });
  const delRow = h("div", { class: "field" }, h("label", { for: delId }, "Delegation code"), delegation);
  const name = h("input", { id: nameId, class: "input", maxlength: "100", placeholder: "e.g. Republic of Korea", autocomplete: "off" });
  const result = h("div", { class: "invite-result", "aria-live": "polite" });
  const list = h("ul", { class: "token-list", "aria-label": "Invitations issued" });
  role.addEventListener("change", () => (delRow.hidden = role.value !== "delegate"));

  async function refresh() {
    try {
      const tokens = await api("GET", `/api/summits/${enc(s)}/tokens`);
      replace(
        list,
        tokens
          .slice()
          .reverse()
          .map((t) =>
            h(
              "li",
              null,
              h("span", null, h("strong", null, t.delegation || ROLE_LABEL[t.role] || t.role), ` ${t.name}`),
              h(
                "button",
                {
                  type: "button",
                  class: "btn btn-small btn-danger-quiet",
                  "aria-label": `Revoke the invitation of ${t.name}`,
                  onclick: async () => {
                    if (!confirm(`Revoke the invitation of ${t.name}? Their open pages are disconnected at once.`)) return;
                    try {
                      await api("DELETE", `/api/summits/${enc(s)}/tokens/${enc(t.id)}`);
                      announce(`Revoked the invitation of ${t.name}`);
                    } catch (e) {
                      notify(`Could not revoke: ${e.message}`, "error");
                    }
                    refresh();
                  },
                },
                "Revoke",
              ),
            ),
          ),
      );
    } catch (e) {
      replace(list, h("li", { class: "muted small" }, `The invitations could not be listed: ${e.message}`));
    }
  }

  const form = h(
    "form",
    {
      class: "stack compact-form",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          const t = await api("POST", `/api/summits/${enc(s)}/tokens`, {
            role: role.value,
            delegation: role.value === "delegate" ? delegation.value.trim().toUpperCase() : "",
            name: name.value.trim(),
          });
          const link = `${location.origin}/join#token=${t.token}`;
          const linkId = id("link");
          const input = h("input", { id: linkId, class: "input", readonly: true, value: link });
          replace(
            result,
            h("label", { for: linkId }, `Invitation link for ${t.name} (shown once)`),
            h(
              "div",
              { class: "copy-row" },
              input,
              h(
                "button",
                {
                  type: "button",
                  class: "btn btn-small",
                  onclick: async () => {
                    input.select();
                    try {
                      await navigator.clipboard.writeText(link);
                      notify("Link copied.", "success", 2500);
                    } catch {
                      notify("Select the link and copy it.", "info", 3000);
                    }
                  },
                },
                "Copy",
              ),
            ),
          );
          name.value = "";
          delegation.value = "";
          refresh();
        } catch (ex) {
          replace(result, h("p", { class: "error", role: "alert" }, ex.message));
        }
      },
    },
    h("div", { class: "field" }, h("label", { for: roleId }, "Role"), role),
    delRow,
    h("div", { class: "field" }, h("label", { for: nameId }, "Name"), name),
    h("button", { type: "submit", class: "btn btn-primary" }, "Create invitation"),
  );
  refresh();
  return h("section", { class: "panel" }, h("h2", { class: "panel-title" }, "Invitations"), form, result, h("details", { class: "tokens" }, h("summary", null, "Issued invitations"), list));
}

export function newDocPanel(s, onCreated) {
  const titleId = id("doc-title");
  const idId = id("doc-id");
  const title = h("input", { id: titleId, class: "input", required: true, maxlength: "300", placeholder: "Annex III — …", autocomplete: "off" });
  const docId = h("input", { id: idId, class: "input", required: true, maxlength: "64", pattern: "[A-Za-z0-9][A-Za-z0-9_\\-]{0,63}", placeholder: "annex-3", autocomplete: "off" });
  const err = h("p", { class: "error", role: "alert", hidden: true });
  let touched = false;
  docId.addEventListener("input", () => (touched = true));
  title.addEventListener("input", () => {
    if (touched) return;
    const m = /annex\s+([ivxlc]+|\d+)/i.exec(title.value);
    if (m) docId.value = `annex-${romanToInt(m[1]) || m[1]}`;
  });
  const form = h(
    "form",
    {
      class: "stack compact-form",
      onsubmit: async (e) => {
        e.preventDefault();
        err.hidden = true;
        try {
          await api("POST", `/api/summits/${enc(s)}/docs`, { id: docId.value.trim(), title: title.value.trim(), text: "" });
          notify(`“${title.value.trim()}” was created.`, "success");
          title.value = docId.value = "";
          touched = false;
          onCreated();
        } catch (ex) {
          err.hidden = false;
          err.textContent = ex.status === 409 ? "A document with that id exists already." : ex.message;
        }
      },
    },
    h("div", { class: "field" }, h("label", { for: titleId }, "Title"), title),
    h("div", { class: "field" }, h("label", { for: idId }, "Address id"), docId),
    err,
    h("button", { type: "submit", class: "btn" }, "Create document"),
  );
  return h("section", { class: "panel" }, h("h2", { class: "panel-title" }, "New document"), form);
}

function romanToInt(s) {
  if (/^\d+$/.test(s)) return Number(s);
  const v = { i: 1, v: 5, x: 10, l: 50, c: 100 };
  let n = 0;
  const t = s.toLowerCase();
  for (let i = 0; i < t.length; i++) {
    const a = v[t[i]];
    const b = v[t[i + 1]] || 0;
    n += a < b ? -a : a;
  }
  return n;
}

// /join#token=…: the invitation link. The token is read from the fragment
// (never sent to the server in a URL), exchanged for a session cookie, and
// removed from the address bar at once.

import { api, enc } from "../api.js";
import { h, id } from "../dom.js";

async function exchange(app, token) {
  const me = await api("POST", "/api/session", { token });
  app.me = me;
  return me;
}

function tokenFrom(input) {
  const s = input.trim();
  const m = /[#&?]token=([^&#\s]+)/.exec(s);
  return m ? decodeURIComponent(m[1]) : s;
}

export function joinView({ app, main }) {
  document.title = "Joining — Communiqué";
  const token = tokenFrom(location.hash.startsWith("#") ? location.hash : "");
  history.replaceState(null, "", "/join"); // the token leaves the address bar
  if (!token) {
    main.append(signInForm({ app, main }));
    return null;
  }
  const msg = h("p", { class: "loading", role: "status" }, "Checking your invitation…");
  main.append(h("section", { class: "narrow" }, h("h1", null, "Joining"), msg));
  exchange(app, token).then(
    (me) => app.navigate(me.summit ? `/s/${enc(me.summit)}` : "/", { replace: true }),
    (e) => {
      msg.className = "error";
      msg.textContent =
        e.status === 401
          ? "This invitation is not valid: it may have been revoked. Ask the chair's office for a new link."
          : `The invitation could not be checked: ${e.message}`;
      main.append(signInForm({ app, main, heading: false }));
    },
  );
  return null;
}

/** The form for pasting an invitation link or token. */
export function signInForm({ app, heading = true }) {
  const inputId = id("invite");
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const input = h("input", {
    id: inputId,
    name: "invitation",
    type: "password",
    autocomplete: "off",
    required: true,
    class: "input",
    placeholder: "https://…/join#token=…",
  });
  const form = h(
    "form",
    {
      class: "stack",
      onsubmit: async (e) => {
        e.preventDefault();
        err.hidden = true;
        try {
          const me = await exchange(app, tokenFrom(input.value));
          app.navigate(me.summit ? `/s/${enc(me.summit)}` : "/", { replace: true });
        } catch (ex) {
          err.hidden = false;
          err.textContent = ex.status === 401 ? "That invitation is not valid." : `Could not sign in: ${ex.message}`;
        }
      },
    },
    h("label", { for: inputId }, "Invitation link or token"),
    input,
    err,
    h("button", { type: "submit", class: "btn btn-primary" }, "Join"),
  );
  return h(
    "section",
    { class: "narrow card" },
    heading ? h("h1", null, "Join a summit") : null,
    heading ? h("p", null, "Open the invitation link you received from the chair's office, or paste it here.") : null,
    form,
  );
}

// Roles and how the interface names people.

export const ROLE_LABEL = { chair: "Chair's office", delegate: "Delegate", observer: "Observer", admin: "Server admin" };

/** The author code of a participant: the delegation, or "chair". */
export function authorOf(p) {
  return p.delegation || (p.role === "chair" ? "chair" : p.role || "");
}

/** A short label for cursors and chips: KOR, Chair. */
export function shortLabel(p) {
  if (p.delegation) return p.delegation;
  return p.role === "chair" ? "Chair" : ROLE_LABEL[p.role] || p.role;
}

export const canEdit = (me) => me.role === "chair" || me.role === "delegate";
export const canReadDraft = (me) => me.role !== "observer";

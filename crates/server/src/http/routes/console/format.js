// How values from the API read on the page.

/** `prefix…postfix`: enough to recognise a key, never the secret. */
export function masked(key) {
  return `${key.prefix}…${key.postfix}`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

export function when(iso, never = "—") {
  return iso ? dateTime.format(new Date(iso)) : never;
}

/** How a key's credits renew, in words: "1000 every month (on the 15th)". */
export function refillText(refill) {
  if (!refill) return "Never";
  const on = refill.day_of_month ? ` (on day ${refill.day_of_month})` : "";
  return `Back to ${refill.amount} every ${refill.interval}${on}`;
}

export function day(iso, never = "—") {
  return iso ? dateOnly.format(new Date(iso)) : never;
}

/** What a key's status means now: expiry is a time, not a stored status. */
export function state(key, now = Date.now()) {
  if (key.status === "REVOKED") return "Revoked";
  if (key.expires_at && Date.parse(key.expires_at) <= now) return "Expired";
  if (key.status === "SUSPENDED") return "Suspended";
  if (key.rotated_to) return "Rotating out";
  return "Active";
}

/** The permission names, or a word when there are none. */
export function permissionList(names) {
  return names.length ? names.join(", ") : "None (identifies its owner)";
}

/** What an audit event did, in words. */
export function describeEvent(event) {
  const action = event.action.replace(/_/g, " ");
  const who = event.actor?.type === "user" ? event.actor.id : `${event.actor?.type} ${event.actor?.id ?? ""}`.trim();
  const changes = Object.entries(event.changes || {}).map(([field, change]) => {
    const show = (v) => (v === null || v === undefined ? "none" : typeof v === "string" ? v : JSON.stringify(v));
    return `${field}: ${show(change?.before)} → ${show(change?.after)}`;
  });
  return { action, who, changes };
}

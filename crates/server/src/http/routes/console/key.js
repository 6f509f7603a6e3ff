// One of the user's keys: its details, editing, Suspend / Reactivate, Rotate, Revoke,
// its audit trail and its usage chart.

import { api, seg } from "./api.js";
import { usageSection } from "./chart.js";
import { errorLine, modal, revokeButton, showOnce } from "./dialogs.js";
import { field, h, replace, toast } from "./dom.js";
import { describeEvent, masked, permissionList, refillText, state, when } from "./format.js";
import { permissionBoxes, permissions } from "./keys.js";

const GRACE = [
  ["0", "None: the old key stops at once"],
  ["3600", "1 hour"],
  ["86400", "1 day"],
  ["604800", "7 days"],
];

function rotateDialog(key) {
  return modal(`Rotate “${key.name}”`, (close) => {
    const grace = h("select", {}, GRACE.map(([value, label]) => h("option", { value, selected: value === "3600" }, label)));
    const problem = h("div", {});
    return h(
      "form",
      {
        onsubmit: async (event) => {
          event.preventDefault();
          try {
            close(await api("POST", `/api/api-keys/${seg(key.id)}/rotate`, { grace_seconds: Number(grace.value) }));
          } catch (error) {
            replace(problem, errorLine(error));
          }
        },
      },
      h("p", {}, "A new key replaces this one, with the same name, permissions and expiry. The old key keeps working during the grace period, so you can switch over."),
      field("Grace period for the old key", grace),
      problem,
      h("div", { class: "actions" }, h("button", { type: "button", onclick: () => close() }, "Cancel"), h("button", { type: "submit", class: "primary" }, "Rotate")),
    );
  });
}

function details(key) {
  const rows = [
    ["Key", h("code", {}, masked(key))],
    ["Status", h("span", { class: `badge ${state(key).toLowerCase().replace(" ", "-")}` }, state(key))],
    ["Permissions", permissionList(key.permissions)],
    ["Created", when(key.created_at)],
    ["Last used", when(key.last_used_at, "Never")],
    ["Expires", when(key.expires_at, "Never")],
    ["Rate limit", key.rate_limit ? `${key.rate_limit.requests} per ${key.rate_limit.per_seconds} s` : "None"],
    ["Credits left", key.remaining ?? "Unlimited"],
    ["Credits renew", key.refill ? `${refillText(key.refill)}; next ${when(key.next_refill_at)}` : "Never"],
    ["Networks", key.allowed_ips ? key.allowed_ips.join(", ") : "Any address"],
  ];
  if (key.rotated_to) rows.push(["Replaced by", h("a", { href: `#/keys/${key.rotated_to}` }, "the new key")]);
  if (key.rotated_from) rows.push(["Replaces", h("a", { href: `#/keys/${key.rotated_from}` }, "the previous key")]);
  return h("dl", { class: "details" }, rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

function editForm(key, names, reload) {
  const name = h("input", { type: "text", value: key.name, required: true, maxlength: 100 });
  const description = h("textarea", { rows: 2, maxlength: 1000 });
  description.value = key.description || "";
  const perms = permissionBoxes(names, key.permissions);
  const networks = h("textarea", { rows: 2, placeholder: "203.0.113.0/24" });
  networks.value = (key.allowed_ips || []).join("\n");
  const problem = h("div", {});
  const form = h(
    "form",
    {
      class: "card",
      "aria-label": "Edit key",
      onsubmit: async (event) => {
        event.preventDefault();
        replace(problem);
        try {
          const patch = {};
          if (name.value.trim() !== key.name) patch.name = name.value.trim();
          if (description.value.trim() !== (key.description || "")) patch.description = description.value.trim() || null;
          const listed = networks.value.split(/[\s,]+/).filter(Boolean);
          if (listed.join() !== (key.allowed_ips || []).join()) patch.allowed_ips = listed.length ? listed : null;
          if (Object.keys(patch).length) await api("PATCH", `/api/api-keys/${seg(key.id)}`, patch);
          const chosen = perms.value();
          if (chosen.join() !== key.permissions.join()) {
            await api("PUT", `/api/api-keys/${seg(key.id)}/permissions`, { permissions: chosen });
          }
          toast("Saved");
          reload();
        } catch (error) {
          replace(problem, errorLine(error));
        }
      },
    },
    h("h2", {}, "Edit"),
    field("Name", name),
    field("Description", description),
    field("Networks it may be used from", networks, "One network per line (CIDR, IPv4 or IPv6); empty: any address."),
    perms,
    problem,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Save changes")),
  );
  if (key.status === "REVOKED") for (const control of form.querySelectorAll("input, textarea, button")) control.disabled = true;
  return form;
}

function trail(events) {
  if (!events.length) return h("p", { class: "muted" }, "No changes recorded.");
  return h(
    "ol",
    { class: "events" },
    events.map((event) => {
      const { action, who, changes } = describeEvent(event);
      return h(
        "li",
        {},
        h("span", { class: "event-action" }, action),
        " by ", who, " · ", h("time", { datetime: event.at }, when(event.at)),
        changes.length ? h("ul", { class: "changes" }, changes.map((c) => h("li", {}, c))) : null,
      );
    }),
  );
}

/**
 * A banner when the key was reported leaked: when, by whom, where it was seen (as the
 * reporter says: text, never a link, since anyone holding the key may report it) and
 * what that did to it.
 */
function leakBanner(key, events) {
  const leaked = events.filter((event) => event.action === "leaked").at(-1);
  if (!leaked) return null;
  const url = leaked.changes?.url?.after;
  const source = leaked.changes?.source?.after;
  const outcome =
    key.status === "REVOKED"
      ? "It was revoked: it no longer works."
      : key.status === "SUSPENDED"
        ? "It is suspended: reactivate it only if you are sure nobody else holds it."
        : "It still works: rotate it, switch to the new key, and revoke this one.";
  return h(
    "div",
    { class: "warning leaked", role: "alert" },
    h("strong", {}, "This key was found leaked"),
    ` on ${when(leaked.at)}`,
    source ? ` (reported by ${source})` : "",
    url ? [", seen at ", h("code", { class: "leak-url" }, url)] : "",
    ". ",
    outcome,
  );
}

/** The key page, `#/keys/{id}`. */
export async function keyView(main, id, navigate) {
  replace(main, h("p", { class: "muted" }, "Loading the key…"));
  let key;
  let names;
  let events;
  try {
    [key, names, events] = await Promise.all([
      api("GET", `/api/api-keys/${seg(id)}`),
      permissions(),
      api("GET", `/api/api-keys/${seg(id)}/events?limit=200`),
    ]);
  } catch (error) {
    if (error.status !== 401) replace(main, h("p", {}, h("a", { href: "#/" }, "← All keys")), errorLine(error));
    return;
  }
  const reload = () => keyView(main, id, navigate);
  const act = async (method, path, done) => {
    try {
      await api(method, path);
      toast(done);
      reload();
    } catch (error) {
      if (error.status !== 401) toast(error.text);
    }
  };
  const revoked = key.status === "REVOKED";
  const buttons = [];
  if (!revoked && key.status === "ACTIVE") {
    buttons.push(h("button", { type: "button", onclick: () => act("POST", `/api/api-keys/${seg(id)}/suspend`, "Suspended") }, "Suspend"));
  }
  if (!revoked && key.status === "SUSPENDED") {
    buttons.push(h("button", { type: "button", onclick: () => act("POST", `/api/api-keys/${seg(id)}/reactivate`, "Reactivated") }, "Reactivate"));
  }
  if (!revoked && !key.rotated_to) {
    buttons.push(
      h(
        "button",
        {
          type: "button",
          onclick: async () => {
            const rotated = await rotateDialog(key);
            if (!rotated) return;
            await showOnce("Your new key", rotated.plain_text_key, rotated.api_key.name);
            navigate(`#/keys/${rotated.api_key.id}`);
          },
        },
        "Rotate",
      ),
    );
  }
  if (!revoked) {
    buttons.push(
      revokeButton(`“${key.name}” (${masked(key)})`, () => act("DELETE", `/api/api-keys/${seg(id)}`, "Revoked")),
    );
  }
  replace(
    main,
    h("p", {}, h("a", { href: "#/" }, "← All keys")),
    h("div", { class: "row" }, h("h1", {}, key.name), h("div", { class: "actions", role: "group", "aria-label": "Key actions" }, buttons)),
    leakBanner(key, events.events),
    key.description ? h("p", { class: "description" }, key.description) : null,
    h("div", { class: "columns" }, h("section", { class: "card", "aria-label": "Details" }, details(key)), editForm(key, names, reload)),
    usageSection(`/api/api-keys/${seg(id)}/usage`),
    h("section", { class: "card", "aria-label": "Audit trail" }, h("h2", {}, "Audit trail"), trail(events.events)),
  );
}

// The user's view: their keys, sortable, and the Create key dialog.

import { api } from "./api.js";
import { sparkline } from "./chart.js";
import { errorLine, modal, showOnce } from "./dialogs.js";
import { field, h, replace, uid } from "./dom.js";
import { day, masked, permissionList, state, when } from "./format.js";

let catalogue;
/** The deployment's permission names (GET /api/permissions), fetched once. */
export async function permissions() {
  catalogue ||= api("GET", "/api/permissions").then((answer) => answer.permissions);
  try {
    return await catalogue;
  } catch (error) {
    catalogue = undefined;
    throw error;
  }
}

/** A checkbox per permission, inside a fieldset; `.value()` reads the ticked names. */
export function permissionBoxes(names, chosen = []) {
  const boxes = names.map((name) => {
    const box = h("input", { type: "checkbox", id: uid("perm"), value: name, checked: chosen.includes(name) });
    return h("label", { class: "check", for: box.id }, box, h("code", {}, name));
  });
  const set = h("fieldset", { class: "perms" }, h("legend", {}, "Permissions"), boxes);
  set.value = () => [...set.querySelectorAll("input:checked")].map((box) => box.value);
  return set;
}

const EXPIRY = [
  ["30", "In 30 days"],
  ["90", "In 90 days"],
  ["365", "In 365 days"],
  ["never", "Never"],
  ["date", "On a date…"],
];

/** The expiry presets; `.value()` is an RFC 3339 time or null (never). */
function expiryField() {
  const select = h("select", {}, EXPIRY.map(([value, label]) => h("option", { value, selected: value === "90" }, label)));
  const date = h("input", { type: "date", min: new Date(Date.now() + 86_400_000).toISOString().slice(0, 10) });
  const dateField = field("Expiry date", date);
  dateField.hidden = true;
  select.addEventListener("change", () => {
    dateField.hidden = select.value !== "date";
  });
  const wrapper = h("div", {}, field("Expires", select), dateField);
  wrapper.value = () => {
    if (select.value === "never") return null;
    if (select.value === "date") {
      if (!date.value) throw new Error("Choose an expiry date");
      return new Date(`${date.value}T23:59:59`).toISOString();
    }
    return new Date(Date.now() + Number(select.value) * 86_400_000).toISOString();
  };
  return wrapper;
}

/** The Create key dialog; resolves to the create answer, or undefined if cancelled. */
export async function createKeyDialog() {
  const names = await permissions();
  return modal("Create key", (close) => {
    const name = h("input", { type: "text", required: true, maxlength: 100, autocomplete: "off" });
    const description = h("textarea", { rows: 2, maxlength: 1000 });
    const perms = permissionBoxes(names);
    const expiry = expiryField();
    const problem = h("div", {});
    const submit = h("button", { type: "submit", class: "primary" }, "Create key");
    const form = h(
      "form",
      {
        novalidate: true,
        onsubmit: async (event) => {
          event.preventDefault();
          replace(problem);
          if (!name.value.trim()) {
            replace(problem, errorLine("Give the key a name"));
            name.focus();
            return;
          }
          const body = { name: name.value.trim(), permissions: perms.value() };
          if (description.value.trim()) body.description = description.value.trim();
          try {
            const expires = expiry.value();
            if (expires) body.expires_at = expires;
            submit.disabled = true;
            close(await api("POST", "/api/api-keys", body));
          } catch (error) {
            submit.disabled = false;
            replace(problem, errorLine(error));
          }
        },
      },
      field("Name", name, "What uses it, e.g. “CI pipeline”"),
      field("Description (optional)", description),
      perms,
      expiry,
      problem,
      h("div", { class: "actions" }, h("button", { type: "button", onclick: () => close() }, "Cancel"), submit),
    );
    queueMicrotask(() => name.focus());
    return form;
  });
}

/** Creates a key through the dialog and shows its plaintext once; true if one was made. */
export async function createKey() {
  const created = await createKeyDialog();
  if (!created) return false;
  await showOnce("Your new key", created.plain_text_key, created.api_key.name);
  return true;
}

const COLUMNS = [
  { id: "name", label: "Name", sort: (k) => k.name.toLowerCase() },
  { id: "key", label: "Key" },
  { id: "status", label: "Status", sort: (k) => state(k) },
  { id: "permissions", label: "Permissions" },
  { id: "created", label: "Created", sort: (k) => k.created_at },
  { id: "last_used", label: "Last used", sort: (k) => k.last_used_at || "" },
  { id: "expires", label: "Expires", sort: (k) => k.expires_at || "9999" },
  { id: "usage", label: "Usage (48 h)" },
];

/** A sortable table of keys; `link(key)` is where a name leads, `actions(key)` extra cells. */
export function keyTable(keys, { link, actions, usage, caption }) {
  let order = { column: "created", descending: true };
  const table = h("table", { class: "keys" });
  const columns = COLUMNS.filter((c) => c.id !== "usage" || usage);
  const draw = () => {
    const column = columns.find((c) => c.id === order.column);
    const sorted = [...keys].sort((a, b) => {
      const [x, y] = [column.sort(a), column.sort(b)];
      return (x < y ? -1 : x > y ? 1 : 0) * (order.descending ? -1 : 1);
    });
    const head = h(
      "tr",
      {},
      columns.map((c) => {
        if (!c.sort) return h("th", { scope: "col" }, c.label);
        const current = order.column === c.id;
        return h(
          "th",
          { scope: "col", "aria-sort": current ? (order.descending ? "descending" : "ascending") : "none" },
          h(
            "button",
            {
              type: "button",
              class: "sort",
              onclick: () => {
                order = { column: c.id, descending: current ? !order.descending : false };
                draw();
                table.querySelector(`th button[data-col="${c.id}"]`)?.focus();
              },
              "data-col": c.id,
            },
            c.label,
            h("span", { "aria-hidden": "true" }, current ? (order.descending ? " ▼" : " ▲") : ""),
          ),
        );
      }),
      actions ? h("th", { scope: "col" }, "Actions") : null,
    );
    const rows = sorted.map((key) =>
      h(
        "tr",
        { "data-key-id": key.id, "data-state": state(key) },
        h("td", { "data-label": "Name" }, link ? h("a", { href: link(key) }, key.name) : key.name),
        h("td", { "data-label": "Key" }, h("code", {}, masked(key))),
        h("td", { "data-label": "Status" }, h("span", { class: `badge ${state(key).toLowerCase().replace(" ", "-")}` }, state(key))),
        h("td", { "data-label": "Permissions" }, permissionList(key.permissions)),
        h("td", { "data-label": "Created" }, day(key.created_at)),
        h("td", { "data-label": "Last used" }, when(key.last_used_at, "Never")),
        h("td", { "data-label": "Expires" }, key.expires_at ? day(key.expires_at) : "Never"),
        usage ? h("td", { "data-label": "Usage (48 h)" }, usage(key)) : null,
        actions ? h("td", { "data-label": "Actions" }, h("div", { class: "row-actions" }, actions(key))) : null,
      ),
    );
    replace(table, caption ? h("caption", {}, caption) : null, h("thead", {}, head), h("tbody", {}, rows));
  };
  draw();
  return h("div", { class: "table-wrap" }, table);
}

/** The signed-in user's key list. */
export async function keysView(main) {
  const list = h("div", {}, h("p", { class: "muted" }, "Loading your keys…"));
  const create = h(
    "button",
    { type: "button", class: "primary", onclick: async () => (await createKey()) && load() },
    "Create key",
  );
  replace(main, h("div", { class: "row" }, h("h1", {}, "API keys"), create), list);
  async function load() {
    let keys;
    try {
      keys = await api("GET", "/api/api-keys");
    } catch (error) {
      if (error.status !== 401) replace(list, errorLine(error));
      return;
    }
    if (!keys.length) {
      replace(
        list,
        h(
          "div",
          { class: "empty card" },
          h("h2", {}, "No API keys yet"),
          h("p", {}, "A key lets your scripts and services call the platform as you. Create one, copy it, and keep it somewhere safe."),
          h("button", { type: "button", class: "primary", onclick: async () => (await createKey()) && load() }, "Create key"),
        ),
      );
      return;
    }
    replace(
      list,
      keyTable(keys, {
        caption: `${keys.length} key${keys.length === 1 ? "" : "s"}`,
        link: (key) => `#/keys/${key.id}`,
        usage: (key) => sparkline(`/api/api-keys/${key.id}/usage`),
      }),
    );
  }
  await load();
}

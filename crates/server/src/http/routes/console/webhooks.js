// Webhook endpoints (operator view, scope webhooks.manage): add one (its signing
// secret is shown once), test it, switch it off and on, delete it, and read its
// delivery log, each attempt with its status, latency and error, retrying one.

import { api, seg } from "./api.js";
import { confirmAction, errorLine, modal, showOnce } from "./dialogs.js";
import { field, h, replace, toast } from "./dom.js";
import { when } from "./format.js";

/** The event types an endpoint can receive (webhook.test is sent on request). */
const EVENT_TYPES = [
  "api_key.created", "api_key.updated", "api_key.suspended", "api_key.reactivated",
  "api_key.rotated", "api_key.revoked", "api_key.expiring", "api_key.expired",
  "api_key.leaked", "api_key.credits_low", "api_key.credits_exhausted", "api_key.rate_limited",
];

function addDialog() {
  return modal("Add a webhook endpoint", (close) => {
    const url = h("input", { type: "url", required: true, placeholder: "https://billing.example.com/keyward-events", spellcheck: "false", autocomplete: "off" });
    const description = h("input", { type: "text", maxlength: 1000 });
    const boxes = EVENT_TYPES.map((name) => h("input", { type: "checkbox", value: name, checked: name === "api_key.revoked" }));
    const problem = h("div", {});
    return h(
      "form",
      {
        onsubmit: async (event) => {
          event.preventDefault();
          const events = boxes.filter((b) => b.checked).map((b) => b.value);
          try {
            close(await api("POST", "/api/admin/webhooks", { url: url.value.trim(), events, description: description.value.trim() || null }));
          } catch (error) {
            replace(problem, errorLine(error));
          }
        },
      },
      field("URL", url, "https:// to a public address; keyward posts each event there, signed as the Standard Webhooks specification says."),
      field("Description", description),
      h("fieldset", { class: "event-types" }, h("legend", {}, "Events"),
        boxes.map((box) => h("label", {}, box, " ", box.value))),
      problem,
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: () => close() }, "Cancel"),
        h("button", { type: "submit", class: "primary" }, "Add endpoint")),
    );
  });
}

function stateOf(webhook) {
  if (webhook.enabled) return h("span", { class: "badge active" }, "Enabled");
  return h("span", { class: "badge revoked", title: webhook.disabled_reason || "" }, "Disabled");
}

function deliveryLog(webhook, container) {
  async function load() {
    let deliveries;
    try {
      deliveries = await api("GET", `/api/admin/webhooks/${seg(webhook.id)}/deliveries`);
    } catch (error) {
      if (error.status !== 401) replace(container, errorLine(error));
      return;
    }
    const retry = async (delivery) => {
      try {
        await api("POST", `/api/admin/webhooks/${seg(webhook.id)}/deliveries/${delivery.id}/retry`);
        toast("Due again now");
        setTimeout(load, 1500);
      } catch (error) {
        if (error.status !== 401) toast(error.text);
      }
    };
    const rows = deliveries.map((d) => {
      const last = d.attempts[d.attempts.length - 1];
      return h(
        "tr",
        {},
        h("td", {}, when(d.created_at)),
        h("td", {}, h("code", {}, d.event_type)),
        h("td", {}, h("code", { title: d.event_id }, `…${d.event_id.slice(-8)}`)),
        h("td", {}, h("span", { class: `badge ${d.state === "delivered" ? "active" : d.state === "failed" ? "revoked" : "suspended"}` }, d.state)),
        h("td", { class: "num" }, String(d.attempts.length)),
        h("td", {}, last ? `${last.status_code ?? "—"} · ${last.latency_ms} ms` : "—"),
        h("td", { class: "error-cell" }, last?.error ?? ""),
        h("td", {}, h("button", { type: "button", onclick: () => retry(d) }, "Retry")),
      );
    });
    replace(
      container,
      deliveries.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "deliveries" },
          h("caption", {}, `Deliveries to ${webhook.url} (newest first)`),
          h("thead", {}, h("tr", {}, ["Made", "Event", "Id", "State", "Attempts", "Last answer", "Last error", ""].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, rows)))
        : h("p", { class: "muted" }, "No deliveries yet."),
    );
  }
  load();
}

/** The webhooks section of the operator's page. */
export function webhooksSection() {
  const list = h("div", { "aria-live": "polite" });
  const log = h("div", { id: "delivery-log" });
  const act = async (method, path, done, body) => {
    try {
      await api(method, path, body);
      toast(done);
      await load();
    } catch (error) {
      if (error.status !== 401) toast(error.text);
    }
  };
  async function load() {
    let webhooks;
    try {
      webhooks = await api("GET", "/api/admin/webhooks");
    } catch (error) {
      if (error.status !== 401) replace(list, errorLine(error));
      return;
    }
    const rows = webhooks.map((w) => {
      const path = `/api/admin/webhooks/${seg(w.id)}`;
      return h(
        "tr",
        {},
        h("td", {}, h("code", {}, w.url), w.description ? h("div", { class: "muted" }, w.description) : null),
        h("td", {}, w.events.join(", ")),
        h("td", {}, stateOf(w), w.enabled ? null : h("div", { class: "muted" }, w.disabled_reason ?? "")),
        h("td", {}, when(w.last_success_at, "never")),
        h(
          "td",
          { class: "actions" },
          h("button", { type: "button", onclick: () => deliveryLog(w, log) }, "Deliveries"),
          h("button", { type: "button", onclick: () => act("POST", `${path}/test`, "Test event queued") }, "Test"),
          w.enabled
            ? h("button", { type: "button", onclick: () => act("PATCH", path, "Disabled", { enabled: false }) }, "Disable")
            : h("button", { type: "button", onclick: () => act("PATCH", path, "Enabled", { enabled: true }) }, "Enable"),
          h("button", {
            type: "button",
            class: "danger",
            onclick: async () => {
              if (await confirmAction("Delete this endpoint?", `Delete ${w.url} and its delivery log? What it has not received yet is dropped.`, "Delete")) {
                act("DELETE", path, "Deleted");
                replace(log);
              }
            },
          }, "Delete"),
        ),
      );
    });
    replace(
      list,
      webhooks.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "webhooks" },
          h("caption", {}, "Endpoints"),
          h("thead", {}, h("tr", {}, ["URL", "Events", "State", "Last success", ""].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, rows)))
        : h("p", { class: "muted" }, "No endpoints yet."),
    );
  }
  load();
  return h(
    "section",
    { class: "card", "aria-label": "Webhooks" },
    h("h2", {}, "Webhooks"),
    h("p", { class: "muted" }, "keyward posts each key event to these endpoints, signed (Standard Webhooks), retried for about three days."),
    h("button", {
      type: "button",
      class: "primary",
      onclick: async () => {
        const created = await addDialog();
        if (!created) return;
        await showOnce("Endpoint added", created.secret, created.webhook.url, {
          thing: "signing secret",
          label: "Signing secret (whsec_…)",
          warning: "It will not be shown again. Give it to the endpoint's owner: it verifies every delivery.",
        });
        load();
      },
    }, "Add endpoint"),
    list,
    log,
  );
}

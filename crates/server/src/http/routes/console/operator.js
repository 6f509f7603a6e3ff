// The operator's view (a service credential, or the service token): any user's keys
// through the admin routes, the audit feed across users, and verifications per hour;
// webhook endpoints with their delivery log; each part only where the credential
// holds its scope (the server refuses the rest).

import { api, seg } from "./api.js";
import { usageSection } from "./chart.js";
import { errorLine, modal, revokeButton } from "./dialogs.js";
import { field, h, replace, toast } from "./dom.js";
import { describeEvent, masked, refillText, when } from "./format.js";
import { keyTable } from "./keys.js";
import { webhooksSection } from "./webhooks.js";

/** The fields of credits, their refill and a rate limit, as keys and users both have them. */
function limitFields(limits) {
  const remaining = h("input", { type: "number", min: 0, step: 1, inputmode: "numeric", value: limits.remaining ?? "" });
  const refillAmount = h("input", { type: "number", min: 1, step: 1, inputmode: "numeric", value: limits.refill?.amount ?? "" });
  const interval = h("select", {}, ["", "minute", "hour", "day", "week", "month"].map((value) =>
    h("option", { value, selected: value === (limits.refill?.interval ?? "") }, value || "Never")));
  const dayOfMonth = h("input", { type: "number", min: 1, max: 31, inputmode: "numeric", value: limits.refill?.day_of_month ?? "" });
  const requests = h("input", { type: "number", min: 1, max: 1_000_000, inputmode: "numeric", value: limits.rate_limit?.requests ?? "" });
  const per = h("input", { type: "number", min: 1, max: 86_400, inputmode: "numeric", value: limits.rate_limit?.per_seconds ?? "" });
  return {
    fields: [
      field("Usage credits left", remaining, "Empty: unlimited"),
      h("fieldset", {}, h("legend", {}, "Credits renew (UTC)"),
        field("Every", interval), field("Back to", refillAmount), field("Day of month", dayOfMonth, "Monthly only; empty: the 1st")),
      h("fieldset", {}, h("legend", {}, "Rate limit (empty: none)"),
        field("Requests", requests), field("Per seconds", per)),
    ],
    value() {
      const refill = interval.value === ""
        ? null
        : { amount: Number(refillAmount.value), interval: interval.value };
      if (refill && dayOfMonth.value !== "") refill.day_of_month = Number(dayOfMonth.value);
      return {
        // Credits that renew need none given: they start at the refill's amount.
        remaining: remaining.value === "" ? (refill ? refill.amount : null) : Number(remaining.value),
        refill,
        rate_limit: requests.value === "" && per.value === ""
          ? null
          : { requests: Number(requests.value), per_seconds: Number(per.value) },
      };
    },
  };
}

/** A form of `fields` that sends `submit()`'s request and closes with its answer. */
function limitsForm(close, fields, submit) {
  const problem = h("div", {});
  return h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          close(await submit());
        } catch (error) {
          replace(problem, errorLine(error));
        }
      },
    },
    fields,
    problem,
    h("div", { class: "actions" }, h("button", { type: "button", onclick: () => close() }, "Cancel"), h("button", { type: "submit", class: "primary" }, "Save")),
  );
}

function limitsDialog(key) {
  return modal(`Credits and rate limit of “${key.name}”`, (close) => {
    const limits = limitFields(key);
    return limitsForm(close, limits.fields, () => api("PATCH", `/api/admin/api-keys/${seg(key.id)}`, limits.value()));
  });
}

function userLimitsDialog(user, current) {
  return modal(`Limits all of ${user}'s keys share`, (close) => {
    const limits = limitFields({ ...current, ...(current.credits ?? {}) });
    return limitsForm(close, [h("p", {}, "Checked after each key's own. These replace the deployment's defaults for this user: a limit left empty is none."), limits.fields], async () => {
      let { remaining, refill, rate_limit } = limits.value();
      if (current.credits && remaining === current.credits.remaining) {
        // Credits left as shown: keep what is left now (used since the page loaded), not
        // what was left then.
        const fresh = await api("GET", `/api/admin/users/${seg(user)}/limits`);
        remaining = fresh.credits?.remaining ?? remaining;
      }
      const body = {};
      if (rate_limit) body.rate_limit = rate_limit;
      if (remaining !== null) body.credits = refill ? { remaining, refill } : { remaining };
      return api("PUT", `/api/admin/users/${seg(user)}/limits`, body);
    });
  });
}

/** What all of a user's keys share, with the buttons that change it. */
function userLimitsPanel(user, limits, canChange, reload) {
  const credits = limits.credits;
  const rows = [
    ["From", limits.source === "user" ? "Set for this user" : "The deployment's defaults"],
    ["Rate limit", limits.rate_limit ? `${limits.rate_limit.requests} per ${limits.rate_limit.per_seconds} s, all keys together` : "None"],
    ["Credits left", credits ? credits.remaining : "Unlimited"],
    ["Credits renew", credits?.refill ? `${refillText(credits.refill)}; next ${when(credits.next_refill_at)}` : "Never"],
  ];
  const buttons = [];
  if (canChange) {
    buttons.push(h("button", { type: "button", onclick: async () => (await userLimitsDialog(user, limits)) && (toast("Saved"), reload()) }, "Shared limits"));
    if (limits.source === "user") {
      buttons.push(h("button", {
        type: "button",
        onclick: async () => {
          try {
            await api("DELETE", `/api/admin/users/${seg(user)}/limits`);
            toast("Back to the defaults");
            reload();
          } catch (error) {
            if (error.status !== 401) toast(error.text);
          }
        },
      }, "Back to defaults"));
    }
  }
  return h("div", { "aria-label": `Limits of ${user}`, role: "region" },
    h("h3", {}, `Shared by all of ${user}'s keys`),
    h("dl", { class: "details" }, rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)])),
    buttons.length ? h("div", { class: "actions" }, buttons) : null);
}

function userKeys(scopes) {
  const canChange = scopes.has("keys.write");
  const canSeeUsage = scopes.has("usage.read");
  const input = h("input", { type: "search", required: true, autocomplete: "off", spellcheck: "false" });
  const results = h("div", { "aria-live": "polite" });
  let user = "";
  const act = async (method, path, done) => {
    try {
      await api(method, path);
      toast(done);
      await load();
    } catch (error) {
      if (error.status !== 401) toast(error.text);
    }
  };
  const actions = (key) => {
    if (key.status === "REVOKED" || !canChange) return h("span", { class: "muted" }, "—");
    const buttons = [];
    if (key.status === "ACTIVE") buttons.push(h("button", { type: "button", onclick: () => act("POST", `/api/admin/api-keys/${seg(key.id)}/suspend`, "Suspended") }, "Suspend"));
    if (key.status === "SUSPENDED") buttons.push(h("button", { type: "button", onclick: () => act("POST", `/api/admin/api-keys/${seg(key.id)}/reactivate`, "Reactivated") }, "Reactivate"));
    buttons.push(
      h("button", { type: "button", onclick: async () => (await limitsDialog(key)) && (toast("Saved"), load()) }, "Limits"),
      revokeButton(`“${key.name}” (${masked(key)}) of ${key.user_id}`, () =>
        act("DELETE", `/api/admin/api-keys/${seg(key.id)}`, "Revoked"),
      ),
    );
    return buttons;
  };
  async function load() {
    try {
      const [keys, limits] = await Promise.all([
        api("GET", `/api/admin/users/${seg(user)}/api-keys`),
        api("GET", `/api/admin/users/${seg(user)}/limits`),
      ]);
      replace(
        results,
        userLimitsPanel(user, limits, canChange, load),
        keys.length
          ? [
            keyTable(keys, { caption: `Keys of ${user}`, actions }),
            canSeeUsage
              ? usageSection(`/api/admin/usage?user_id=${encodeURIComponent(user)}`, `Verifications of ${user}'s keys`)
              : null,
          ]
          : h("p", { class: "muted" }, `${user} has no keys.`),
      );
    } catch (error) {
      if (error.status !== 401) replace(results, errorLine(error));
    }
  }
  return h(
    "section",
    { class: "card", "aria-label": "A user's keys" },
    h("h2", {}, "A user's keys"),
    h(
      "form",
      {
        class: "inline",
        role: "search",
        onsubmit: (event) => {
          event.preventDefault();
          user = input.value.trim();
          if (user) load();
        },
      },
      field("User id", input),
      h("button", { type: "submit", class: "primary" }, "Find keys"),
    ),
    results,
  );
}

const ACTIONS = ["", "create", "edit", "suspend", "reactivate", "revoke", "rotate", "set_permissions", "set_rate_limit", "import", "delete_user", "set_user_limits", "delete_user_limits", "disable_webhook"];

function auditFeed() {
  const user = h("input", { type: "search", autocomplete: "off", spellcheck: "false" });
  const since = h("input", { type: "date" });
  const action = h("select", {}, ACTIONS.map((a) => h("option", { value: a }, a ? a.replace(/_/g, " ") : "Any")));
  const list = h("ol", { class: "events" });
  const status = h("p", { class: "muted" });
  const more = h("button", { type: "button", hidden: true, onclick: () => page() }, "Load more");
  let after = null;
  let query = "";
  async function page() {
    try {
      const answer = await api("GET", `/api/admin/events?limit=100${query}${after ? `&after=${after}` : ""}`);
      const shown = answer.events.filter((e) => !action.value || e.action === action.value);
      for (const event of shown) {
        const { action: what, who, changes } = describeEvent(event);
        list.append(
          h(
            "li",
            {},
            h("time", { datetime: event.at }, when(event.at)), " · ",
            h("span", { class: "event-action" }, what), " of ", h("strong", {}, event.user_id),
            event.key_id ? [" key ", h("code", { title: event.key_id }, `…${event.key_id.slice(-8)}`)] : null,
            " by ", who,
            changes.length ? h("ul", { class: "changes" }, changes.map((c) => h("li", {}, c))) : null,
          ),
        );
      }
      after = answer.next_after;
      more.hidden = !after;
      status.textContent = list.children.length ? `${list.children.length} events, oldest first` : "No events match.";
    } catch (error) {
      if (error.status !== 401) replace(status, errorLine(error));
    }
  }
  const run = (event) => {
    event?.preventDefault();
    query = "";
    if (user.value.trim()) query += `&user_id=${encodeURIComponent(user.value.trim())}`;
    if (since.value) query += `&since=${encodeURIComponent(new Date(`${since.value}T00:00:00`).toISOString())}`;
    after = null;
    list.replaceChildren();
    page();
  };
  run();
  return h(
    "section",
    { class: "card", "aria-label": "Audit feed" },
    h("h2", {}, "Audit feed"),
    h(
      "form",
      { class: "inline", onsubmit: run },
      field("User id", user),
      field("Since", since),
      field("Action", action),
      h("button", { type: "submit" }, "Filter"),
    ),
    status,
    list,
    more,
  );
}

/** The parts of the page, each with the scope it needs. */
const PARTS = [
  ["usage.read", () => usageSection("/api/admin/usage", "Verifications of every key")],
  ["keys.read", (scopes) => userKeys(scopes)],
  ["audit.read", () => auditFeed()],
  ["webhooks.manage", () => webhooksSection()],
];

/** The operator's page: the parts `scopes` (the secret's, from /api/admin/whoami) allow. */
export function operatorView(main, scopes) {
  const shown = PARTS.filter(([scope]) => scopes.has(scope)).map(([, part]) => part(scopes));
  const missing = PARTS.map(([scope]) => scope).filter((scope) => !scopes.has(scope));
  replace(
    main,
    h("h1", {}, "Operator"),
    missing.length
      ? h("p", { class: "muted", id: "scopes" }, `This credential holds ${[...scopes].join(", ") || "no scope"}; the parts that need ${missing.join(", ")} are not shown.`)
      : null,
    ...shown,
    shown.length ? null : h("p", {}, "Nothing here needs only these scopes."),
  );
}

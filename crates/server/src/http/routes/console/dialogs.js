// Modal dialogs on the native <dialog> element: focus moves in and back, Escape
// cancels, and the rest of the page is inert while one is open.

import { h, field, toast } from "./dom.js";

/** Opens a modal built by `content(close)`; resolves with what `close` was given. */
export function modal(title, content, { onCancel } = {}) {
  return new Promise((resolve) => {
    const heading = h("h2", { id: `dlg-${Math.random().toString(36).slice(2)}` }, title);
    const dialog = h("dialog", { "aria-labelledby": heading.id });
    const opener = document.activeElement;
    let result;
    const close = (value) => {
      result = value;
      dialog.close();
    };
    dialog.addEventListener("cancel", (event) => {
      if (onCancel) {
        event.preventDefault();
        onCancel(close);
      }
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(result);
    });
    dialog.append(heading, content(close));
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Asks before something that cannot be undone; resolves to true when confirmed. */
export function confirmAction(title, message, confirmLabel, { danger = true } = {}) {
  return modal(title, (close) =>
    h(
      "div",
      {},
      h("p", {}, message),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", onclick: () => close(false) }, "Cancel"),
        h(
          "button",
          { type: "button", class: danger ? "danger" : "primary", onclick: () => close(true) },
          confirmLabel,
        ),
      ),
    ),
  ).then(Boolean);
}

async function copy(text, field) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard permission: select it for Ctrl+C instead.
    field.focus();
    field.select();
    toast("Selected: press Ctrl+C (⌘C) to copy");
    return;
  }
  toast("Copied to the clipboard");
}

/**
 * A new secret, shown this once; closing it asks first. By default a key's plaintext;
 * `what` names another secret (a webhook's signing secret).
 */
export function showOnce(title, plainText, keyName, what = {}) {
  const {
    thing = "key",
    label = "Your new API key",
    warning = `It will not be shown again: keyward keeps only a hash of “${keyName}”.`,
  } = what;
  const ask = (close) =>
    confirmAction(
      `Close without the ${thing}?`,
      `The ${thing} will not be shown again. Close only when you have copied it somewhere safe.`,
      "Close",
      { danger: false },
    ).then((sure) => sure && close(true));
  return modal(
    title,
    (close) => {
      const output = h("input", {
        type: "text",
        class: "secret",
        readonly: true,
        value: plainText,
        spellcheck: "false",
        autocomplete: "off",
        "data-testid": "plain-text-key",
      });
      return h(
        "div",
        { class: "show-once" },
        h("p", { class: "warning", role: "alert" },
          h("strong", {}, `Copy this ${thing} now. `),
          warning),
        field(label, output),
        h(
          "div",
          { class: "actions" },
          h("button", { type: "button", class: "primary", onclick: () => copy(plainText, output) }, "Copy"),
          h("button", { type: "button", onclick: () => ask(close) }, "Done"),
        ),
      );
    },
    { onCancel: ask },
  );
}

/** The Revoke button: asks, saying `what` is revoked, then calls `revoke`. */
export function revokeButton(what, revoke) {
  return h(
    "button",
    {
      type: "button",
      class: "danger",
      onclick: async () => {
        const message = `Revoke ${what}? It stops working at once. This cannot be undone.`;
        if (await confirmAction("Revoke this key?", message, "Revoke")) revoke();
      },
    },
    "Revoke",
  );
}

/** An error from the API, inside a form or a section. */
export function errorLine(error) {
  return h("p", { class: "error", role: "alert" }, error.text || String(error));
}

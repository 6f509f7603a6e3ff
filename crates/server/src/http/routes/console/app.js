// The console's entry: sign-in, the token's lifetime in this tab, and the routes
// (#/ the key list or the operator page, #/keys/{id} a key).

import { api, jwtClaims, session } from "./api.js";
import { errorLine, modal } from "./dialogs.js";
import { field, h, replace } from "./dom.js";
import { keyView } from "./key.js";
import { keysView } from "./keys.js";
import { operatorView } from "./operator.js";

const main = document.getElementById("main");
const who = document.getElementById("who");
const signOut = document.getElementById("sign-out");

/** Who a token speaks for, as shown to the person: a user id, or the operator. */
function identity(token) {
  const claims = jwtClaims(token);
  return claims ? { key: `user:${claims.sub}`, label: claims.sub } : { key: "operator", label: "the operator (service token or credential)" };
}

/**
 * A token handed over in the address (`/console#token=…`): taken out of the address at
 * once, then kept if the person agrees. A link can be anyone's (sent to have this tab
 * act in someone else's account): it says whose token it holds and asks before
 * signing in, and before switching a tab signed in as someone else, where staying is
 * the default. A new token for the identity the tab already has is taken as it is.
 */
async function takeTokenFromAddress() {
  const match = /^#token=(.+)$/.exec(location.hash);
  if (!match) return;
  history.replaceState(null, "", location.pathname + location.search);
  let offered;
  try {
    offered = decodeURIComponent(match[1]);
  } catch {
    return;
  }
  const current = session.token;
  if (current === offered) return;
  const [now, then] = [current ? identity(current) : null, identity(offered)];
  if (now?.key !== then.key && !(await confirmSignIn(now?.label, then.label))) return;
  session.token = offered;
}

/**
 * Asks whether to sign in as `offered`, leaving `current` (or no session); resolves
 * to true to go on.
 */
function confirmSignIn(current, offered) {
  const question = current
    ? [
        h("p", { role: "alert" },
          "The link you opened holds a token for ", h("strong", {}, offered),
          ". This tab is signed in as ", h("strong", {}, current), "."),
        h("p", {}, `Switch only if you meant to act as ${offered}: whatever you do next would be done in that account.`),
      ]
    : [
        h("p", { role: "alert" }, "The link you opened signs this tab in as ", h("strong", {}, offered), "."),
        h("p", {}, `Go on only if you meant to act as ${offered}: whatever you do next would be done in that account.`),
      ];
  // Signed in already, staying comes first (and is what Enter does).
  const stay = current
    ? h("button", { type: "button", class: "primary", onclick: () => close(false) }, `Stay signed in as ${current}`)
    : h("button", { type: "button", onclick: () => close(false) }, "Cancel");
  const go = h("button", { type: "button", class: current ? "" : "primary", onclick: () => close(true) }, `Sign in as ${offered}`);
  let close;
  return modal(`Sign in as ${offered}?`, (closeWith) => {
    close = closeWith;
    return h("div", {}, ...question, h("div", { class: "actions" }, ...(current ? [stay, go] : [go, stay])));
  }).then(Boolean);
}

function signInView(message) {
  who.textContent = "";
  signOut.hidden = true;
  document.title = "Sign in · keyward console";
  const token = h("textarea", { rows: 4, required: true, spellcheck: "false", autocomplete: "off", class: "mono" });
  const problem = h("div", {}, message ? errorLine(message) : null);
  replace(
    main,
    h(
      "form",
      {
        class: "card signin",
        "aria-labelledby": "signin-title",
        onsubmit: async (event) => {
          event.preventDefault();
          const value = token.value.trim();
          if (!value) {
            replace(problem, errorLine("Paste a token to sign in"));
            return;
          }
          session.token = value;
          route();
        },
      },
      h("h1", { id: "signin-title" }, "Sign in"),
      h("p", {}, "Paste your token: a JWT from your platform to manage your own API keys, or a service credential (or the service token) for the operator view. It stays in this tab only."),
      field("Token", token, "Or open a link from `keyward token --user NAME --console`."),
      problem,
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Sign in")),
    ),
  );
  token.focus();
}

session.onExpired = (error) => {
  signInView(`${error.message}${error.detail ? `: ${error.detail}` : ""}. Sign in again.`);
};

signOut.addEventListener("click", () => {
  session.token = null;
  location.hash = "";
  signInView();
  replace(document.getElementById("toast"), "Signed out");
});

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function route() {
  const token = session.token;
  if (!token) {
    signInView();
    return;
  }
  const claims = jwtClaims(token);
  signOut.hidden = false;
  if (claims) {
    who.textContent = `Signed in as ${claims.sub}`;
    document.title = "API keys · keyward console";
    const key = /^#\/keys\/([0-9a-f-]{36})$/.exec(location.hash);
    if (key) await keyView(main, key[1], navigate);
    else await keysView(main);
  } else {
    // A service's secret: who it is and what it may do, before showing anything.
    let me;
    try {
      me = await api("GET", "/api/admin/whoami");
    } catch (error) {
      if (error.status !== 401) replace(main, errorLine(error));
      return;
    }
    who.textContent = me.type === "credential" ? `Operator (credential ${me.id})` : "Operator (service token)";
    document.title = "Operator · keyward console";
    operatorView(main, new Set(me.scopes));
  }
  main.focus({ preventScroll: true });
}

// A console link opened in a tab already on the console changes only the fragment.
window.addEventListener("hashchange", async () => {
  if (/^#token=/.test(location.hash)) await takeTokenFromAddress();
  route();
});
await takeTokenFromAddress();
route();

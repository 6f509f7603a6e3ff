// Usage charts drawn as SVG by hand: verifications per hour (48 h) or per day (30
// days), VALID answers and refusals stacked. A failed fetch shows "No usage data".

import { api } from "./api.js";
import { h, s, replace } from "./dom.js";

const SPANS = {
  hour: { label: "48 hours", title: "per hour, last 48 hours" },
  day: { label: "30 days", title: "per day, last 30 days" },
};

/** Buckets `{start, valid, refused}` from a usage route, oldest first. */
export async function fetchUsage(path, granularity) {
  const glue = path.includes("?") ? "&" : "?";
  const answer = await api("GET", `${path}${glue}granularity=${granularity}`);
  return Array.isArray(answer?.buckets) ? answer.buckets : [];
}

const total = (buckets, field) => buckets.reduce((sum, b) => sum + (Number(b[field]) || 0), 0);

function bucketLabel(start, granularity) {
  const date = new Date(start);
  return granularity === "hour"
    ? date.toLocaleString(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

/** The bar chart of `buckets`. */
export function barChart(buckets, granularity) {
  const width = 640;
  const height = 160;
  const top = 4;
  const bottom = 2;
  const plot = height - top - bottom;
  const max = Math.max(1, ...buckets.map((b) => (b.valid || 0) + (b.refused || 0)));
  const step = width / Math.max(1, buckets.length);
  const bar = Math.max(1, step * 0.75);
  const valid = total(buckets, "valid");
  const refused = total(buckets, "refused");
  const summary = `${valid} valid and ${refused} refused verifications, ${SPANS[granularity].title}`;
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart",
    role: "img",
    "aria-label": summary,
    preserveAspectRatio: "none",
  });
  // Text goes beside the SVG, in HTML: the SVG stretches to the width, text would too.
  svg.append(
    s("line", { x1: 0, x2: width, y1: top + plot, y2: top + plot, class: "axis" }),
    s("line", { x1: 0, x2: width, y1: top, y2: top, class: "grid" }),
  );
  buckets.forEach((b, i) => {
    const x = i * step + (step - bar) / 2;
    const vh = ((b.valid || 0) / max) * plot;
    const rh = ((b.refused || 0) / max) * plot;
    const group = s(
      "g",
      {},
      s("title", {}, `${bucketLabel(b.start, granularity)}: ${b.valid || 0} valid, ${b.refused || 0} refused`),
      s("rect", { x, width: bar, y: top + plot - vh, height: vh, class: "valid" }),
      s("rect", { x, width: bar, y: top + plot - vh - rh, height: rh, class: "refused" }),
    );
    svg.append(group);
  });
  const scale = h("div", { class: "chart-scale", "aria-hidden": "true" }, `${max}`);
  const axis = h(
    "div",
    { class: "chart-axis", "aria-hidden": "true" },
    h("span", {}, buckets.length ? bucketLabel(buckets[0].start, granularity) : ""),
    h("span", {}, buckets.length ? bucketLabel(buckets[buckets.length - 1].start, granularity) : ""),
  );
  const legend = h(
    "p",
    { class: "legend" },
    h("span", { class: "swatch valid" }), ` VALID ${valid}`,
    h("span", { class: "swatch refused" }), ` refused ${refused}`,
  );
  return h("figure", { class: "usage" }, scale, svg, axis, legend);
}

/** A section with a usage chart of `path` and a 48 h / 30 days switch. */
export function usageSection(path, heading = "Usage") {
  const body = h("div", { class: "chart-body" }, h("p", { class: "muted" }, "Loading usage…"));
  const buttons = {};
  const show = async (granularity) => {
    for (const [name, button] of Object.entries(buttons)) {
      button.setAttribute("aria-pressed", String(name === granularity));
    }
    try {
      const buckets = await fetchUsage(path, granularity);
      replace(body, buckets.length ? barChart(buckets, granularity) : h("p", { class: "muted" }, "No usage data"));
    } catch (error) {
      if (error.status === 401) return;
      replace(body, h("p", { class: "muted" }, "No usage data"));
    }
  };
  for (const granularity of Object.keys(SPANS)) {
    buttons[granularity] = h(
      "button",
      { type: "button", class: "toggle", "aria-pressed": "false", onclick: () => show(granularity) },
      SPANS[granularity].label,
    );
  }
  const section = h(
    "section",
    { class: "card", "aria-label": heading },
    h("div", { class: "row" }, h("h2", {}, heading), h("div", { class: "toggles", role: "group", "aria-label": "Period" }, Object.values(buttons))),
    body,
  );
  show("hour");
  return section;
}

/** A small line of the last 48 hours' verifications, for a list. */
export function sparkline(path) {
  const holder = h("span", { class: "spark" }, "…");
  fetchUsage(path, "hour").then(
    (buckets) => {
      if (!buckets.length) {
        replace(holder, h("span", { class: "muted" }, "No usage data"));
        return;
      }
      const counts = buckets.map((b) => (b.valid || 0) + (b.refused || 0));
      const max = Math.max(1, ...counts);
      const w = 96;
      const ht = 22;
      const points = counts
        .map((c, i) => `${((i / Math.max(1, counts.length - 1)) * w).toFixed(1)},${(ht - 2 - (c / max) * (ht - 4)).toFixed(1)}`)
        .join(" ");
      const sum = counts.reduce((a, b) => a + b, 0);
      replace(
        holder,
        s("svg", { viewBox: `0 0 ${w} ${ht}`, class: "sparkline", role: "img", "aria-label": `${sum} verification${sum === 1 ? "" : "s"} in 48 hours` },
          s("polyline", { points, class: "line" })),
      );
    },
    () => replace(holder, h("span", { class: "muted" }, "No usage data")),
  );
  return holder;
}

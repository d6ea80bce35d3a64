// Usage: tokens per day by model or assistant, and the threads and runs that used the most. Spend appears here when
// the server reports cost (`cost_available`); until then the figures are tokens only.

import { get, listAll } from "./api.js";
import { field, fmtNum, h, svg, table } from "./dom.js";

const COLORS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#db2777"];

export async function usagePage(page, params) {
  const days = Number(params.get("days")) || 30;
  const by = params.get("by") === "assistant" ? "assistant" : "model";
  const [data, assistants] = await Promise.all([get("/console/usage", { days }), by === "assistant" ? listAll("/assistants", {}, 500) : []]);
  const assistantNames = new Map(assistants.map((a) => [a.id, a.name ? `${a.name} (${a.id})` : a.id]));
  const daysSel = h("select", { name: "days" }, [7, 30, 90, 365].map((d) => h("option", { value: d, selected: d === days }, `${d} days`)));
  const bySel = h("select", { name: "by" }, ["model", "assistant"].map((b) => h("option", { value: b, selected: b === by }, b)));
  const form = h("form", { class: "filters", "aria-label": "Usage range" }, field("Range", daysSel), field("Group by", bySel), h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/usage?days=${daysSel.value}&by=${bySel.value}`;
  });
  const key = (b) => (by === "model" ? b.model || "(unknown)" : assistantNames.get(b.assistant_id) || b.assistant_id);
  const groups = new Map();
  const perDay = new Map();
  for (const b of data.buckets) {
    const g = key(b);
    const t = groups.get(g) || { runs: 0, prompt: 0, completion: 0, total: 0 };
    t.runs += b.runs;
    t.prompt += b.prompt_tokens;
    t.completion += b.completion_tokens;
    t.total += b.total_tokens;
    groups.set(g, t);
    const d = perDay.get(b.day) || new Map();
    d.set(g, (d.get(g) || 0) + b.total_tokens);
    perDay.set(b.day, d);
  }
  const names = [...groups.keys()].sort((a, b) => groups.get(b).total - groups.get(a).total);
  const color = (g) => COLORS[names.indexOf(g) % COLORS.length];
  const cost = data.cost_available ? "Spend" : "Spend (not reported yet)";
  page.append(
    h("h1", {}, "Usage"),
    form,
    data.cost_available ? null : h("p", { class: "hint" }, "This server does not report cost yet: figures are run tokens."),
    h("h2", {}, `Tokens per day by ${by}`),
    chart(data.start, data.end, perDay, names, color),
    h("ul", { class: "legend", "aria-label": "Legend" }, names.map((g) => h("li", {}, h("span", { class: "swatch", style: null, "data-color": color(g) }), g))),
    names.length
      ? table(
          [by === "model" ? "Model" : "Assistant", "Runs", "Prompt tokens", "Completion tokens", "Total tokens", cost],
          names.map((g) => {
            const t = groups.get(g);
            return h("tr", {}, h("td", {}, g), h("td", { class: "num" }, fmtNum(t.runs)), h("td", { class: "num" }, fmtNum(t.prompt)), h("td", { class: "num" }, fmtNum(t.completion)), h("td", { class: "num" }, fmtNum(t.total)), h("td", { class: "num" }, "—"));
          }),
        )
      : h("p", {}, "No runs in this range."),
    h("h2", {}, "Threads that used the most"),
    data.top_threads.length
      ? table(
          ["Thread", "Runs", "Total tokens", cost],
          data.top_threads.map((t) => h("tr", {}, h("td", {}, h("a", { href: `#/threads/${t.thread_id}` }, t.thread_id)), h("td", { class: "num" }, fmtNum(t.runs)), h("td", { class: "num" }, fmtNum(t.usage.total_tokens)), h("td", { class: "num" }, t.cost ?? "—"))),
        )
      : h("p", {}, "None."),
    h("h2", {}, "Runs that used the most"),
    data.top_runs.length
      ? table(
          ["Run", "Model", "Status", "Total tokens", cost],
          data.top_runs.map((r) => h("tr", {}, h("td", {}, h("a", { href: `#/threads/${r.thread_id}/runs/${r.id}` }, r.id)), h("td", {}, r.model), h("td", {}, r.status), h("td", { class: "num" }, fmtNum(r.usage.total_tokens)), h("td", { class: "num" }, r.cost ?? "—"))),
        )
      : h("p", {}, "None."),
  );
  // Inline styles are blocked by the page's CSP; colours are set through the DOM instead.
  for (const el of page.querySelectorAll(".swatch")) el.style.background = el.dataset.color;
}

function chart(start, end, perDay, names, color) {
  const days = [];
  for (let d = start; d < end; d += 86400) days.push(d);
  const totals = days.map((d) => [...(perDay.get(d) || new Map()).values()].reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...totals);
  const W = 720;
  const H = 220;
  const pad = 40;
  const bw = (W - pad) / days.length;
  const bars = [];
  days.forEach((d, i) => {
    let y = H - 20;
    for (const g of names) {
      const v = (perDay.get(d) || new Map()).get(g) || 0;
      if (!v) continue;
      const hgt = ((H - 40) * v) / max;
      y -= hgt;
      bars.push(svg("rect", { x: pad + i * bw + 1, y, width: Math.max(1, bw - 2), height: hgt, fill: color(g) }, svg("title", {}, `${new Date(d * 1000).toISOString().slice(0, 10)} ${g}: ${v} tokens`)));
    }
  });
  const labels = [0, Math.floor(days.length / 2), days.length - 1].map((i, j) =>
    svg("text", { x: pad + (i + (j === 2 ? 1 : 0)) * bw, y: H - 4, "font-size": 11, "text-anchor": ["start", "middle", "end"][j] }, new Date(days[i] * 1000).toISOString().slice(5, 10)),
  );
  const total = totals.reduce((a, b) => a + b, 0);
  return svg(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": `Tokens per day: ${total} tokens in ${days.length} days, at most ${max} in a day` },
    svg("line", { x1: pad, y1: H - 20, x2: W, y2: H - 20, stroke: "#888" }),
    svg("text", { x: 0, y: 14, "font-size": 11 }, fmtNum(max)),
    bars,
    labels,
  );
}

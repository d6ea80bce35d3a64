// Usage and cost: spend (USD) and tokens per day by model, assistant or project, and the threads and runs that cost
// the most. Figures come from the server's usage records, priced as /v1/organization/costs prices them.

import { get, listAll, setProject } from "./api.js";
import { session } from "./app.js";
import { append, field, fmtNum, fmtUSD, h, svg, table } from "./dom.js";

const COLORS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#db2777"];
const BY = ["model", "assistant", "project"];
const TOKEN_KINDS = new Set(["completion", "embedding"]);

function projectNames() {
  const info = session.info || {};
  const list = [...(info.projects || []), ...(info.project ? [info.project] : [])];
  return new Map(list.map((p) => [p.id, p.name ? `${p.name} (${p.id})` : p.id]));
}

export async function usagePage(page, params) {
  const days = Number(params.get("days")) || 30;
  const by = BY.includes(params.get("by")) ? params.get("by") : "model";
  const canSeeAll = Array.isArray(session.info && session.info.projects);
  const scope = canSeeAll && params.get("scope") === "all" ? "all" : "project";
  const [data, assistants] = await Promise.all([
    get("/console/usage", { days, scope }),
    by === "assistant" ? listAll("/assistants", {}, 500) : [],
  ]);
  const assistantNames = new Map(assistants.map((a) => [a.id, a.name ? `${a.name} (${a.id})` : a.id]));
  const projects = projectNames();
  const daysSel = h("select", { name: "days" }, [7, 30, 90, 365].map((d) => h("option", { value: d, selected: d === days }, `${d} days`)));
  const bySel = h("select", { name: "by" }, BY.map((b) => h("option", { value: b, selected: b === by }, b)));
  const scopeSel = canSeeAll
    ? h("select", { name: "scope" }, [["project", "This project"], ["all", "All projects"]].map(([v, label]) => h("option", { value: v, selected: v === scope }, label)))
    : null;
  const form = h(
    "form",
    { class: "filters", "aria-label": "Usage range" },
    field("Range", daysSel),
    field("Group by", bySel),
    scopeSel ? field("Scope", scopeSel) : null,
    h("button", { type: "submit" }, "Show"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/usage?days=${daysSel.value}&by=${bySel.value}${scopeSel && scopeSel.value === "all" ? "&scope=all" : ""}`;
  });
  const key = (b) => {
    if (by === "project") return projects.get(b.project_id) || b.project_id;
    if (by === "model") return b.kind === "completion" ? b.model || "(unknown model)" : b.line_item;
    if (b.assistant_id) return assistantNames.get(b.assistant_id) || b.assistant_id;
    return b.kind === "completion" ? "(no assistant: Responses API)" : `(no assistant: ${b.line_item})`;
  };
  const groups = new Map();
  const spendPerDay = new Map();
  const tokensPerDay = new Map();
  const add = (m, day, g, v) => {
    const d = m.get(day) || new Map();
    d.set(g, (d.get(g) || 0) + v);
    m.set(day, d);
  };
  let totalCost = 0;
  let totalTokens = 0;
  for (const b of data.buckets) {
    const g = key(b);
    const t = groups.get(g) || { prompt: 0, cached: 0, completion: 0, total: 0, cost: 0 };
    t.prompt += b.prompt_tokens;
    t.cached += b.cached_tokens;
    t.completion += b.completion_tokens;
    t.total += b.total_tokens;
    t.cost += b.cost;
    groups.set(g, t);
    add(spendPerDay, b.day, g, b.cost);
    if (TOKEN_KINDS.has(b.kind)) add(tokensPerDay, b.day, g, b.total_tokens);
    totalCost += b.cost;
    totalTokens += b.total_tokens;
  }
  const names = [...groups.keys()].sort((a, b) => groups.get(b).cost - groups.get(a).cost || groups.get(b).total - groups.get(a).total);
  const color = (g) => COLORS[names.indexOf(g) % COLORS.length];
  const legend = () => h("ul", { class: "legend", "aria-label": "Legend" }, names.map((g) => h("li", {}, h("span", { class: "swatch", "data-color": color(g) }), g)));
  const tokenNames = names.filter((g) => [...tokensPerDay.values()].some((d) => d.get(g)));
  append(page, [
    h("h1", {}, "Usage and cost"),
    h("p", { class: "hint" }, scope === "all" ? "All projects." : `Project: ${projects.get(session.info && session.info.project && session.info.project.id) || "this key's"}.`),
    form,
    h(
      "dl",
      { class: "facts totals" },
      h("dt", {}, "Spend"),
      h("dd", { class: "total-spend" }, fmtUSD(totalCost)),
      h("dt", {}, "Tokens"),
      h("dd", { class: "total-tokens" }, fmtNum(totalTokens)),
      h("dt", {}, "Period"),
      h("dd", {}, `${day(data.start)} to ${day(data.end - 86400)} (UTC)`),
    ),
    data.unpriced_models.length
      ? h("p", { class: "warn", role: "note" }, `No price for ${data.unpriced_models.join(", ")}: counted at $0 (add it to the price file, THREADLINE_PRICES_FILE).`)
      : null,
    h("h2", {}, `Spend per day by ${by} (USD)`),
    chart(data.start, data.end, spendPerDay, names, color, { label: "Spend", unit: fmtUSD, axis: fmtUSD }),
    legend(),
    h("h2", {}, `Tokens per day by ${by}`),
    chart(data.start, data.end, tokensPerDay, tokenNames, color, { label: "Tokens", unit: (v) => `${fmtNum(v)} tokens`, axis: fmtNum }),
    names.length
      ? table(
          [by[0].toUpperCase() + by.slice(1), "Spend", "Total tokens", "Prompt tokens", "Cached", "Completion tokens"],
          names.map((g) => {
            const t = groups.get(g);
            return h(
              "tr",
              { "data-group": g },
              h("td", {}, g),
              money(t.cost),
              h("td", { class: "num tokens" }, fmtNum(t.total)),
              h("td", { class: "num" }, fmtNum(t.prompt)),
              h("td", { class: "num" }, fmtNum(t.cached)),
              h("td", { class: "num" }, fmtNum(t.completion)),
            );
          }),
          "Totals per group",
        )
      : h("p", {}, "No usage in this range."),
    h("h2", {}, "Threads that cost the most"),
    data.top_threads.length
      ? table(
          ["Thread", "Spend", "Total tokens", "Model calls", "Assistant"],
          data.top_threads.map((t) =>
            h(
              "tr",
              {},
              h("td", {}, objectLink(`#/threads/${t.thread_id}`, t.thread_id, t.project_id, projects)),
              money(t.cost),
              h("td", { class: "num tokens" }, fmtNum(t.usage.total_tokens)),
              h("td", { class: "num" }, fmtNum(t.requests)),
              h("td", {}, t.assistant_id || "—"),
            ),
          ),
        )
      : h("p", {}, "None."),
    h("h2", {}, "Runs and responses that cost the most"),
    data.top_runs.length
      ? table(
          ["Run or response", "Spend", "Total tokens", "Model calls", "Model", "Status"],
          data.top_runs.map((r) =>
            h(
              "tr",
              {},
              h("td", {}, executionCell(r, projects)),
              money(r.cost),
              h("td", { class: "num tokens" }, fmtNum(r.usage.total_tokens)),
              h("td", { class: "num" }, fmtNum(r.requests)),
              h("td", {}, r.model || "—"),
              h("td", {}, r.status || "deleted"),
            ),
          ),
        )
      : h("p", {}, "None."),
    h("p", { class: "hint" }, "Prices: the server's price file (THREADLINE_PRICES_FILE), else the genai-prices package; tools at the configured prices. The same figures as /v1/organization/costs."),
  ]);
  // Inline styles are blocked by the page's CSP; colours are set through the DOM instead.
  for (const el of page.querySelectorAll(".swatch")) el.style.background = el.dataset.color;
}

// A run links to its timeline; a response (Responses API) is named, with its conversation when it has one.
function executionCell(r, projects) {
  if (r.object !== "response") return objectLink(`#/threads/${r.thread_id}/runs/${r.id}`, r.id, r.project_id, projects);
  return [
    h("span", {}, r.id),
    " ",
    h("small", {}, "response"),
    r.thread_id ? [" in ", objectLink(`#/threads/${r.thread_id}`, `conv_${r.thread_id.replace(/^thread_/, "")}`, r.project_id, projects)] : null,
  ];
}

// A link to an object; one of another project (the all-projects view) switches to that project first.
function objectLink(href, text, projectId, projects) {
  const current = session.info && session.info.project && session.info.project.id;
  if (!projectId || projectId === current) return h("a", { href }, text);
  const a = h("a", { href, title: `In ${projects.get(projectId) || projectId}: opens it there` }, text);
  a.addEventListener("click", () => {
    setProject(projectId);
    session.info = null;
  });
  return [a, " ", h("small", {}, `in ${projects.get(projectId) || projectId}`)];
}

function money(v) {
  return h("td", { class: "num spend", title: `${v} USD` }, fmtUSD(v));
}

function day(ts) {
  return new Date(ts * 1000).toISOString().slice(0, 10);
}

function chart(start, end, perDay, names, color, { label, unit, axis }) {
  const days = [];
  for (let d = start; d < end; d += 86400) days.push(d);
  const totals = days.map((d) => [...(perDay.get(d) || new Map()).values()].reduce((a, b) => a + b, 0));
  const max = Math.max(...totals, 0) || 1;
  const W = 720;
  const H = 220;
  const pad = 64;
  const bw = (W - pad) / days.length;
  const bars = [];
  days.forEach((d, i) => {
    let y = H - 20;
    for (const g of names) {
      const v = (perDay.get(d) || new Map()).get(g) || 0;
      if (!v) continue;
      const hgt = ((H - 40) * v) / max;
      y -= hgt;
      bars.push(svg("rect", { x: pad + i * bw + 1, y, width: Math.max(1, bw - 2), height: hgt, fill: color(g) }, svg("title", {}, `${day(d)} ${g}: ${unit(v)}`)));
    }
  });
  const labels = [0, Math.floor(days.length / 2), days.length - 1].map((i, j) =>
    svg("text", { x: pad + (i + (j === 2 ? 1 : 0)) * bw, y: H - 4, "font-size": 11, "text-anchor": ["start", "middle", "end"][j] }, day(days[i]).slice(5)),
  );
  const total = totals.reduce((a, b) => a + b, 0);
  return svg(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": `${label} per day: ${unit(total)} in ${days.length} days, at most ${unit(Math.max(...totals, 0))} in a day` },
    svg("line", { x1: pad, y1: H - 20, x2: W, y2: H - 20, stroke: "#888" }),
    svg("text", { x: 0, y: 14, "font-size": 11 }, axis(max)),
    bars,
    labels,
  );
}

// Threads: list and search, a thread's messages (paginated) and runs, and a run's timeline.

import { INCLUDE_CONTENT, get, listAll } from "./api.js";
import { append, clear, errorBox, field, fmtNum, fmtTime, fmtUSD, h, jsonView, statusBadge, table } from "./dom.js";
import { messageView, retrievalHref, toolCallView, usageText } from "./render.js";

const PAGE = 50;

export async function threadList(page, params) {
  const q = h("input", { name: "q", value: params.get("q") || "", placeholder: "thread_…" });
  const assistant = h("input", { name: "assistant_id", value: params.get("assistant_id") || "", placeholder: "asst_…" });
  const mkey = h("input", { name: "metadata_key", value: params.get("metadata_key") || "" });
  const mval = h("input", { name: "metadata_value", value: params.get("metadata_value") || "" });
  const after = h("input", { name: "created_after", type: "date", value: params.get("created_after") || "" });
  const before = h("input", { name: "created_before", type: "date", value: params.get("created_before") || "" });
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Search threads" },
    field("Thread id", q),
    field("Assistant id", assistant),
    field("Metadata key", mkey),
    field("Metadata value", mval),
    field("Created from", after),
    field("Created before", before),
    h("button", { type: "submit" }, "Search"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const sp = new URLSearchParams();
    for (const el of [q, assistant, mkey, mval, after, before]) if (el.value) sp.set(el.name, el.value);
    location.hash = `#/threads?${sp}`;
  });
  const body = h("tbody");
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more threads");
  const query = Object.fromEntries([...params.entries()].filter(([, v]) => v));
  let cursor;
  async function load() {
    const result = await get("/console/threads", { ...query, limit: PAGE, after: cursor });
    for (const t of result.data) {
      body.append(
        h(
          "tr",
          {},
          h("td", {}, h("a", { href: `#/threads/${t.id}` }, t.id)),
          h("td", {}, fmtTime(t.created_at)),
          h("td", {}, metadataText(t.metadata)),
          h("td", { class: "num" }, fmtNum(t.message_count)),
          h("td", {}, t.last_run ? [statusBadge(t.last_run.status), " ", h("small", {}, t.last_run.assistant_id)] : "—"),
          h("td", { class: "num" }, fmtNum(t.usage.total_tokens)),
        ),
      );
    }
    cursor = result.last_id;
    more.hidden = !result.has_more;
    return result.data.length;
  }
  more.addEventListener("click", () => load().catch((err) => page.append(errorBox(err))));
  const count = await load();
  page.append(
    h("h1", {}, "Threads"),
    form,
    count || cursor ? table(["Thread", "Created", "Metadata", "Messages", "Last run", "Tokens"], body) : h("p", {}, "No threads match."),
    more,
  );
}

function metadataText(metadata) {
  const entries = Object.entries(metadata || {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(", ") : "—";
}

export async function threadView(page, threadId, params) {
  const order = params.get("order") === "desc" ? "desc" : "asc";
  const thread = await get(`/threads/${threadId}`);
  const runs = await get(`/threads/${threadId}/runs`, { limit: 100 });
  const list = h("div", { class: "messages" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more messages");
  let cursor;
  async function load() {
    const result = await get(`/threads/${threadId}/messages`, { order, limit: PAGE, after: cursor });
    for (const m of result.data) list.append(messageView(m));
    cursor = result.last_id;
    more.hidden = !result.has_more;
  }
  more.addEventListener("click", () => load().catch((err) => page.append(errorBox(err))));
  await load();
  const runRows = runs.data.map((r) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: `#/threads/${threadId}/runs/${r.id}` }, r.id)),
      h("td", {}, statusBadge(r.status)),
      h("td", {}, r.assistant_id),
      h("td", {}, r.model),
      h("td", { class: "num" }, fmtNum(r.usage && r.usage.total_tokens)),
      h("td", {}, fmtTime(r.created_at)),
    ),
  );
  page.append(
    h("h1", {}, "Thread ", h("code", {}, thread.id)),
    h("p", {}, `Created ${fmtTime(thread.created_at)} · metadata: ${metadataText(thread.metadata)}`),
    jsonView(thread),
    h("h2", {}, "Runs"),
    runRows.length ? table(["Run", "Status", "Assistant", "Model", "Tokens", "Created"], runRows) : h("p", {}, "No runs."),
    h("h2", {}, "Messages"),
    h(
      "p",
      {},
      order === "asc"
        ? h("a", { href: `#/threads/${threadId}?order=desc` }, "Show newest first")
        : h("a", { href: `#/threads/${threadId}` }, "Show oldest first"),
    ),
    list,
    more,
  );
}

// The run's life as a timeline: status changes with their times, then each step with its tool calls and tokens.
export async function runView(page, threadId, runId) {
  const [run, steps, cost] = await Promise.all([
    get(`/threads/${threadId}/runs/${runId}`),
    listAll(`/threads/${threadId}/runs/${runId}/steps`, { order: "asc", "include[]": INCLUDE_CONTENT }, 1000),
    get(`/console/threads/${threadId}/runs/${runId}/cost`),
  ]);
  const events = [];
  const mark = (ts, label, extra) => ts && events.push({ ts, label, extra, order: events.length });
  mark(run.created_at, "queued");
  mark(run.started_at, "in_progress");
  for (const step of steps) events.push({ ts: step.created_at, step, order: events.length });
  if (run.status === "requires_action") mark(Math.max(run.started_at || 0, ...steps.map((s) => s.created_at)), "requires_action");
  mark(run.cancelled_at, "cancelled");
  mark(run.failed_at, "failed", run.last_error ? `${run.last_error.code}: ${run.last_error.message}` : null);
  mark(run.expired_at, "expired");
  mark(run.incomplete_at, "incomplete", run.incomplete_details ? `reason: ${run.incomplete_details.reason}` : null);
  mark(run.completed_at, "completed");
  events.sort((a, b) => a.ts - b.ts || a.order - b.order);
  const hasSearch = steps.some((s) => s.step_details.type === "tool_calls" && s.step_details.tool_calls.some((c) => c.type === "file_search"));
  const items = events.map((ev) => {
    if (!ev.step) {
      return h(
        "li",
        { class: "event" },
        h("time", {}, fmtTime(ev.ts)),
        " ",
        h("span", { class: "event-label" }, "status → "),
        statusBadge(ev.label),
        ev.extra ? h("p", { class: ev.label === "failed" ? "error" : "" }, ev.extra) : null,
      );
    }
    const s = ev.step;
    const end = s.completed_at || s.failed_at || s.cancelled_at || s.expired_at;
    const details =
      s.step_details.type === "message_creation"
        ? h("p", {}, "Message ", h("code", {}, s.step_details.message_creation.message_id))
        : s.step_details.tool_calls.map((c) => toolCallView(c, { threadId, runId }));
    return h(
      "li",
      { class: "step", "data-step-type": s.step_details.type },
      h("time", {}, fmtTime(s.created_at)),
      " ",
      h("strong", {}, s.step_details.type === "message_creation" ? "Step: message" : "Step: tool calls"),
      " ",
      statusBadge(s.status),
      end ? h("small", {}, ` ${end - s.created_at} s`) : null,
      h("p", { class: "usage" }, usageText(s.usage), " · cost: ", h("span", { class: "step-cost" }, stepCost(cost, s.id))),
      s.last_error ? errorBox(new Error(`${s.last_error.code}: ${s.last_error.message}`)) : null,
      details,
      jsonView(s),
    );
  });
  append(page, [
    h("h1", {}, "Run ", h("code", {}, run.id)),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Status"),
      h("dd", {}, statusBadge(run.status)),
      h("dt", {}, "Thread"),
      h("dd", {}, h("a", { href: `#/threads/${threadId}` }, threadId)),
      h("dt", {}, "Assistant"),
      h("dd", {}, h("a", { href: `#/assistants/${run.assistant_id}` }, run.assistant_id)),
      h("dt", {}, "Model"),
      h("dd", {}, run.model),
      h("dt", {}, "Usage"),
      h("dd", {}, usageText(run.usage)),
      h("dt", {}, "Cost"),
      h("dd", { class: "run-cost" }, costText(cost)),
      h("dt", {}, "Last error"),
      h("dd", {}, run.last_error ? `${run.last_error.code}: ${run.last_error.message}` : "—"),
      h("dt", {}, "Incomplete details"),
      h("dd", {}, run.incomplete_details ? run.incomplete_details.reason : "—"),
    ),
    hasSearch ? h("p", {}, h("a", { href: retrievalHref(threadId, runId) }, "Retrieval inspector for this run")) : null,
    jsonView(run),
    h("h2", {}, "Timeline"),
    h("ol", { class: "timeline" }, items),
    turnsView(cost),
  ]);
}

function stepCost(cost, stepId) {
  const s = cost.steps[stepId];
  return s && s.cost !== null ? fmtUSD(s.cost) : "—";
}

function costText(cost) {
  const c = cost.cost;
  const parts = [fmtUSD(c.total)];
  if (c.tools) parts.push(` (model calls ${fmtUSD(c.models)}, tools ${fmtUSD(c.tools)}: ${cost.tools.map((t) => `${t.quantity} ${t.line_item}`).join(", ")})`);
  if (!cost.priced) parts.push(` · no price for ${cost.model}: counted at $0`);
  return parts.join("");
}

// What each model call's prompt was made of, and what that cost: the context re-sent every turn is the hidden cost.
function turnsView(cost) {
  if (!cost.turns.length) return null;
  const parts = ["instructions", "history", "retrieved_chunks", "tool_outputs", "run_output"];
  const names = { instructions: "Instructions", history: "History", retrieved_chunks: "Retrieved chunks", tool_outputs: "Tool outputs", run_output: "This run's output" };
  const rows = cost.turns.map((t, i) =>
    h(
      "tr",
      {},
      h("td", {}, String(i + 1)),
      h("td", {}, fmtTime(t.created_at)),
      h("td", { class: "num" }, fmtNum(t.input_tokens)),
      h("td", { class: "num" }, fmtNum(t.output_tokens)),
      parts.map((p) => h("td", { class: "num" }, `${fmtNum(t.prompt_tokens_by_source[p])} · ${fmtUSD(t.cost[p])}`)),
      h("td", { class: "num" }, fmtUSD(t.cost.input + t.cost.output)),
    ),
  );
  return [
    h("h2", {}, "Cost per model call"),
    h("p", { class: "hint" }, "Each call re-sends the thread's context: its prompt tokens by source (estimated) and what they cost at the model's input price."),
    table(["#", "Time", "Prompt tokens", "Completion tokens", ...parts.map((p) => names[p]), "Cost"], rows),
  ];
}

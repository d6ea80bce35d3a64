// The retrieval inspector: every file_search call of a run with its queries and each result's keyword, vector and
// fused scores and chunk text, and which results the answer cited.

import { INCLUDE_CONTENT, get, listAll } from "./api.js";
import { h } from "./dom.js";
import { CITE, resultsTable } from "./render.js";

export async function inspector(page, threadId, runId, params) {
  const [steps, messages] = await Promise.all([
    listAll(`/threads/${threadId}/runs/${runId}/steps`, { order: "asc", "include[]": INCLUDE_CONTENT }, 1000),
    listAll(`/threads/${threadId}/messages`, { run_id: runId, order: "asc" }, 1000),
  ]);
  const cited = new Set();
  for (const m of messages) {
    for (const part of m.content || []) {
      if (part.type !== "text") continue;
      for (const note of part.text.annotations || []) {
        const match = note.type === "file_citation" && CITE.exec(note.text);
        if (match) cited.add(Number(match[1]));
      }
    }
  }
  const highlight = params.has("cite") ? Number(params.get("cite")) : undefined;
  page.append(
    h("h1", {}, "Retrieval inspector"),
    h("p", {}, "Run ", h("a", { href: `#/threads/${threadId}/runs/${runId}` }, runId), " in thread ", h("a", { href: `#/threads/${threadId}` }, threadId)),
    h(
      "p",
      { class: "hint" },
      "Keyword: BM25 rank scaled so the best keyword match is 1. Vector: cosine similarity. Fused: the hybrid score that ranks results. Cited rows are the results the answer's citations point at.",
    ),
  );
  let offset = 0;
  let calls = 0;
  for (const step of steps) {
    if (step.step_details.type !== "tool_calls") continue;
    for (const call of step.step_details.tool_calls) {
      if (call.type !== "file_search") continue;
      calls++;
      const fs = call.file_search || {};
      const results = fs.results || [];
      const ranking = fs.ranking_options || {};
      page.append(
        h(
          "section",
          { class: "search-call", "aria-label": `File search call ${call.id}` },
          h("h2", {}, `Search ${calls}`),
          h("p", {}, "Queries sent by the model: ", (fs.queries || []).map((q) => h("q", {}, q)).flatMap((x, i) => (i ? [", ", x] : [x])), (fs.queries || []).length ? "" : "—"),
          h("p", {}, `Ranker ${ranking.ranker || "—"}, score threshold ${ranking.score_threshold ?? "—"}, ${results.length} result(s).`),
          results.length ? resultsTable(results, { offset, cited, highlight }) : h("p", {}, "No results."),
        ),
      );
      offset += results.length;
    }
  }
  if (!calls) page.append(h("p", {}, "This run made no file_search call."));
  if (highlight !== undefined) {
    page.addEventListener("console:shown", () => {
      const row = page.querySelector(`#result-${highlight}`);
      if (row) {
        const details = row.querySelector("details");
        if (details) details.open = true;
        row.scrollIntoView({ block: "center" });
        row.focus({ preventScroll: true });
      }
    });
  }
}

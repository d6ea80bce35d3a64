// Rendering of messages, tool calls and run steps, shared by the playground and the thread views.

import { fileUrl, get } from "./api.js";
import { fmtNum, fmtScore, fmtTime, h, jsonView, statusBadge } from "./dom.js";

export const CITE = /【(\d+)(?::\d+)?†([^】]*)】/;

export function retrievalHref(threadId, runId, n) {
  const base = `#/threads/${encodeURIComponent(threadId)}/runs/${encodeURIComponent(runId)}/retrieval`;
  return n === undefined ? base : `${base}?cite=${n}`;
}

export function image(fileId, alt) {
  const img = h("img", { alt: alt || `Image ${fileId}`, class: "output-image", "data-file-id": fileId });
  fileUrl(fileId)
    .then((u) => {
      img.src = u;
    })
    .catch(() => {
      img.alt = `Image ${fileId} (could not be loaded)`;
    });
  return img;
}

function download(fileId, label) {
  const a = h("a", { href: "#", class: "file-link", "data-file-id": fileId }, label);
  a.addEventListener("click", async (e) => {
    e.preventDefault();
    const meta = await get(`/files/${encodeURIComponent(fileId)}`).catch(() => null);
    const link = h("a", { href: await fileUrl(fileId), download: (meta && meta.filename) || fileId });
    document.body.append(link);
    link.click();
    link.remove();
  });
  return a;
}

// Text with its annotations: citations link to the retrieval inspector, file paths download the file.
export function annotatedText(text, message) {
  const value = text.value || "";
  const notes = [...(text.annotations || [])].sort((a, b) => a.start_index - b.start_index);
  const out = h("div", { class: "text" });
  let at = 0;
  for (const note of notes) {
    if (note.start_index < at || note.end_index > value.length) continue;
    out.append(value.slice(at, note.start_index));
    const shown = value.slice(note.start_index, note.end_index);
    if (note.type === "file_citation") {
      const m = CITE.exec(shown);
      const n = m ? Number(m[1]) : undefined;
      const label = m ? `[${m[1]}: ${m[2]}]` : shown;
      out.append(
        message.run_id
          ? h(
              "a",
              {
                href: retrievalHref(message.thread_id, message.run_id, n),
                class: "citation",
                title: `Cited chunk from ${note.file_citation.file_id}: open the retrieval inspector`,
              },
              label,
            )
          : h("span", { class: "citation" }, label),
      );
    } else if (note.type === "file_path") {
      out.append(download(note.file_path.file_id, shown));
    } else {
      out.append(shown);
    }
    at = note.end_index;
  }
  out.append(value.slice(at));
  return out;
}

export function messageView(message) {
  const parts = (message.content || []).map((part) => {
    if (part.type === "text") return annotatedText(part.text, message);
    if (part.type === "image_file") return image(part.image_file.file_id, `Image ${part.image_file.file_id}`);
    if (part.type === "image_url") return h("p", {}, "Image URL: ", part.image_url.url);
    if (part.type === "refusal") return h("p", { class: "error" }, part.refusal);
    return jsonView(part, part.type);
  });
  const attachments = (message.attachments || []).map((a) =>
    h("li", {}, download(a.file_id, a.file_id), ` (${(a.tools || []).map((t) => t.type).join(", ")})`),
  );
  return h(
    "article",
    { class: `message message-${message.role}`, "data-message-id": message.id, "aria-label": `${message.role} message` },
    h(
      "header",
      {},
      h("strong", {}, message.role),
      " ",
      h("time", {}, fmtTime(message.created_at)),
      message.status && message.status !== "completed" ? [" ", statusBadge(message.status)] : null,
      message.run_id
        ? [" ", h("a", { href: `#/threads/${message.thread_id}/runs/${message.run_id}` }, message.run_id)]
        : null,
    ),
    parts,
    attachments.length ? h("ul", { class: "attachments", "aria-label": "Attachments" }, attachments) : null,
    jsonView(message),
  );
}

export function resultsTable(results, { offset = 0, cited = new Set(), highlight, withQuery = true } = {}) {
  const rows = results.map((r, i) => {
    const n = offset + i;
    const text = r.content && r.content.length ? r.content.map((c) => c.text).join("\n") : "(content not stored)";
    const isCited = cited.has(n);
    return h(
      "tr",
      {
        class: [isCited ? "cited" : "", highlight === n ? "highlight" : ""].join(" ").trim() || null,
        id: `result-${n}`,
        tabindex: highlight === n ? "-1" : null,
        "data-n": n,
      },
      h("td", {}, String(n)),
      h("td", {}, r.file_name || r.filename || "", h("br"), h("small", {}, r.file_id)),
      h("td", {}, r.chunk_index ?? "—"),
      withQuery ? h("td", {}, r.query || "—") : null,
      h("td", { class: "num" }, fmtScore(r.keyword_score)),
      h("td", { class: "num" }, fmtScore(r.vector_score)),
      h("td", { class: "num" }, fmtScore(r.score)),
      h("td", {}, isCited ? "cited" : ""),
      h("td", {}, h("details", {}, h("summary", {}, text.slice(0, 80)), h("pre", { class: "chunk" }, text))),
    );
  });
  const headers = ["#", "File", "Chunk", withQuery ? "Query" : null, "Keyword", "Vector", "Fused", "Cited", "Chunk text"];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "results" },
      h("thead", {}, h("tr", {}, headers.filter(Boolean).map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows),
    ),
  );
}

// One tool call of a run step. `ctx` = {threadId, runId, offset} links file_search results to the inspector.
export function toolCallView(call, ctx = {}) {
  if (call.type === "function") {
    return h(
      "div",
      { class: "tool-call", "data-type": "function" },
      h("h4", {}, "Function call ", h("code", {}, call.function.name)),
      h("p", {}, h("small", {}, call.id)),
      h("h5", {}, "Arguments"),
      h("pre", {}, prettyJson(call.function.arguments)),
      h("h5", {}, "Output"),
      h("pre", {}, call.function.output ?? "(not submitted yet)"),
    );
  }
  if (call.type === "code_interpreter") {
    const ci = call.code_interpreter || {};
    return h(
      "div",
      { class: "tool-call", "data-type": "code_interpreter" },
      h("h4", {}, "Code interpreter"),
      h("pre", { class: "code", "aria-label": "Code" }, h("code", {}, ci.input || "")),
      (ci.outputs || []).map((o) =>
        o.type === "logs"
          ? h("pre", { class: "logs", "aria-label": "Logs" }, o.logs)
          : o.type === "image"
            ? image(o.image.file_id, "Image produced by the code interpreter")
            : jsonView(o, o.type),
      ),
    );
  }
  if (call.type === "file_search") {
    const fs = call.file_search || {};
    const results = fs.results || [];
    return h(
      "div",
      { class: "tool-call", "data-type": "file_search" },
      h("h4", {}, "File search"),
      h("p", {}, "Queries: ", (fs.queries || []).join(" · ") || "—"),
      h("p", {}, `${results.length} result(s)`, fs.ranking_options ? `, threshold ${fs.ranking_options.score_threshold}` : ""),
      ctx.runId ? h("p", {}, h("a", { href: retrievalHref(ctx.threadId, ctx.runId) }, "Open in the retrieval inspector")) : null,
    );
  }
  return jsonView(call, call.type);
}

export function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch (e) {
    return text;
  }
}

export function usageText(usage) {
  if (!usage) return "tokens: —";
  return `tokens: ${fmtNum(usage.prompt_tokens)} in, ${fmtNum(usage.completion_tokens)} out, ${fmtNum(usage.total_tokens)} total`;
}

// Files and vector stores: upload with progress, ingestion status and errors, chunk counts and sizes, delete, and
// a search box on a store that shows each result's keyword, vector and fused scores.

import { del, get, listAll, post, upload } from "./api.js";
import { clear, errorBox, field, fmtBytes, fmtNum, fmtTime, h, jsonView, statusBadge, table } from "./dom.js";
import { resultsTable } from "./render.js";

function reload() {
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}

export async function filesPage(page) {
  const [files, stores] = await Promise.all([listAll("/files", {}, 1000), listAll("/vector_stores", {}, 500)]);
  const chooser = h("input", { type: "file", name: "file", required: true, multiple: true });
  const purpose = h("select", { name: "purpose" }, ["assistants", "vision", "user_data", "batch", "fine-tune"].map((p) => h("option", { value: p }, p)));
  const progress = h("progress", { max: 100, value: 0, hidden: true, "aria-label": "Upload progress" });
  const status = h("div", { "aria-live": "polite" });
  const uploadForm = h("form", { class: "upload", "aria-label": "Upload files" }, field("File", chooser), field("Purpose", purpose), h("button", { type: "submit" }, "Upload"), progress, status);
  uploadForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(status);
    progress.hidden = false;
    try {
      for (const file of chooser.files) {
        progress.value = 0;
        const done = await upload(file, purpose.value, (loaded, total) => {
          progress.value = Math.round((100 * loaded) / total);
        });
        progress.value = 100;
        status.append(h("p", { class: "ok" }, `Uploaded ${done.filename} as ${done.id}.`));
      }
      reload();
    } catch (err) {
      status.append(errorBox(err));
    }
  });
  const fileRows = files.map((f) =>
    h(
      "tr",
      {},
      h("td", {}, f.filename, h("br"), h("small", {}, f.id)),
      h("td", {}, f.purpose),
      h("td", { class: "num" }, fmtBytes(f.bytes)),
      h("td", {}, fmtTime(f.created_at)),
      h("td", { class: "actions" }, deleteButton(`/files/${f.id}`, `file ${f.filename}`), jsonView(f)),
    ),
  );
  const name = h("input", { name: "name" });
  const pick = h("select", { name: "file_ids", multiple: true, size: Math.min(6, Math.max(2, files.length)) }, files.filter((f) => f.purpose === "assistants").map((f) => h("option", { value: f.id }, `${f.filename} (${f.id})`)));
  const storeStatus = h("div", { "aria-live": "polite" });
  const storeForm = h("form", { class: "create-store", "aria-label": "Create a vector store" }, field("Name", name), field("Files", pick), h("button", { type: "submit" }, "Create vector store"), storeStatus);
  storeForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const s = await post("/vector_stores", { name: name.value || undefined, file_ids: [...pick.selectedOptions].map((o) => o.value) });
      location.hash = `#/vector_stores/${s.id}`;
    } catch (err) {
      clear(storeStatus).append(errorBox(err));
    }
  });
  const storeRows = stores.map((s) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: `#/vector_stores/${s.id}` }, s.name || "(unnamed)"), h("br"), h("small", {}, s.id)),
      h("td", {}, statusBadge(s.status)),
      h("td", {}, countsText(s.file_counts)),
      h("td", { class: "num" }, fmtBytes(s.usage_bytes)),
      h("td", { class: "actions" }, deleteButton(`/vector_stores/${s.id}`, `vector store ${s.name || s.id}`), jsonView(s)),
    ),
  );
  page.append(
    h("h1", {}, "Files & vector stores"),
    h("h2", {}, "Upload"),
    uploadForm,
    h("h2", {}, "Files"),
    fileRows.length ? table(["File", "Purpose", "Size", "Created", ""], fileRows) : h("p", {}, "No files."),
    h("h2", {}, "Vector stores"),
    storeForm,
    storeRows.length ? table(["Vector store", "Status", "Files", "Size", ""], storeRows) : h("p", {}, "No vector stores."),
  );
}

function countsText(c) {
  return c ? `${c.completed}/${c.total} completed, ${c.in_progress} in progress, ${c.failed} failed` : "—";
}

function deleteButton(path, what) {
  return h(
    "button",
    {
      type: "button",
      class: "danger",
      "aria-label": `Delete ${what}`,
      onclick: async () => {
        if (!confirm(`Delete ${what}?`)) return;
        await del(path);
        reload();
      },
    },
    "Delete",
  );
}

export async function storeView(page, storeId) {
  const [store, stats, files] = await Promise.all([
    get(`/vector_stores/${storeId}`),
    get(`/vector_stores/${storeId}/stats`),
    listAll(`/vector_stores/${storeId}/files`, {}, 2000),
  ]);
  const names = new Map();
  await Promise.all(
    files.map((f) =>
      get(`/files/${f.id}`)
        .then((meta) => names.set(f.id, meta.filename))
        .catch(() => names.set(f.id, "(deleted file)")),
    ),
  );
  const perFile = new Map(stats.files.map((f) => [f.file_id, f]));
  const rows = files.map((f) => {
    const s = perFile.get(f.id) || {};
    return h(
      "tr",
      {},
      h("td", {}, names.get(f.id), h("br"), h("small", {}, f.id)),
      h("td", {}, statusBadge(f.status), f.last_error ? h("p", { class: "error" }, `${f.last_error.code}: ${f.last_error.message}`) : null),
      h("td", { class: "num" }, fmtNum(s.chunk_count)),
      h("td", { class: "num" }, fmtBytes(s.text_bytes)),
      h("td", { class: "num" }, fmtBytes(f.usage_bytes)),
      h("td", { class: "actions" }, deleteButton(`/vector_stores/${storeId}/files/${f.id}`, `${names.get(f.id)} from this store`)),
    );
  });
  const attached = new Set(files.map((f) => f.id));
  const candidates = (await listAll("/files", { purpose: "assistants" }, 1000)).filter((f) => !attached.has(f.id));
  const addPick = h("select", { name: "file_id" }, candidates.map((f) => h("option", { value: f.id }, `${f.filename} (${f.id})`)));
  const addStatus = h("div", { "aria-live": "polite" });
  const addForm = h("form", { class: "filters", "aria-label": "Add a file to this vector store" }, field("File to add", addPick), h("button", { type: "submit", disabled: !candidates.length }, "Add file"), addStatus);
  addForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await post(`/vector_stores/${storeId}/files`, { file_id: addPick.value });
      reload();
    } catch (err) {
      clear(addStatus).append(errorBox(err));
    }
  });
  // While files are being ingested, look again every two seconds (only while this page is still shown).
  if (files.some((f) => f.status === "in_progress")) {
    const here = location.hash;
    page.addEventListener("console:shown", () => setTimeout(() => location.hash === here && page.isConnected && reload(), 2000));
  }
  const query = h("input", { name: "query", required: true, maxlength: 4096 });
  const k = h("input", { name: "max_num_results", type: "number", min: 1, max: 50, value: 10 });
  const threshold = h("input", { name: "score_threshold", type: "number", min: 0, max: 1, step: 0.01, value: 0 });
  const ranker = h("select", { name: "ranker" }, ["auto", "none", "default-2024-11-15"].map((r) => h("option", { value: r }, r)));
  const filters = h("textarea", { name: "filters", rows: 2, spellcheck: "false", placeholder: '{"type": "eq", "key": "author", "value": "Ada"}' });
  const out = h("div", { "aria-live": "polite", class: "search-results" });
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Search this vector store" },
    field("Query", query),
    field("Max results", k),
    field("Score threshold", threshold),
    field("Ranker", ranker),
    field("Filters (JSON)", filters),
    h("button", { type: "submit" }, "Search"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(out).append(h("p", {}, "Searching…"));
    try {
      const body = {
        query: query.value,
        max_num_results: Number(k.value) || 10,
        ranking_options: { ranker: ranker.value, score_threshold: Number(threshold.value) || 0 },
      };
      if (filters.value.trim()) body.filters = JSON.parse(filters.value);
      const result = await post(`/vector_stores/${storeId}/search`, body, { explain: "true" });
      const r = result.ranking || {};
      clear(out).append(
        h("p", {}, `${result.data.length} result(s) for `, h("q", {}, result.search_query.join(" · ")), ` · mode ${r.mode}, vector weight ${r.hybrid_vector_weight}`),
        result.data.length ? resultsTable(result.data, { withQuery: false }) : h("p", {}, "No results."),
      );
    } catch (err) {
      clear(out).append(errorBox(err));
    }
  });
  page.append(
    h("h1", {}, "Vector store ", h("code", {}, store.name || store.id)),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Id"),
      h("dd", {}, store.id),
      h("dt", {}, "Status"),
      h("dd", {}, statusBadge(store.status)),
      h("dt", {}, "Files"),
      h("dd", {}, countsText(store.file_counts)),
      h("dt", {}, "Chunks"),
      h("dd", {}, `${fmtNum(stats.chunk_count)} (${fmtBytes(stats.text_bytes)} text, ${fmtBytes(stats.embedding_bytes)} embeddings)`),
      h("dt", {}, "Embeddings"),
      h("dd", {}, `${stats.embedding_model} (${stats.embedding_dim} dims), search ${stats.search_mode}`),
      h("dt", {}, "Expires"),
      h("dd", {}, fmtTime(store.expires_at)),
    ),
    jsonView(store),
    h("h2", {}, "Files"),
    rows.length ? table(["File", "Status", "Chunks", "Text", "Index size", ""], rows) : h("p", {}, "No files."),
    addForm,
    h("h2", {}, "Search"),
    form,
    out,
  );
}

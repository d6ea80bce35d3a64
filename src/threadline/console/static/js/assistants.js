// Assistants: list, create, edit, delete; the form is shared with the playground.

import { del, get, listAll, models, post } from "./api.js";
import { clear, errorBox, field, fmtTime, h, jsonView, table } from "./dom.js";

export async function assistantList(page) {
  const list = await get("/assistants", { limit: 100 });
  const rows = list.data.map((a) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: `#/assistants/${a.id}` }, a.name || "(unnamed)"), h("br"), h("small", {}, a.id)),
      h("td", {}, a.model),
      h("td", {}, (a.tools || []).map((t) => (t.type === "function" ? t.function.name : t.type)).join(", ") || "—"),
      h("td", {}, fmtTime(a.created_at)),
      h(
        "td",
        { class: "actions" },
        h("a", { href: `#/playground/${a.id}` }, "Try"),
        " ",
        h(
          "button",
          {
            type: "button",
            class: "danger",
            "aria-label": `Delete assistant ${a.name || a.id}`,
            onclick: async () => {
              if (!confirm(`Delete assistant ${a.name || a.id}?`)) return;
              await del(`/assistants/${a.id}`);
              location.hash = "#/assistants";
              window.dispatchEvent(new HashChangeEvent("hashchange"));
            },
          },
          "Delete",
        ),
        jsonView(a),
      ),
    ),
  );
  page.append(
    h("h1", {}, "Assistants"),
    h("p", {}, h("a", { href: "#/assistants/new", class: "button" }, "New assistant")),
    rows.length ? table(["Name", "Model", "Tools", "Created", ""], rows) : h("p", {}, "No assistants yet."),
  );
}

export async function assistantEdit(page, id) {
  const existing = id === "new" ? null : await get(`/assistants/${id}`);
  page.append(h("h1", {}, existing ? `Assistant ${existing.name || existing.id}` : "New assistant"));
  page.append(
    await assistantForm(existing, (saved) => {
      location.hash = `#/assistants/${saved.id}`;
    }),
  );
  if (existing) page.append(jsonView(existing));
}

async function modelControl(current) {
  const ids = await models();
  if (ids && ids.length) {
    const options = ids.includes(current) || !current ? ids : [current, ...ids];
    return h("select", { name: "model", required: true }, options.map((m) => h("option", { value: m, selected: m === current }, m)));
  }
  return h("input", { name: "model", required: true, value: current || "", placeholder: "e.g. gpt-4o", autocomplete: "off" });
}

// A form that creates (existing = null) or modifies an assistant; calls onSaved(assistant).
export async function assistantForm(existing, onSaved) {
  const a = existing || { tools: [], tool_resources: {}, metadata: {} };
  const [stores, files] = await Promise.all([listAll("/vector_stores", {}, 200), listAll("/files", {}, 500).catch(() => [])]);
  const has = (type) => (a.tools || []).some((t) => t.type === type);
  const functions = (a.tools || []).filter((t) => t.type === "function").map((t) => t.function);
  const name = h("input", { name: "name", value: a.name || "", maxlength: 256 });
  const model = await modelControl(a.model);
  const instructions = h("textarea", { name: "instructions", rows: 4 }, a.instructions || "");
  const ci = h("input", { type: "checkbox", id: `ci-${Date.now()}`, checked: has("code_interpreter") });
  const fs = h("input", { type: "checkbox", id: `fs-${Date.now()}`, checked: has("file_search") });
  const fns = h("textarea", { name: "functions", rows: 5, spellcheck: "false" }, functions.length ? JSON.stringify(functions, null, 2) : "");
  const currentStores = ((a.tool_resources || {}).file_search || {}).vector_store_ids || [];
  const store = h(
    "select",
    { name: "vector_store" },
    h("option", { value: "" }, "(none)"),
    stores.map((s) => h("option", { value: s.id, selected: currentStores.includes(s.id) }, `${s.name || s.id} (${s.id})`)),
  );
  const currentFiles = ((a.tool_resources || {}).code_interpreter || {}).file_ids || [];
  const ciFiles = h(
    "select",
    { name: "ci_files", multiple: true, size: Math.min(5, Math.max(2, files.length)) },
    files.map((f) => h("option", { value: f.id, selected: currentFiles.includes(f.id) }, `${f.filename} (${f.id})`)),
  );
  const status = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "assistant-form", "aria-label": existing ? "Edit assistant" : "Create assistant" },
    field("Name", name),
    field("Model", model, model.tagName === "INPUT" ? "This server lists no models: type the model name." : null),
    field("Instructions", instructions),
    h(
      "fieldset",
      {},
      h("legend", {}, "Tools"),
      h("div", { class: "check" }, ci, h("label", { for: ci.id }, "Code interpreter")),
      h("div", { class: "check" }, fs, h("label", { for: fs.id }, "File search")),
      field("Functions (JSON array of {name, description, parameters})", fns),
    ),
    field("Vector store for file search", store),
    field("Files for the code interpreter", ciFiles),
    h("button", { type: "submit" }, existing ? "Save assistant" : "Create assistant"),
    status,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(status);
    const tools = [];
    if (ci.checked) tools.push({ type: "code_interpreter" });
    if (fs.checked) tools.push({ type: "file_search" });
    try {
      const parsed = fns.value.trim() ? JSON.parse(fns.value) : [];
      for (const f of Array.isArray(parsed) ? parsed : [parsed]) tools.push({ type: "function", function: f });
    } catch (err) {
      status.append(errorBox(new Error(`Functions: not valid JSON (${err.message}).`)));
      return;
    }
    const body = {
      name: name.value || null,
      model: model.value,
      instructions: instructions.value || null,
      tools,
      tool_resources: {
        code_interpreter: { file_ids: [...ciFiles.selectedOptions].map((o) => o.value) },
        file_search: { vector_store_ids: store.value ? [store.value] : [] },
      },
    };
    try {
      const saved = await post(existing ? `/assistants/${existing.id}` : "/assistants", body);
      status.append(h("p", { class: "ok" }, `Saved ${saved.id}.`));
      onSaved(saved);
    } catch (err) {
      status.append(errorBox(err));
    }
  });
  return form;
}

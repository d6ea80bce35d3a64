// A client of threadline's public /v1 API: the console uses the same endpoints and key as any SDK user.

const KEY = "threadline.console.key";

export class ApiError extends Error {
  constructor(status, body) {
    const message = (body && body.error && body.error.message) || `HTTP ${status}`;
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
}

export function setKey(key, remember) {
  sessionStorage.setItem(KEY, key);
  if (remember) localStorage.setItem(KEY, key);
}

const PROJECT = "threadline.console.project";

// The project an admin key looks at, sent as OpenAI's `OpenAI-Project` header (the SDK's `project=` option).
export function getProject() {
  return sessionStorage.getItem(PROJECT);
}

export function setProject(projectId) {
  if (projectId) sessionStorage.setItem(PROJECT, projectId);
  else sessionStorage.removeItem(PROJECT);
}

export function forgetKey() {
  sessionStorage.removeItem(PROJECT);
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
  for (const url of fileUrls.values()) URL.revokeObjectURL(url);
  fileUrls.clear();
}

function headers(extra, key) {
  const out = { Authorization: `Bearer ${key ?? getKey() ?? ""}`, "OpenAI-Beta": "assistants=v2", ...extra };
  const project = getProject();
  if (project) out["OpenAI-Project"] = project;
  return out;
}

function url(path, query) {
  const u = new URL(`/v1${path}`, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => u.searchParams.append(k, x));
    else u.searchParams.set(k, v);
  }
  return u.toString();
}

async function failure(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch (e) {
    body = null;
  }
  const err = new ApiError(resp.status, body);
  if (resp.status === 401) document.dispatchEvent(new CustomEvent("console:unauthorized", { detail: err }));
  return err;
}

export async function api(method, path, { body, query, key } = {}) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }, key) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const resp = await fetch(url(path, query), init);
  if (!resp.ok) throw await failure(resp);
  return resp.json();
}

export const get = (path, query) => api("GET", path, { query });
export const post = (path, body, query) => api("POST", path, { body, query });
export const del = (path) => api("DELETE", path);

export const INCLUDE_CONTENT = "step_details.tool_calls[*].file_search.results[*].content";

// POST with stream:true; yields {event, data} for each server-sent event (data parsed as JSON when it is).
export async function* stream(path, body, query) {
  const resp = await fetch(url(path, query), {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (!resp.ok) throw await failure(resp);
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const raw = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of raw.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue;
      const text = data.join("\n");
      let parsed = text;
      try {
        parsed = JSON.parse(text);
      } catch (e) {
        parsed = text;
      }
      yield { event, data: parsed };
    }
  }
}

// Page through a list endpoint (cursor pagination) up to `max` items.
export async function listAll(path, query = {}, max = 500) {
  const out = [];
  let after;
  while (out.length < max) {
    const page = await get(path, { limit: 100, ...query, after });
    out.push(...page.data);
    if (!page.has_more || !page.data.length) break;
    after = page.last_id;
  }
  return out;
}

const fileUrls = new Map();

// An object URL for a file's bytes (fetched with the key; images cannot send an Authorization header).
export async function fileUrl(fileId) {
  if (fileUrls.has(fileId)) return fileUrls.get(fileId);
  const resp = await fetch(url(`/files/${encodeURIComponent(fileId)}/content`), { headers: headers() });
  if (!resp.ok) throw await failure(resp);
  const u = URL.createObjectURL(await resp.blob());
  fileUrls.set(fileId, u);
  return u;
}

// Multipart upload to /v1/files with progress (fetch cannot report upload progress; XMLHttpRequest can).
export function upload(file, purpose, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url("/files"));
    for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded, e.total);
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch (e) {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body));
    };
    xhr.onerror = () => reject(new Error("The upload failed (network error)."));
    const form = new FormData();
    form.append("purpose", purpose);
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

// GET /v1/models, or null when the server has no such endpoint (then the model is typed in).
let modelsPromise = null;
export function models() {
  if (!modelsPromise) {
    modelsPromise = get("/models")
      .then((page) => page.data.map((m) => m.id))
      .catch(() => null);
  }
  return modelsPromise;
}

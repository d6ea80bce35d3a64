// The playground: pick or create an assistant, chat in a thread with the reply streaming in, submit function
// outputs from a form, see code-interpreter code, logs and images, and citations that open the inspector.

import { INCLUDE_CONTENT, get, listAll, post, stream } from "./api.js";
import { assistantForm } from "./assistants.js";
import { clear, errorBox, field, h, statusBadge } from "./dom.js";
import { messageView, toolCallView, usageText } from "./render.js";

const TERMINAL = new Set(["thread.run.completed", "thread.run.failed", "thread.run.cancelled", "thread.run.expired", "thread.run.incomplete"]);

export async function playground(page, assistantId) {
  const assistants = await listAll("/assistants", {}, 200);
  let current = assistants.find((a) => a.id === assistantId) || null;
  let threadId = null;

  const picker = h(
    "select",
    { name: "assistant" },
    h("option", { value: "" }, "New assistant…"),
    assistants.map((a) => h("option", { value: a.id, selected: current && a.id === current.id }, `${a.name || "(unnamed)"} · ${a.model}`)),
  );
  const formSlot = h("div");
  const transcript = h("div", { class: "transcript", "aria-live": "polite", "aria-label": "Conversation" });
  const threadLabel = h("p", { class: "thread-label" }, "No thread yet: sending a message starts one.");
  const input = h("textarea", { name: "message", rows: 3, required: true });
  const send = h("button", { type: "submit" }, "Send");
  const composer = h("form", { class: "composer", "aria-label": "Send a message" }, field("Message", input), send);
  const newThread = h("button", { type: "button", class: "secondary" }, "New thread");

  async function showForm() {
    const details = h("details", { open: !current }, h("summary", {}, current ? "Edit this assistant" : "Create an assistant"));
    details.append(
      await assistantForm(current, (saved) => {
        location.hash = `#/playground/${saved.id}`;
        if (current && saved.id === current.id) window.dispatchEvent(new HashChangeEvent("hashchange"));
      }),
    );
    clear(formSlot).append(details);
  }
  picker.addEventListener("change", () => {
    location.hash = picker.value ? `#/playground/${picker.value}` : "#/playground";
  });
  newThread.addEventListener("click", () => {
    threadId = null;
    clear(transcript);
    clear(threadLabel).append("No thread yet: sending a message starts one.");
    input.focus();
  });
  await showForm();

  composer.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!current) {
      transcript.append(errorBox(new Error("Create or pick an assistant first.")));
      return;
    }
    const text = input.value;
    if (!text.trim()) return;
    send.disabled = true;
    try {
      if (!threadId) {
        const thread = await post("/threads", {});
        threadId = thread.id;
        clear(threadLabel).append("Thread ", h("a", { href: `#/threads/${threadId}` }, threadId));
      }
      const message = await post(`/threads/${threadId}/messages`, { role: "user", content: text });
      transcript.append(messageView(message));
      input.value = "";
      await follow(stream(`/threads/${threadId}/runs`, { assistant_id: current.id }, { "include[]": INCLUDE_CONTENT }));
    } catch (err) {
      transcript.append(errorBox(err));
    } finally {
      send.disabled = false;
    }
  });

  // Render a run's events as they arrive; returns when the stream ends.
  async function follow(events) {
    const block = h("section", { class: "run-block", "aria-label": "Run" });
    const status = h("p", { class: "run-status" }, "Run starting…");
    block.append(status);
    transcript.append(block);
    const bubbles = new Map(); // message id -> live element
    const live = new Map(); // step id + call index -> live code element
    let run = null;
    for await (const { event, data } of events) {
      if (event.startsWith("thread.run.") && !event.startsWith("thread.run.step")) {
        run = data;
        clear(status).append(
          h("a", { href: `#/threads/${run.thread_id}/runs/${run.id}` }, run.id),
          " ",
          statusBadge(run.status),
          run.usage ? ` ${usageText(run.usage)}` : "",
        );
        if (run.last_error) status.append(errorBox(new Error(`${run.last_error.code}: ${run.last_error.message}`)));
      }
      if (event === "thread.message.created") {
        const el = h("article", { class: "message message-assistant streaming", "data-message-id": data.id }, h("header", {}, h("strong", {}, "assistant")), h("div", { class: "text" }));
        bubbles.set(data.id, el);
        block.append(el);
      } else if (event === "thread.message.delta") {
        const el = bubbles.get(data.id);
        for (const part of (data.delta && data.delta.content) || []) {
          if (el && part.type === "text" && part.text && part.text.value) el.querySelector(".text").append(part.text.value);
        }
      } else if (event === "thread.message.completed" || event === "thread.message.incomplete") {
        const el = bubbles.get(data.id);
        const done = messageView(data);
        if (el) el.replaceWith(done);
        else block.append(done);
        bubbles.set(data.id, done);
      } else if (event === "thread.run.step.delta") {
        const details = data.delta && data.delta.step_details;
        for (const call of (details && details.tool_calls) || []) {
          if (call.type !== "code_interpreter" || !call.code_interpreter) continue;
          const k = `${data.id}:${call.index}`;
          if (!live.has(k)) {
            const code = h("pre", { class: "code live", "aria-label": "Code (streaming)" });
            live.set(k, code);
            block.append(h("div", { class: "tool-call", "data-step": data.id }, h("h4", {}, "Code interpreter"), code));
          }
          if (call.code_interpreter.input) live.get(k).append(call.code_interpreter.input);
        }
      } else if (event === "thread.run.step.completed" && data.step_details.type === "tool_calls") {
        for (const el of block.querySelectorAll(`[data-step="${CSS.escape(data.id)}"]`)) el.remove();
        for (const call of data.step_details.tool_calls) {
          if (call.type === "function") continue; // shown with its form / after submission
          block.append(toolCallView(call, { threadId: data.thread_id, runId: data.run_id }));
        }
      } else if (event === "thread.run.requires_action") {
        block.append(functionForm(data));
      } else if (event === "error") {
        block.append(errorBox(new Error((data.error && data.error.message) || String(data))));
      }
      if (TERMINAL.has(event)) status.setAttribute("data-final", data.status);
    }
    return run;
  }

  function functionForm(run) {
    const calls = run.required_action.submit_tool_outputs.tool_calls;
    const outputs = calls.map((c) => h("textarea", { rows: 2, name: `output-${c.id}`, required: true }));
    const submit = h("button", { type: "submit" }, "Submit tool outputs");
    const form = h(
      "form",
      { class: "function-form", "aria-label": "Function call outputs" },
      h("h3", {}, "The run needs function outputs"),
      calls.map((c, i) => [
        toolCallView({ ...c, function: { ...c.function, output: null } }),
        field(`Output of ${c.function.name} (${c.id})`, outputs[i]),
      ]),
      submit,
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      submit.disabled = true;
      const tool_outputs = calls.map((c, i) => ({ tool_call_id: c.id, output: outputs[i].value }));
      try {
        form.replaceWith(
          h("div", { class: "tool-call" }, h("h4", {}, "Submitted outputs"), h("pre", {}, JSON.stringify(tool_outputs, null, 2))),
        );
        await follow(stream(`/threads/${run.thread_id}/runs/${run.id}/submit_tool_outputs`, { tool_outputs }, { "include[]": INCLUDE_CONTENT }));
      } catch (err) {
        transcript.append(errorBox(err));
      }
    });
    setTimeout(() => outputs[0] && outputs[0].focus(), 0);
    return form;
  }

  page.append(
    h("h1", {}, "Playground"),
    h(
      "div",
      { class: "split" },
      h("section", { class: "panel", "aria-label": "Assistant" }, h("h2", {}, "Assistant"), field("Assistant", picker), formSlot),
      h("section", { class: "panel chat", "aria-label": "Chat" }, h("h2", {}, "Chat"), h("div", { class: "row" }, threadLabel, newThread), transcript, composer),
    ),
  );
}

// The inspector page: polls the admin API and draws what it gets. Every value from a request or a reply is
// put in the page with textContent, never as HTML: a prompt is untrusted text.
"use strict";

const API = "/_emulator";
const POLL_MS = 1000;
const state = { calls: new Map(), lastSeq: 0, selected: null, paused: false, token: null };

// ---- the admin API -------------------------------------------------------------------------------------------

function readToken() {
  // A token given as /_emulator/ui#token=... stays in this tab only, and the fragment never reaches a server.
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem("emulatorAdminToken", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);
  }
  state.token = sessionStorage.getItem("emulatorAdminToken");
}

async function api(path, options = {}) {
  const headers = { ...(options.body ? { "Content-Type": "application/json" } : {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const reply = await fetch(API + path, { ...options, headers });
  if (reply.status === 401) {
    const token = prompt("This emulator needs its admin token (--admin-token):");
    if (token) {
      sessionStorage.setItem("emulatorAdminToken", token);
      state.token = token;
      return api(path, options);
    }
  }
  if (!reply.ok) throw new Error(`${reply.status} ${(await reply.text()).slice(0, 200)}`);
  return reply.json();
}

// ---- small DOM helpers ---------------------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function toast(message) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.classList.remove("hidden");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.add("hidden"), 2500);
}

// A JSON value as a collapsible tree: objects and arrays are <details>, open to two levels (long lists such as a
// stream's events show their items closed).
function tree(value, depth = 0) {
  if (value === null || typeof value !== "object") {
    const kind = typeof value === "string" ? "s" : typeof value === "number" ? "n" : "b";
    return el("span", { class: kind, text: JSON.stringify(value) });
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  const label = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
  const box = el("details", depth < 2 ? { open: "" } : {}, el("summary", { text: label }));
  for (const [key, item] of entries) {
    box.append(el("div", {}, el("span", { class: "k", text: `${key}: ` }), tree(item, entries.length > 8 ? 2 : depth + 1)));
  }
  return box;
}

// ---- the list ------------------------------------------------------------------------------------------------

function statusClass(call) {
  if (call.error && call.error.inStream) return "stream";
  if (!call.status || call.status < 400) return "ok";
  return call.status < 500 ? "4xx" : "5xx";
}

function statusText(call) {
  if (call.error) return `${call.status} ${call.error.code}${call.error.inStream ? " (in stream)" : ""}`;
  return String(call.status);
}

function matches(call) {
  const operation = document.getElementById("f-operation").value;
  const model = document.getElementById("f-model").value;
  const status = document.getElementById("f-status").value;
  const text = document.getElementById("f-text").value.trim().toLowerCase();
  if (operation && call.operation !== operation) return false;
  if (model && call.modelId !== model) return false;
  if (status) {
    const kind = statusClass(call);
    if (status === "ok" && call.error) return false;
    if (status === "error" && !call.error) return false;
    if (["4xx", "5xx", "stream"].includes(status) && kind !== status) return false;
  }
  if (text) {
    call._text ??= JSON.stringify([call.request, call.response, call.error]).toLowerCase();
    if (!call._text.includes(text)) return false;
  }
  return true;
}

function refreshOptions(select, values) {
  const chosen = select.value;
  const known = new Set([...select.options].map((o) => o.value));
  for (const value of [...values].sort()) if (value && !known.has(value)) select.append(el("option", { value, text: value }));
  select.value = chosen;
}

function row(call) {
  const tags = [];
  if (call.scriptedRule) tags.push(el("span", { class: "pill rule", text: `rule ${call.scriptedRule}` }));
  for (const fault of call.faults || []) tags.push(el("span", { class: "pill fault", text: fault }));
  const tokens = call.inputTokens == null ? "" : `${call.inputTokens} / ${call.outputTokens ?? 0}`;
  const tr = el("tr", { "data-seq": call.seq, onclick: () => select(call.seq) },
    el("td", { text: call.seq }),
    el("td", { text: (call.timestamp || "").slice(11, 19) }),
    el("td", { class: "operation", text: call.operation }),
    el("td", { class: "model", title: call.modelId || "", text: call.modelId || "" }),
    el("td", { class: `status status-${statusClass(call)}`, text: statusText(call) }),
    el("td", { text: tokens }),
    el("td", { text: call.latencyMs == null ? "" : `${call.latencyMs} ms` }),
    el("td", {}, ...tags),
    el("td", { text: call.attempt ?? "" }));
  if (call.seq === state.selected) tr.classList.add("selected");
  return tr;
}

function renderList() {
  const body = document.querySelector("#calls tbody");
  const shown = [...state.calls.values()].filter(matches).reverse(); // newest first
  body.replaceChildren(...shown.map(row));
  document.getElementById("empty").classList.toggle("hidden", state.calls.size > 0);
  document.getElementById("count").textContent =
    `${shown.length} of ${state.calls.size} call${state.calls.size === 1 ? "" : "s"}`;
}

async function poll() {
  if (state.paused) return;
  const live = document.getElementById("live");
  try {
    const page = await api(`/invocations?after=${state.lastSeq}`);
    for (const seq of state.calls.keys()) if (seq < page.firstSeq) state.calls.delete(seq); // cleared or evicted
    for (const call of page.invocations) state.calls.set(call.seq, call);
    state.lastSeq = page.lastSeq;
    if (state.selected !== null && !state.calls.has(state.selected)) showDetail(null);
    refreshOptions(document.getElementById("f-operation"), new Set([...state.calls.values()].map((c) => c.operation)));
    refreshOptions(document.getElementById("f-model"), new Set([...state.calls.values()].map((c) => c.modelId)));
    renderList();
    live.className = "live";
    live.textContent = "live";
  } catch (error) {
    live.className = "live down";
    live.textContent = "unreachable";
  }
}

// ---- the detail view -----------------------------------------------------------------------------------------

function select(seq) {
  state.selected = seq;
  for (const tr of document.querySelectorAll("#calls tbody tr")) tr.classList.toggle("selected", Number(tr.dataset.seq) === seq);
  showDetail(state.calls.get(seq) || null);
}

function showDetail(call) {
  const box = document.getElementById("detail");
  if (!call) {
    state.selected = null;
    box.className = "detail muted";
    box.textContent = "Select a call to see what was sent and what came back.";
    return;
  }
  box.className = "detail";
  const facts = [
    ["request id", call.requestId], ["operation", call.operation], ["model", call.modelId], ["status", statusText(call)],
    ["tokens in / out", `${call.inputTokens ?? "–"} / ${call.outputTokens ?? "–"}`],
    ["first byte", call.firstByteMs == null ? "–" : `${call.firstByteMs} ms`],
    ["latency", call.latencyMs == null ? "–" : `${call.latencyMs} ms`],
    ["SDK attempt", call.attempt ?? "–"], ["scripted rule", call.scriptedRule ?? "–"],
    ["faults", (call.faults || []).join(", ") || "–"],
  ];
  if (call.error) facts.push(["error", `${call.error.code}: ${call.error.message ?? ""}`]);
  const summary = el("dl", { class: "summary" });
  for (const [key, value] of facts) summary.append(el("dt", { text: key }), el("dd", { text: String(value) }));
  const output = el("pre", { id: "copied", class: "json hidden" });
  const actions = el("div", { class: "actions" },
    el("button", { id: "copy-rule", type: "button", onclick: () => copy(output, JSON.stringify(asRule(call), null, 2)) },
      "Copy as rule"),
    el("button", { id: "add-rule", type: "button", onclick: () => addRule(call) }, "Script this answer next time"),
    el("button", { id: "copy-boto3", type: "button", onclick: () => copy(output, asBoto3(call)) }, "Copy as boto3"));
  const streamed = Array.isArray(call.frameOffsetsMs);
  const response = el("div", {}, el("h3", { text: streamed ? "response (events)" : "response" }),
    el("div", { class: "tree" }, tree(call.response ?? (call.error ? { error: call.error } : null))));
  box.replaceChildren(summary, actions, output, streamed ? timeline(call) : null,
    el("div", { class: "sides" },
      el("div", {}, el("h3", { text: "request" }), el("div", { class: "tree" }, tree(call.request))), response));
}

// A stream as a timeline: cumulative events over time, first byte and any in-stream exception marked.
function timeline(call) {
  const offsets = call.frameOffsetsMs;
  const names = call.response.map((event) => Object.keys(event || {})[0] || "chunk");
  const end = Math.max(call.latencyMs || 0, ...offsets, 1);
  const width = 600, height = 120, pad = 20;
  const x = (ms) => pad + (ms / end) * (width - 2 * pad);
  const y = (n) => height - pad - (n / Math.max(offsets.length, 1)) * (height - 2 * pad);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("id", "timeline-chart");
  const shape = (tag, attrs) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    svg.append(node);
    return node;
  };
  shape("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, stroke: "#aab" });
  let points = `${x(0)},${y(0)}`;
  offsets.forEach((ms, i) => { points += ` ${x(ms)},${y(i)} ${x(ms)},${y(i + 1)}`; });
  shape("polyline", { points, fill: "none", stroke: "#2f6fde", "stroke-width": 2, class: "pace" });
  if (call.firstByteMs != null) {
    shape("line", { x1: x(call.firstByteMs), y1: pad / 2, x2: x(call.firstByteMs), y2: height - pad, stroke: "#1f8a4c",
      "stroke-dasharray": "4 3", class: "first-byte" });
    shape("text", { x: x(call.firstByteMs) + 4, y: pad, "font-size": 11, fill: "#1f8a4c" }).textContent =
      `first byte ${call.firstByteMs} ms`;
  }
  call.response.forEach((event, i) => {
    const name = names[i];
    if (call.error && call.error.inStream && name.endsWith("Exception")) {
      shape("circle", { cx: x(offsets[i]), cy: y(i + 1), r: 5, fill: "#c53030", class: "exception-mark" });
    }
  });
  shape("text", { x: width - pad, y: height - 4, "font-size": 11, fill: "#6b7585", "text-anchor": "end" }).textContent =
    `${end} ms · ${offsets.length} events`;
  const table = el("table", { class: "events" },
    el("thead", {}, el("tr", {}, el("th", { text: "ms" }), el("th", { text: "event" }), el("th", { text: "payload" }))));
  const body = el("tbody");
  call.response.forEach((event, i) => {
    const exception = names[i].endsWith("Exception");
    body.append(el("tr", { class: exception ? "exception" : "" }, el("td", { text: offsets[i] }),
      el("td", { text: names[i] }), el("td", { text: JSON.stringify(event).slice(0, 300) })));
  });
  table.append(body);
  return el("div", { class: "timeline" }, el("h3", { text: "stream timeline" }), svg, table);
}

// ---- copy as a rule / as boto3 -------------------------------------------------------------------------------

function textOf(blocks) {
  return (Array.isArray(blocks) ? blocks : []).map((b) => (typeof b === "string" ? b : b && b.text) || "").join("");
}

function lastUserText(request) {
  if (!request || typeof request !== "object") return "";
  const messages = request.messages;
  if (Array.isArray(messages)) {
    const users = messages.filter((m) => m && m.role === "user");
    const last = users[users.length - 1];
    if (last) return typeof last.content === "string" ? last.content : textOf(last.content);
  }
  return request.prompt || request.inputText || request.message || "";
}

// What the model answered, from a Converse reply, a ConverseStream's events or the common native bodies.
function answerOf(call) {
  const answer = { text: "", tool_calls: [], stop_reason: null };
  const reply = call.response;
  if (Array.isArray(reply)) {
    const tools = {};
    for (const event of reply) {
      if (!event || typeof event !== "object") continue;
      if (event.contentBlockStart?.start?.toolUse) tools[event.contentBlockStart.contentBlockIndex] =
        { name: event.contentBlockStart.start.toolUse.name, json: "" };
      const delta = event.contentBlockDelta;
      if (delta?.delta?.text) answer.text += delta.delta.text;
      if (delta?.delta?.toolUse) tools[delta.contentBlockIndex].json += delta.delta.toolUse.input;
      if (event.messageStop) answer.stop_reason = event.messageStop.stopReason;
      if (event.type === "content_block_delta" && event.delta?.text) answer.text += event.delta.text; // Claude chunks
      for (const key of ["generation", "outputText", "completion"]) if (typeof event[key] === "string") answer.text += event[key];
    }
    for (const tool of Object.values(tools)) answer.tool_calls.push({ name: tool.name, input: safeJson(tool.json) });
  } else if (reply && typeof reply === "object") {
    const content = reply.output?.message?.content || reply.content;
    if (Array.isArray(content)) {
      for (const block of content) {
        if (block.text) answer.text += block.text;
        if (block.toolUse) answer.tool_calls.push({ name: block.toolUse.name, input: block.toolUse.input });
        if (block.type === "tool_use") answer.tool_calls.push({ name: block.name, input: block.input });
      }
    }
    for (const key of ["generation", "outputText", "completion"]) if (typeof reply[key] === "string") answer.text += reply[key];
    if (Array.isArray(reply.results)) answer.text += reply.results.map((r) => r.outputText || "").join("");
    if (reply.stopReason) answer.stop_reason = reply.stopReason;
  }
  return answer;
}

function safeJson(text) {
  try { return JSON.parse(text || "{}"); } catch { return {}; }
}

const STOP_REASONS = ["end_turn", "tool_use", "max_tokens", "stop_sequence", "guardrail_intervened", "content_filtered"];

function asRule(call) {
  const match = {};
  if (call.modelId) match.model = call.modelId;
  const said = lastUserText(call.request);
  if (said) match.contains = said.length > 200 ? said.slice(-200) : said;
  let respond;
  if (call.error && !call.error.inStream) {
    respond = { error: { code: call.error.code, message: call.error.message } };
  } else {
    const answer = answerOf(call);
    respond = { text: answer.text };
    if (answer.tool_calls.length) respond.tool_calls = answer.tool_calls;
    if (STOP_REASONS.includes(answer.stop_reason)) respond.stop_reason = answer.stop_reason;
    if (call.inputTokens != null) respond.usage = { input_tokens: call.inputTokens, output_tokens: call.outputTokens ?? 0 };
  }
  return { name: `recorded call ${call.seq}`.slice(0, 64), match, respond, times: 1 };
}

async function addRule(call) {
  try {
    await api("/rules", { method: "POST", body: JSON.stringify(asRule(call)) });
    toast("Rule added: the next matching call gets this answer.");
    if (!document.getElementById("view-setup").classList.contains("hidden")) loadSetup();
  } catch (error) {
    toast(`Could not add the rule: ${error.message}`);
  }
}

const METHODS = {
  Converse: "converse", ConverseStream: "converse_stream", InvokeModel: "invoke_model",
  InvokeModelWithResponseStream: "invoke_model_with_response_stream", CountTokens: "count_tokens",
  ApplyGuardrail: "apply_guardrail",
};

function asBoto3(call) {
  const method = METHODS[call.operation] || call.operation.replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
  const lines = [
    "import json",
    "import boto3",
    "",
    `client = boto3.client("bedrock-runtime", endpoint_url=${JSON.stringify(location.origin)}, region_name="us-east-1")`,
  ];
  // JSON.stringify of a string is also a valid Python string literal.
  const literal = JSON.stringify(JSON.stringify(call.request ?? {}));
  if (call.operation.startsWith("InvokeModel")) {
    lines.push(`body = ${literal}`, `response = client.${method}(modelId=${JSON.stringify(call.modelId)}, body=body)`);
  } else {
    const args = call.modelId ? `modelId=${JSON.stringify(call.modelId)}, ` : "";
    lines.push(`request = json.loads(${literal})`, `response = client.${method}(${args}**request)`);
  }
  return lines.join("\n");
}

async function copy(output, text) {
  output.textContent = text;
  output.classList.remove("hidden");
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied to the clipboard.");
  } catch {
    toast("Shown below: this browser did not allow copying.");
  }
}

// ---- rules, faults, limits, settings -------------------------------------------------------------------------

async function loadSetup() {
  const show = (id, value) => { document.getElementById(id).textContent = JSON.stringify(value, null, 2); };
  try {
    const [rules, faults, limits, settings] = await Promise.all(
      ["/rules", "/faults", "/rate-limits", "/settings"].map((path) => api(path)));
    show("setup-rules", rules.rules);
    show("setup-faults", faults.faults);
    show("setup-limits", limits.limits);
    show("setup-settings", settings);
  } catch (error) {
    toast(`Could not read the set-up: ${error.message}`);
  }
}

function wire() {
  for (const id of ["f-operation", "f-model", "f-status", "f-text"]) {
    document.getElementById(id).addEventListener("input", renderList);
  }
  document.getElementById("filters").addEventListener("submit", (event) => event.preventDefault());
  document.getElementById("pause").addEventListener("click", (event) => {
    state.paused = !state.paused;
    event.target.textContent = state.paused ? "Resume" : "Pause";
    const live = document.getElementById("live");
    live.className = state.paused ? "live paused" : "live";
    live.textContent = state.paused ? "paused" : "live";
  });
  document.getElementById("clear-log").addEventListener("click", async () => {
    await api("/invocations", { method: "DELETE" });
    state.calls.clear();
    showDetail(null);
    renderList();
    toast("Invocation log cleared.");
  });
  for (const button of document.querySelectorAll("[data-clear]")) {
    button.addEventListener("click", async () => {
      await api(`/${button.dataset.clear}`, { method: "DELETE" });
      loadSetup();
      toast(`${button.dataset.clear} cleared.`);
    });
  }
  document.getElementById("reset").addEventListener("click", async () => {
    await api("/reset", { method: "POST" });
    state.calls.clear();
    showDetail(null);
    renderList();
    loadSetup();
    toast("Back to the start-up state.");
  });
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".tab")) other.classList.toggle("active", other === tab);
      for (const view of document.querySelectorAll(".view")) view.classList.toggle("hidden", view.id !== `view-${tab.dataset.view}`);
      if (tab.dataset.view === "setup") loadSetup();
    });
  }
}

readToken();
wire();
poll();
setInterval(poll, POLL_MS);

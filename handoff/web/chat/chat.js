// The customer chat widget. The conversation's customer token is kept in sessionStorage (this
// tab only) and sent as an Authorization header, never in a URL. Live replies come from
// GET /conversations/{id}/events read with fetch (EventSource cannot send that header); the
// stream resumes after a drop with Last-Event-ID. Only customer, bot and agent messages are
// ever shown: the customer's stream carries no system or internal note, and any other kind is
// dropped here too.
import { el, fill, readEvents } from "/web/common/dom.js";

const SHOWN = new Set(["customer", "bot", "agent"]);
const store = window.sessionStorage;
const state = {
  id: store.getItem("handoff.chat.id"),
  token: store.getItem("handoff.chat.token"),
  customer: store.getItem("handoff.chat.customer") || `visitor-${crypto.randomUUID()}`,
  status: null,
  seqs: new Set(),
  stream: null,
};
store.setItem("handoff.chat.customer", state.customer);

const $ = (id) => document.getElementById(id);
const messages = $("messages");

function showError(text) {
  const box = $("widget-error");
  box.textContent = text;
  box.hidden = !text;
}

async function call(method, path, body, extraHeaders = {}) {
  const headers = { "Content-Type": "application/json", ...extraHeaders };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const detail = data && typeof data.detail === "string" ? data.detail : `error ${response.status}`;
    throw Object.assign(new Error(detail), { status: response.status });
  }
  return { status: response.status, data };
}

function addMessage(entry) {
  if (!SHOWN.has(entry.kind) || state.seqs.has(entry.seq)) return;
  state.seqs.add(entry.seq);
  const who = entry.kind === "customer" ? "You" : entry.kind === "bot" ? "Assistant" : entry.author;
  const item = el(
    "li",
    { class: `message from-${entry.kind}`, "data-seq": entry.seq, "data-kind": entry.kind },
    el("span", { class: "author" }, who),
    el("p", { class: "text" }, entry.text),
  );
  const after = [...messages.children].find((node) => Number(node.dataset.seq) > entry.seq);
  messages.insertBefore(item, after || null);
  item.scrollIntoView({ block: "nearest" });
}

const STATUS_TEXT = {
  bot: "You are chatting with our assistant.",
  waiting: "A member of our team will be with you shortly.",
  human: "You are chatting with our team.",
  closed: "This conversation is closed. Write again to start a new one.",
};

function setStatus(status) {
  state.status = status;
  $("widget-status").textContent = STATUS_TEXT[status] || "We usually answer at once.";
  $("talk-to-person").hidden = status !== "bot";
  $("rating").hidden = !(status === "closed" && store.getItem(`handoff.chat.rated.${state.id}`) === null);
}

function remember(id, token) {
  state.id = id;
  state.token = token;
  store.setItem("handoff.chat.id", id);
  store.setItem("handoff.chat.token", token);
}

async function follow() {
  // One stream at a time: a new conversation (after a close) replaces the old stream.
  if (state.stream) state.stream.abort();
  const controller = new AbortController();
  state.stream = controller;
  let lastId = null;
  const id = state.id;
  while (!controller.signal.aborted && id === state.id) {
    try {
      const headers = { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await fetch(`/conversations/${encodeURIComponent(id)}/events`, {
        headers,
        signal: controller.signal,
      });
      if (response.status === 401 || response.status === 404) return;
      await readEvents(response, (name, data, eventId) => {
        if (eventId) lastId = eventId;
        if (name === "message") addMessage(data.entry);
        else if (name === "status") setStatus(data.status);
      });
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function send(text) {
  if (!state.id) {
    const { data } = await call(
      "POST",
      "/conversations",
      { customer_id: state.customer, text },
      { "Idempotency-Key": crypto.randomUUID() },
    );
    remember(data.id, data.customer_token);
    data.messages.forEach(addMessage);
    setStatus(data.status);
    follow();
    return;
  }
  const { status, data } = await call(
    "POST",
    `/conversations/${encodeURIComponent(state.id)}/messages`,
    { text },
    { "Idempotency-Key": crypto.randomUUID() },
  );
  if (status === 201) {
    // The conversation was closed: this message started a new one, linked to it.
    remember(data.id, data.customer_token);
    state.seqs.clear();
    fill(messages);
    data.messages.forEach(addMessage);
    setStatus(data.status);
    follow();
  }
}

// Messages go out one at a time, in the order written, however fast the customer types.
let queue = Promise.resolve();

$("compose").addEventListener("submit", (event) => {
  event.preventDefault();
  const box = $("compose-text");
  const text = box.value.trim();
  if (!text) return;
  box.value = "";
  queue = queue.then(async () => {
    try {
      await send(text);
      showError("");
    } catch (error) {
      showError(`Your message was not sent: ${error.message}`);
      if (!box.value) box.value = text;
    }
  });
});

$("compose-text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("compose").requestSubmit();
  }
});

$("talk-to-person").addEventListener("click", async () => {
  try {
    await call("POST", `/conversations/${encodeURIComponent(state.id)}/request-human`);
    setStatus("waiting");
    showError("");
  } catch (error) {
    showError(`We could not reach the team: ${error.message}`);
  }
});

for (let score = 1; score <= 5; score++) {
  const id = `score-${score}`;
  $("rating-scores").append(
    el("input", { type: "radio", name: "score", id, value: score, required: true }),
    el("label", { for: id }, `${score}`),
  );
}

$("rating-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const chosen = document.querySelector("input[name=score]:checked");
  const comment = $("rating-comment").value.trim();
  try {
    await call("POST", `/conversations/${encodeURIComponent(state.id)}/rating`, {
      score: Number(chosen.value),
      comment: comment || null,
    });
    store.setItem(`handoff.chat.rated.${state.id}`, chosen.value);
    fill($("rating"), el("p", { role: "status" }, "Thank you for your rating."));
  } catch (error) {
    showError(`Your rating was not sent: ${error.message}`);
  }
});

if (state.id && state.token) {
  follow();
}

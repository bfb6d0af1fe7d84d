// The agent console. Signed in by a session cookie (HttpOnly, SameSite=Strict) that
// POST /session sets from the agent token: the page never keeps the token, and the live stream
// (EventSource, which cannot send headers) is signed in by the same cookie. Every command
// carries the X-Handoff-Console header the API asks of cookie-signed commands.
// All text goes into the page with textContent (see dom.js): nothing a customer writes can run.
import { duration, el, fill, time } from "/web/common/dom.js";

const $ = (id) => document.getElementById(id);
const STATUS_LABEL = { bot: "Bot", waiting: "Waiting", human: "With an agent", closed: "Closed" };
const OUTCOME_LABEL = { resolved: "Resolved", not_resolved: "Not resolved" };
const MESSAGE_KINDS = new Set(["customer", "bot", "agent"]);

const state = {
  me: null,
  waiting: [],
  mine: [],
  openId: null,
  open: null,
  unread: {},
  seen: {},
  source: null,
  followed: null,
  team: [],
  history: { cursors: [null], page: 0, next: null },
  suggest: freshSuggestions(),
};

function freshSuggestions() {
  // Suggested replies for the open conversation (see "Suggested replies" below). `key` says what
  // they were asked for; `hidden` the ids the agent dismissed or used, per conversation; `using`
  // the suggestion last put into the reply box.
  return { key: null, conversationId: null, items: [], hidden: {}, using: null };
}

class ApiError extends Error {
  constructor(status, detail, holder) {
    super(detail);
    this.status = status;
    this.holder = holder;
  }
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Handoff-Console": "1" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401 && path !== "/session") signedOut();
    const detail = data && typeof data.detail === "string" ? data.detail : `error ${response.status}`;
    throw new ApiError(response.status, detail, data && data.holder);
  }
  return data;
}

function say(text) {
  $("app-status").textContent = text;
}

function showError(text) {
  const box = $("app-error");
  box.textContent = text || "";
  box.hidden = !text;
}

async function act(what, action) {
  try {
    const result = await action();
    showError("");
    say(what);
    return result;
  } catch (error) {
    showError(error.message.charAt(0).toUpperCase() + error.message.slice(1));
    return undefined;
  }
}

// --- Signing in and out.

function signedOut() {
  if (state.source) state.source.close();
  state.source = null;
  state.followed = null;
  state.me = null;
  // Nothing of the last agent's view stays for the next one to sign in on this page.
  Object.assign(state, { waiting: [], mine: [], openId: null, open: null, unread: {}, seen: {} });
  state.suggest = freshSuggestions();
  for (const view of [$("conversation"), $("history-view")]) {
    fill(view);
    delete view.dataset.rendered;
  }
  $("app").hidden = true;
  $("sign-in").hidden = false;
  $("token").focus();
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("sign-in-error");
  try {
    const session = await api("POST", "/session", { token: $("token").value });
    $("token").value = "";
    error.hidden = true;
    start(session.agent);
  } catch (e) {
    error.textContent = e.status === 401 ? "This token is not an agent's token." : e.message;
    error.hidden = false;
  }
});

$("sign-out").addEventListener("click", async () => {
  await api("DELETE", "/session").catch(() => undefined);
  signedOut();
});

function start(agent) {
  state.me = agent;
  $("agent-name").textContent = agent.name;
  $("sign-in").hidden = true;
  $("app").hidden = false;
  loadTeam();
  showTab();
  refreshLive();
}

// --- Tabs.

const TABS = ["live", "conversations", "statistics", "team"];

function showTab() {
  const wanted = location.hash.slice(1);
  const tab = TABS.includes(wanted) ? wanted : "live";
  for (const name of TABS) {
    $(`tab-${name}`).hidden = name !== tab;
    const link = document.querySelector(`[data-tab=${name}]`);
    if (name === tab) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (tab === "conversations") loadHistory(state.history.page);
  if (tab === "statistics") loadStats();
  if (tab === "team") loadTeam();
}

window.addEventListener("hashchange", () => state.me && showTab());

// --- Live support: the two columns, kept live by the stream.

let refreshing = null;
function refreshLive() {
  // Coalesce bursts of events into one read of both columns.
  if (refreshing) return refreshing;
  refreshing = new Promise((resolve) => setTimeout(resolve, 50))
    .then(() => Promise.all([api("GET", "/live/waiting"), api("GET", "/live/mine")]))
    .then(([waiting, mine]) => {
      state.waiting = waiting.conversations.map((c) => ({ ...c, seenAt: Date.now() }));
      state.mine = mine.conversations;
      renderColumns();
      follow();
    })
    .catch(() => undefined)
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

function follow() {
  // The stream carries entries of the conversations it names: mine (for unread counts) and the open one.
  const ids = [...new Set([...state.mine.map((c) => c.conversation_id), state.openId].filter(Boolean))].sort();
  const key = ids.join(",");
  if (state.source && state.followed === key) return;
  if (state.source) state.source.close();
  state.followed = key;
  const query = new URLSearchParams(ids.map((id) => ["conversation", id]));
  const source = new EventSource(`/live/events${ids.length ? `?${query}` : ""}`);
  state.source = source;
  source.addEventListener("snapshot", () => {
    refreshLive();
    if (state.openId) refreshOpen();
  });
  source.addEventListener("status", (event) => {
    const data = JSON.parse(event.data);
    refreshLive();
    if (data.conversation_id === state.openId) refreshOpen();
  });
  const onEntry = (event) => {
    const data = JSON.parse(event.data);
    if (data.conversation_id === state.openId && state.open) {
      addEntry(data.entry);
    } else if (data.entry.kind === "customer" && data.entry.seq > (state.seen[data.conversation_id] || 0)) {
      state.unread[data.conversation_id] = (state.unread[data.conversation_id] || 0) + 1;
      state.seen[data.conversation_id] = data.entry.seq;
      renderColumns();
    }
  };
  source.addEventListener("message", onEntry);
  source.addEventListener("note", onEntry);
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      // The session ended (401) or the server went away: check which.
      state.source = null;
      setTimeout(
        () => state.me && api("GET", "/session").then((s) => (s.agent ? follow() : signedOut()), () => undefined),
        2000,
      );
    }
  });
}

function waitedSeconds(c) {
  return c.waiting_seconds + (Date.now() - c.seenAt) / 1000;
}

function renderColumns() {
  $("waiting-count").textContent = state.waiting.length;
  $("mine-count").textContent = state.mine.length;
  fill(
    $("waiting"),
    state.waiting.length ? null : el("li", { class: "muted empty" }, "Nobody is waiting."),
    state.waiting.map((c) =>
      el(
        "li",
        { "data-conversation": c.conversation_id },
        el(
          "button",
          {
            type: "button",
            class: `queue-item${c.conversation_id === state.openId ? " current" : ""}`,
            "aria-current": c.conversation_id === state.openId ? "true" : null,
            onclick: () => openConversation(c.conversation_id),
          },
          el("span", { class: "who" }, c.customer_id),
          el("span", { class: "waited", "data-waited": c.conversation_id }, `waiting ${duration(waitedSeconds(c))}`),
          c.overdue ? el("span", { class: "badge overdue" }, "Overdue") : null,
        ),
      ),
    ),
  );
  fill(
    $("mine"),
    state.mine.length ? null : el("li", { class: "muted empty" }, "You hold no conversation."),
    state.mine.map((c) => {
      const unread = state.unread[c.conversation_id] || 0;
      return el(
        "li",
        { "data-conversation": c.conversation_id },
        el(
          "button",
          {
            type: "button",
            class: `queue-item${c.conversation_id === state.openId ? " current" : ""}`,
            "aria-current": c.conversation_id === state.openId ? "true" : null,
            onclick: () => openConversation(c.conversation_id),
          },
          el("span", { class: "who" }, c.customer_id),
          el("span", { class: "muted" }, `since ${time(c.assigned_at)}`),
          unread ? el("span", { class: "badge unread", "data-unread": unread }, `${unread} unread`) : null,
          c.overdue ? el("span", { class: "badge overdue" }, "Overdue") : null,
        ),
      );
    }),
  );
}

setInterval(() => {
  for (const c of state.waiting) {
    const node = document.querySelector(`[data-waited="${CSS.escape(c.conversation_id)}"]`);
    if (node) node.textContent = `waiting ${duration(waitedSeconds(c))}`;
  }
}, 1000);
setInterval(() => state.me && refreshLive(), 15000); // overdue marks come from the timers

// --- The conversation view.

async function openConversation(id) {
  if (!state.open || state.open.conversation_id !== id) {
    // Show no conversation until this one arrives: a button clicked meanwhile must not act on
    // the one shown before (a quick "Take over" took the previous conversation).
    const view = $("conversation");
    state.open = null;
    delete view.dataset.rendered;
    view.setAttribute("aria-busy", "true");
    view.replaceChildren(el("p", { class: "muted", role: "status" }, "Opening the conversation…"));
  }
  state.openId = id;
  state.unread[id] = 0;
  location.hash !== "#live" && (location.hash = "#live");
  await refreshOpen();
  renderColumns();
  follow();
  const heading = $("conversation").querySelector("h2");
  if (heading) heading.focus();
}

async function refreshOpen() {
  const id = state.openId;
  try {
    const detail = await api("GET", `/conversations/${encodeURIComponent(id)}`);
    if (id !== state.openId) return;
    state.open = detail;
    const last = detail.transcript.reduce((m, e) => Math.max(m, e.seq), 0);
    state.seen[id] = Math.max(state.seen[id] || 0, last);
    renderConversation($("conversation"), detail, true);
    $("conversation").removeAttribute("aria-busy");
  } catch (error) {
    showError(error.message);
  }
}

function entryNode(entry) {
  if (entry.kind === "system") {
    return el(
      "li",
      { class: "entry note-system", "data-seq": entry.seq, "data-kind": entry.kind },
      el("span", { class: "text" }, entry.text),
      el("time", { class: "muted", datetime: entry.at }, ` · ${time(entry.at)}`),
    );
  }
  if (entry.kind === "internal") {
    return el(
      "li",
      { class: "entry note-internal", "data-seq": entry.seq, "data-kind": entry.kind },
      el("span", { class: "author" }, `Internal note · ${entry.author}`),
      el("p", { class: "text" }, entry.text),
    );
  }
  const who = entry.kind === "customer" ? "Customer" : entry.kind === "bot" ? "Bot" : entry.author;
  return el(
    "li",
    { class: `entry message from-${entry.kind}`, "data-seq": entry.seq, "data-kind": entry.kind },
    el("span", { class: "author" }, who),
    el("time", { class: "muted", datetime: entry.at }, ` · ${time(entry.at)}`),
    el("p", { class: "text" }, entry.text),
  );
}

function addEntry(entry) {
  if (!state.open || state.open.transcript.some((e) => e.seq === entry.seq)) return;
  state.open.transcript.push(entry);
  state.open.transcript.sort((a, b) => a.seq - b.seq);
  state.seen[state.openId] = Math.max(state.seen[state.openId] || 0, entry.seq);
  const view = $("conversation");
  const list = view.querySelector(".transcript");
  if (!list) return;
  const parts = (view.dataset.rendered || "").split("|");
  if (parts.length === 6 && Number(parts[4]) < entry.seq) {
    parts[4] = String(entry.seq);
    view.dataset.rendered = parts.join("|");
  }
  const node = entryNode(entry);
  const after = [...list.children].find((n) => Number(n.dataset.seq) > entry.seq);
  list.insertBefore(node, after || null);
  // Only an agent following the end is moved (an entry placed earlier by its seq, say a note
  // recorded late, must not pull the view away from the latest messages).
  if (list.dataset.following !== "no") list.scrollTop = list.scrollHeight;
  if (entry.kind === "customer") loadSuggestions();
}

function renderConversation(container, c, live) {
  // Re-render only when something shown changed, and keep the agent's place: the focused
  // control and a reply being written survive an update (a keyboard user never loses focus).
  const last = c.transcript.length ? c.transcript[c.transcript.length - 1].seq : 0;
  const key = [c.conversation_id, c.status, c.agent && c.agent.id, c.outcome, last, live].join("|");
  if (container.dataset.rendered === key) return;
  container.dataset.rendered = key;
  const focused = container.contains(document.activeElement) ? document.activeElement : null;
  const focusLabel = focused && (focused.getAttribute("aria-label") || focused.textContent);
  const draft = container.querySelector("#reply-text");
  const draftText = draft && draft.dataset.conversation === c.conversation_id ? draft.value : "";
  // The latest entries are what an agent opens a conversation for: start at the bottom, and
  // keep the place of an agent who scrolled up to read when the same conversation redraws.
  const oldList = container.querySelector(".transcript");
  const sameConversation = (container.dataset.shown || "") === c.conversation_id;
  const keepScroll =
    sameConversation && oldList && oldList.dataset.following === "no" ? oldList.scrollTop : null;
  container.dataset.shown = c.conversation_id;
  drawConversation(container, c, live);
  const list = container.querySelector(".transcript");
  if (list) {
    list.scrollTop = keepScroll ?? list.scrollHeight;
    followEnd(list);
  }
  if (container.id === "conversation") {
    renderSuggestions();
    loadSuggestions();
  }
  const reply = container.querySelector("#reply-text");
  if (reply) {
    reply.dataset.conversation = c.conversation_id;
    reply.value = draftText;
  }
  if (focused && focused.id === "reply-text" && reply) reply.focus();
  else if (focusLabel) {
    const again = [...container.querySelectorAll("button")].find(
      (b) => (b.getAttribute("aria-label") || b.textContent) === focusLabel,
    );
    if (again) again.focus();
  }
}

function atEnd(list) {
  return list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
}

// A transcript shown from its end stays at its end when what is around it changes its height
// (the suggested replies appearing under it), as chat views do; one scrolled up stays put.
// Whether it follows is the agent's choice, made by scrolling (a height change alone fires no
// scroll event), and is kept across redraws of the same conversation.
function followEnd(list) {
  list.dataset.following = atEnd(list) ? "yes" : "no";
  list.addEventListener("scroll", () => {
    list.dataset.following = atEnd(list) ? "yes" : "no";
  });
  new ResizeObserver(() => {
    if (list.dataset.following === "yes") list.scrollTop = list.scrollHeight;
  }).observe(list);
}

function drawConversation(container, c, live) {
  const mine = c.agent && c.agent.id === state.me.id;
  const open = c.status !== "closed";
  const actions = [];
  if (live && open && !mine) {
    actions.push(el("button", { type: "button", onclick: () => takeOver(c.conversation_id) }, "Take over"));
  }
  if (live && mine && open) {
    actions.push(
      el("button", { type: "button", class: "secondary", onclick: () => openTransfer(c.conversation_id) }, "Transfer"),
      el("button", { type: "button", class: "secondary", onclick: () => release(c.conversation_id) }, "Return to queue"),
      el("button", { type: "button", class: "danger", onclick: () => openClose(c.conversation_id) }, "Close conversation"),
    );
  }
  if (live && open) {
    actions.push(el("button", { type: "button", class: "secondary", onclick: () => openNote(c.conversation_id) }, "Internal note"));
  }
  const handBackButton =
    live && mine && open
      ? el(
          "button",
          {
            type: "button",
            class: "icon hand-back",
            "aria-label": "Hand back conversation",
            title: "Hand back conversation",
            onclick: () => handBack(c.conversation_id),
          },
          el("span", { "aria-hidden": "true" }, "↩"),
        )
      : null;
  const status = [STATUS_LABEL[c.status] || c.status];
  if (c.agent && c.status === "human") status.push(`held by ${c.agent.name}`);
  if (c.outcome) status.push(OUTCOME_LABEL[c.outcome] || c.outcome);
  const previous = c.previous_conversation_id
    ? el(
        "p",
        { class: "continues" },
        "Continues ",
        el(
          "button",
          { type: "button", class: "link", onclick: () => showReadOnly(container, c.previous_conversation_id, live) },
          `conversation ${c.previous_conversation_id.slice(0, 8)}`,
        ),
      )
    : null;
  const closedLine = !open
    ? el(
        "p",
        { class: "closed-line", "data-outcome": c.outcome || "" },
        `Closed${c.outcome ? ` as ${(OUTCOME_LABEL[c.outcome] || c.outcome).toLowerCase()}` : ""}`,
        c.closed_by ? ` by ${c.closed_by.name}` : "",
        c.closed_at ? ` on ${time(c.closed_at)}` : "",
        ". Read only.",
      )
    : null;
  const composer =
    live && mine && open
      ? el(
          "form",
          { class: "reply", onsubmit: (event) => sendReply(event, c.conversation_id) },
          el("label", { for: "reply-text", class: "visually-hidden" }, "Reply to the customer"),
          el("textarea", {
            id: "reply-text",
            rows: 3,
            maxlength: 10000,
            required: true,
            placeholder: "Reply to the customer…",
            oninput: forgetClearedSuggestion,
          }),
          el("button", { type: "submit" }, "Send reply"),
        )
      : null;
  fill(
    container,
    el(
      "div",
      { class: "topbar" },
      el(
        "div",
        { class: "title" },
        el("h2", { tabindex: "-1" }, `Conversation with ${c.customer_id}`),
        el("span", { class: "badge status", "data-status": c.status }, status.join(" · ")),
      ),
      el("div", { class: "actions" }, actions),
      handBackButton,
    ),
    previous,
    closedLine,
    el("ol", { class: "transcript", "aria-label": "Transcript" }, c.transcript.map(entryNode)),
    composer
      ? el(
          "section",
          { id: "suggestions", class: "suggestions", "aria-labelledby": "suggestions-title", hidden: true },
          el("h3", { id: "suggestions-title" }, "Suggested replies"),
          el("ol", { class: "suggestion-list" }),
        )
      : null,
    composer,
  );
}

async function showReadOnly(container, id, live) {
  const detail = await act("", () => api("GET", `/conversations/${encodeURIComponent(id)}`));
  if (detail) renderConversation(container, detail, live && detail.status !== "closed");
}

function dropFromMine(id) {
  state.mine = state.mine.filter((c) => c.conversation_id !== id);
  renderColumns();
}

async function takeOver(id) {
  const done = await act("You took the conversation over.", () => api("POST", `/conversations/${encodeURIComponent(id)}/takeover`));
  if (done) {
    state.waiting = state.waiting.filter((c) => c.conversation_id !== id);
    refreshLive();
  }
  await refreshOpen();
}

async function handBack(id) {
  const done = await act("The conversation went back to the bot.", () => api("POST", `/conversations/${encodeURIComponent(id)}/hand-back`));
  if (done) dropFromMine(id);
  await refreshOpen();
}

async function release(id) {
  const done = await act("The conversation went back to the Waiting column.", () =>
    api("POST", `/conversations/${encodeURIComponent(id)}/release`),
  );
  if (done) dropFromMine(id);
  await refreshOpen();
  refreshLive();
}

async function sendReply(event, id) {
  event.preventDefault();
  const box = event.target.querySelector("textarea");
  const text = box.value.trim();
  if (!text) return;
  const done = await act("Reply sent.", () => api("POST", `/conversations/${encodeURIComponent(id)}/replies`, { text }));
  if (done) {
    const using = state.suggest.using;
    if (using && using.conversationId === id) {
      // Sent as it was put in the box: used; changed first: edited.
      state.suggest.using = null;
      hideSuggestion(id, using.id);
      renderSuggestions();
      feedback(id, using.id, text === using.text.trim() ? "used" : "edited");
    }
    box.value = "";
    await refreshOpen();
    const again = $("reply-text");
    if (again) again.focus();
  }
}

// --- Suggested replies (AI assist): for the conversation the agent holds, shown above the reply box.
// Asked for again when a customer message arrives (pushed by the stream); "Use" puts a text into
// the reply box for editing, "Dismiss" hides it. What the agent made of it goes to the feedback
// route: "used" if sent unchanged, "edited" if changed before sending, "dismissed".

const SOURCE_LABEL = { knowledge_base: "From the knowledge base", past_reply: "From a past resolved conversation" };

function suggestionsKey() {
  // Suggestions depend on the customer's latest messages: ask again when one arrives.
  const c = state.open;
  if (!c || c.conversation_id !== state.openId || c.status !== "human" || !c.agent || c.agent.id !== state.me.id) {
    return null;
  }
  if (!document.getElementById("suggestions")) return null;
  const lastCustomer = c.transcript.reduce((m, e) => (e.kind === "customer" ? Math.max(m, e.seq) : m), 0);
  return `${c.conversation_id}|${c.agent.id}|${lastCustomer}`;
}

async function loadSuggestions() {
  const key = suggestionsKey();
  const s = state.suggest;
  if (key === s.key) return;
  s.key = key;
  if (key === null) {
    s.items = [];
    renderSuggestions();
    return;
  }
  const id = state.openId;
  let data = null;
  try {
    data = await api("GET", `/conversations/${encodeURIComponent(id)}/suggestions`);
  } catch {
    data = null; // no longer held, or closed meanwhile: the view redraws without the panel
  }
  if (s !== state.suggest || s.key !== key) return; // signed out, or asked again since
  s.conversationId = id;
  s.items = data ? data.suggestions : [];
  renderSuggestions();
  const shown = visibleSuggestions().length;
  if (shown) say(shown === 1 ? "1 suggested reply." : `${shown} suggested replies.`);
}

function visibleSuggestions() {
  const s = state.suggest;
  const hidden = s.hidden[s.conversationId] || new Set();
  return s.conversationId === state.openId ? s.items.filter((item) => !hidden.has(item.id)) : [];
}

function renderSuggestions() {
  const panel = document.getElementById("suggestions");
  if (!panel) return;
  const items = visibleSuggestions();
  // A refresh keeps a keyboard user's place: the same button of the same suggestion if it is still there.
  const focused = panel.contains(document.activeElement) ? document.activeElement : null;
  const focusedItem = focused && focused.closest("[data-suggestion]");
  const focusedAt = focusedItem && [focusedItem.dataset.suggestion, focused.textContent];
  panel.hidden = items.length === 0;
  fill(
    panel.querySelector("ol"),
    items.map((item, i) =>
      el(
        "li",
        { class: "suggestion", "data-suggestion": item.id, "data-source": item.source.kind },
        el("p", { class: "text", id: `suggestion-text-${i}` }, item.text),
        el("span", { class: "source muted" }, SOURCE_LABEL[item.source.kind] || "Suggested"),
        el(
          "span",
          { class: "suggestion-actions" },
          el(
            "button",
            {
              type: "button",
              "aria-label": `Use suggestion ${i + 1}`,
              "aria-describedby": `suggestion-text-${i}`,
              onclick: () => useSuggestion(item),
            },
            "Use",
          ),
          el(
            "button",
            {
              type: "button",
              class: "secondary",
              "aria-label": `Dismiss suggestion ${i + 1}`,
              "aria-describedby": `suggestion-text-${i}`,
              onclick: () => dismissSuggestion(item),
            },
            "Dismiss",
          ),
        ),
      ),
    ),
  );
  if (focusedAt) {
    const again = [...panel.querySelectorAll("[data-suggestion]")].find((n) => n.dataset.suggestion === focusedAt[0]);
    const button = again && [...again.querySelectorAll("button")].find((b) => b.textContent === focusedAt[1]);
    const target = button || panel.querySelector("button") || $("reply-text");
    if (target) target.focus();
  }
}

function useSuggestion(item) {
  const box = $("reply-text");
  if (!box) return;
  box.value = item.text;
  state.suggest.using = { conversationId: state.openId, id: item.id, text: item.text };
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
  say("The suggestion is in the reply box: edit it or send it.");
}

function forgetClearedSuggestion(event) {
  // An emptied reply box is no longer a suggestion being edited.
  if (!event.target.value.trim()) state.suggest.using = null;
}

function hideSuggestion(conversationId, id) {
  const hidden = state.suggest.hidden;
  (hidden[conversationId] = hidden[conversationId] || new Set()).add(id);
}

async function dismissSuggestion(item) {
  const id = state.openId;
  const list = document.querySelector("#suggestions ol");
  const position = list ? [...list.children].findIndex((n) => n.dataset.suggestion === item.id) : -1;
  hideSuggestion(id, item.id);
  if (state.suggest.using && state.suggest.using.id === item.id) state.suggest.using = null;
  renderSuggestions();
  // Keep the keyboard user's place: the next suggestion's Use button, else the reply box.
  const buttons = document.querySelectorAll("#suggestions li .suggestion-actions button:first-child");
  const next = buttons[Math.min(Math.max(position, 0), buttons.length - 1)] || $("reply-text");
  if (next) next.focus();
  say("Suggestion dismissed.");
  await feedback(id, item.id, "dismissed");
}

async function feedback(conversationId, suggestionId, action) {
  try {
    await api(
      "POST",
      `/conversations/${encodeURIComponent(conversationId)}/suggestions/${encodeURIComponent(suggestionId)}/feedback`,
      { action },
    );
  } catch (error) {
    showError(`The suggestion feedback was not recorded: ${error.message}`);
  }
}

function dialog(id, onConfirm) {
  const box = $(id);
  const form = box.querySelector("form");
  form.reset();
  form.onsubmit = async (event) => {
    event.preventDefault();
    box.close();
    await onConfirm(new FormData(form));
  };
  box.querySelector("[data-cancel]").onclick = () => box.close();
  box.showModal();
}

function openClose(id) {
  dialog("close-dialog", async (data) => {
    const outcome = data.get("outcome");
    const done = await act("The conversation is closed.", () =>
      api("POST", `/conversations/${encodeURIComponent(id)}/close`, { outcome }),
    );
    if (done) dropFromMine(id);
    await refreshOpen();
  });
}

function openTransfer(id) {
  const select = $("transfer-agent");
  fill(
    select,
    state.team.filter((m) => m.agent.id !== state.me.id).map((m) => el("option", { value: m.agent.id }, `${m.agent.name} (${m.status}, ${m.holding} of ${m.capacity})`)),
  );
  dialog("transfer-dialog", async (data) => {
    const note = String(data.get("note") || "").trim();
    const done = await act("The conversation was transferred.", () =>
      api("POST", `/conversations/${encodeURIComponent(id)}/transfer`, { agent_id: data.get("agent"), note: note || null }),
    );
    if (done) dropFromMine(id);
    await refreshOpen();
    refreshLive();
  });
}

function openNote(id) {
  dialog("note-dialog", async (data) => {
    const text = String(data.get("text") || "").trim();
    if (!text) return;
    await act("Internal note added.", () => api("POST", `/conversations/${encodeURIComponent(id)}/notes`, { text }));
    await refreshOpen();
  });
}

// --- Conversations tab: the history.

function historyQuery(cursor) {
  const form = new FormData($("history-filters"));
  const query = new URLSearchParams();
  for (const name of ["status", "outcome", "agent"]) if (form.get(name)) query.set(name, form.get(name));
  if (form.get("since")) query.set("since", form.get("since"));
  if (form.get("until")) {
    // "To" is inclusive: the history's `until` is exclusive.
    const day = new Date(`${form.get("until")}T00:00:00Z`);
    day.setUTCDate(day.getUTCDate() + 1);
    query.set("until", day.toISOString().slice(0, 10));
  }
  query.set("limit", "20");
  if (cursor) query.set("cursor", cursor);
  return query;
}

async function loadHistory(page) {
  const h = state.history;
  const data = await act("", () => api("GET", `/conversations?${historyQuery(h.cursors[page])}`));
  if (!data) return;
  h.page = page;
  h.next = data.next_cursor;
  h.cursors[page + 1] = data.next_cursor;
  fill(
    $("history-rows"),
    data.conversations.length ? null : el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No conversation matches.")),
    data.conversations.map((c) =>
      el(
        "tr",
        { "data-conversation": c.conversation_id },
        el("td", {}, time(c.started_at)),
        el("td", {}, c.customer_id),
        el("td", {}, STATUS_LABEL[c.status] || c.status),
        el("td", {}, c.agent ? c.agent.name : c.closed_by ? c.closed_by.name : ""),
        el("td", { "data-outcome": c.outcome || "" }, c.outcome ? OUTCOME_LABEL[c.outcome] : ""),
        el(
          "td",
          {},
          el(
            "button",
            {
              type: "button",
              class: "secondary",
              "aria-label": `Open the conversation with ${c.customer_id} started ${time(c.started_at)}`,
              onclick: () => showReadOnly($("history-view"), c.conversation_id, false),
            },
            "Open",
          ),
        ),
      ),
    ),
  );
  $("history-next").disabled = !h.next;
  $("history-first").disabled = page === 0;
}

$("history-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  state.history = { cursors: [null], page: 0, next: null };
  loadHistory(0);
});
$("history-next").addEventListener("click", () => loadHistory(state.history.page + 1));
$("history-first").addEventListener("click", () => loadHistory(0));

// --- Team.

async function loadTeam() {
  const data = await api("GET", "/team").catch(() => null);
  if (!data) return;
  state.team = data.members;
  fill(
    $("team-rows"),
    data.members.map((m) =>
      el(
        "tr",
        { "data-agent": m.agent.id },
        el("th", { scope: "row" }, m.agent.name, m.agent.id === state.me.id ? " (you)" : ""),
        el("td", { class: `status-${m.status}` }, m.status),
        el("td", {}, String(m.holding)),
        el("td", {}, String(m.capacity)),
      ),
    ),
  );
  const mine = data.members.find((m) => m.agent.id === state.me.id);
  if (mine) $("my-status").value = mine.status;
  const filter = $("history-agent");
  const chosen = filter.value;
  fill(filter, el("option", { value: "" }, "Any"), data.members.map((m) => el("option", { value: m.agent.id }, m.agent.name)));
  filter.value = chosen;
}

$("my-status").addEventListener("change", async (event) => {
  try {
    const me = await api("PUT", "/agents/me/status", { status: event.target.value });
    say(`You are ${me.status}.`);
    showError("");
  } catch (error) {
    showError(error.message);
  }
  loadTeam();
});

// --- Statistics.

let chartLibrary = null;
const charts = [];

async function loadChartLibrary() {
  if (chartLibrary === null) {
    chartLibrary = import("/web/vendor/chart.umd.js").then(
      () => globalThis.Chart,
      () => undefined,
    );
  }
  return chartLibrary;
}

function percent(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value * 100)}%`;
}

function seconds(value) {
  return value === null || value === undefined ? "–" : duration(value);
}

async function loadStats() {
  const form = new FormData($("stats-filters"));
  const query = new URLSearchParams();
  if (form.get("since")) query.set("since", form.get("since"));
  if (form.get("until")) {
    const day = new Date(`${form.get("until")}T00:00:00Z`);
    day.setUTCDate(day.getUTCDate() + 1);
    query.set("until", day.toISOString().slice(0, 10));
  }
  const stats = await act("", () => api("GET", `/stats?${query}`));
  if (!stats) return;
  const t = stats.totals;
  const figure = (label, value, key) =>
    el("div", { class: "figure", "data-figure": key }, el("span", { class: "value" }, String(value)), el("span", { class: "label" }, label));
  fill(
    $("stats-figures"),
    figure("Conversations", t.conversations_started, "conversations_started"),
    figure("Resolved", t.closed_resolved, "closed_resolved"),
    figure("Not resolved", t.closed_not_resolved, "closed_not_resolved"),
    figure("Resolution rate", percent(t.resolution_rate), "resolution_rate"),
    figure("Bot alone", t.handled_by_bot_alone, "handled_by_bot_alone"),
    figure("With an agent", t.handled_with_agent, "handled_with_agent"),
    figure("Waiting p50", seconds(t.waiting_time.median_seconds), "waiting_p50"),
    figure("Waiting p90", seconds(t.waiting_time.p90_seconds), "waiting_p90"),
    figure("First response p50", seconds(t.first_response_time.median_seconds), "first_response_p50"),
    figure("First response p90", seconds(t.first_response_time.p90_seconds), "first_response_p90"),
  );
  fill(
    $("stats-agents"),
    stats.per_agent.length ? null : el("tr", {}, el("td", { colspan: 9, class: "muted" }, "No agent activity in this period.")),
    stats.per_agent.map((a) =>
      el(
        "tr",
        { "data-agent": a.agent_id },
        el("th", { scope: "row" }, a.agent_name),
        el("td", {}, String(a.take_overs)),
        el("td", {}, String(a.hand_backs)),
        el("td", {}, String(a.closed_resolved)),
        el("td", {}, String(a.closed_not_resolved)),
        el("td", {}, percent(a.resolution_rate)),
        el("td", {}, seconds(a.first_response_time.median_seconds)),
        el("td", {}, seconds(a.handling_time.median_seconds)),
        el("td", {}, String(a.messages)),
      ),
    ),
  );
  await drawCharts(stats.per_day);
}

async function drawCharts(days) {
  const Chart = await loadChartLibrary();
  $("charts-missing").hidden = Boolean(Chart);
  while (charts.length) charts.pop().destroy();
  if (!Chart) {
    fill($("stats-charts"));
    return;
  }
  const labels = days.map((d) => d.day);
  const specs = [
    {
      title: "Conversations per day",
      type: "bar",
      datasets: [
        { label: "Started", data: days.map((d) => d.conversations_started), backgroundColor: "#1f5fbf" },
        { label: "Resolved", data: days.map((d) => d.closed_resolved), backgroundColor: "#2e8540" },
        { label: "Not resolved", data: days.map((d) => d.closed_not_resolved), backgroundColor: "#a4161a" },
      ],
    },
    {
      title: "Resolution rate per day (%)",
      type: "line",
      datasets: [
        {
          label: "Resolution rate",
          data: days.map((d) => (d.resolution_rate === null ? null : Math.round(d.resolution_rate * 100))),
          borderColor: "#2e8540",
        },
      ],
    },
    {
      title: "Waiting and first response per day (seconds)",
      type: "line",
      datasets: [
        { label: "Waiting p50", data: days.map((d) => d.waiting_time.median_seconds), borderColor: "#1f5fbf" },
        { label: "Waiting p90", data: days.map((d) => d.waiting_time.p90_seconds), borderColor: "#6b8fd6" },
        { label: "First response p50", data: days.map((d) => d.first_response_time.median_seconds), borderColor: "#8a4b00" },
        { label: "First response p90", data: days.map((d) => d.first_response_time.p90_seconds), borderColor: "#c98a3d" },
      ],
    },
  ];
  const canvases = specs.map((spec) => el("canvas", { role: "img", "aria-label": `${spec.title}: ${labels.length} days` }));
  fill(
    $("stats-charts"),
    specs.map((spec, i) => el("figure", { class: "chart" }, el("figcaption", {}, spec.title), el("div", { class: "chart-box" }, canvases[i]))),
  );
  specs.forEach((spec, i) => {
    charts.push(
      new Chart(canvases[i], {
        type: spec.type,
        data: { labels, datasets: spec.datasets },
        options: { animation: false, responsive: true, maintainAspectRatio: false },
      }),
    );
  });
}

$("stats-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  loadStats();
});

// --- Start: signed in already (the cookie) or not.

api("GET", "/session").then(
  (session) => (session.agent ? start(session.agent) : signedOut()),
  () => signedOut(),
);

/* The clinic's chat widget: a small accessible chat on socket.io-client 4 (served by servers/page.py).
 *
 * Embed (README, "On the clinic's own website"): the socket.io client, then config.js and this file,
 * all from the chat server. Settings come only from window.CLINIC_CHAT_CONFIG (config.js, written by
 * the server): never from the page's address.
 *
 * What it does:
 * - a launcher button opens a panel (Escape or the close button closes it, focus goes back);
 * - messages are in a role="log" live region, so screen readers announce each new one politely;
 *   each says who wrote it ("The assistant:", "You:", or a named person from the clinic's team);
 * - quick-reply buttons are real <button>s in a labelled group, usable with the keyboard;
 * - an answer taken from the clinic's document (custom payload {"source": {"document", "sentences"}},
 *   sent after the answer's text) gets a "Where is this from?" button (aria-expanded) that shows
 *   the document's name and the quoted sentences it rests on; other replies have none;
 * - bot text is shown as text (line breaks kept); [title](https://...) links become links opening
 *   in a new tab; nothing the visitor or the bot sends is ever parsed as HTML;
 * - a typing indicator while the assistant answers (still, with prefers-reduced-motion);
 * - the conversation survives a reload: the session id, its resume proof and the messages shown
 *   are kept in localStorage (this browser only: the id is the visitor's key to the chat, and staff
 *   never see it). The stored id and proof are sent in session_request; the id and proof the
 *   server confirms in session_confirm are adopted (without the proof the server issues a new id);
 * - the first opening sends "/greet"; a broken connection is said plainly, with the clinic's phone;
 * - live chat with the clinic's team (channels/live.py): while the visitor waits for or chats with a
 *   person the subtitle says so and there are no "assistant is typing" dots; typing is reported
 *   (at most every few seconds) so staff see it.
 */
(function () {
  "use strict";

  var config = window.CLINIC_CHAT_CONFIG || {};
  var STORAGE_KEY = "clinic-chat";
  var MAX_STORED = 200;
  var TYPING_TIMEOUT_MS = 15000;
  var TYPING_REPORT_MS = 3000;
  var STAFF_TYPING_MS = 6000;  // "Anna is typing..." lasts this long after staff last typed  // how often the visitor's typing is reported to staff, at most
  var script = document.currentScript;
  var base = script && script.src ? script.src.replace(/[^/]*$/, "") : "";

  function el(tag, attributes, children) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      if (name === "text") node.textContent = attributes[name];
      else node.setAttribute(name, attributes[name]);
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  function load() {
    try {
      var stored = JSON.parse(window.localStorage.getItem(STORAGE_KEY) || "{}");
      return {
        sessionId: stored.sessionId || null, resume: stored.resume || null,
        messages: stored.messages || [], open: !!stored.open
      };
    } catch (error) {
      return { sessionId: null, resume: null, messages: [], open: false };
    }
  }

  var state = load();

  function save() {
    try {
      window.localStorage.setItem(STORAGE_KEY, JSON.stringify({
        sessionId: state.sessionId, resume: state.resume, messages: state.messages.slice(-MAX_STORED),
        open: state.open
      }));
    } catch (error) { /* private browsing: the chat still works, without surviving a reload */ }
  }

  // ---- the widget's elements ---------------------------------------------------------------
  if (base) {
    document.head.appendChild(el("link", { rel: "stylesheet", href: base + "chat.css" }));
  }
  var title = config.title || "Chat with us";
  var launcher = el("button", {
    type: "button", "class": "cc-launcher", "aria-expanded": "false", "aria-controls": "cc-panel",
    "aria-label": "Chat with the clinic's assistant"
  }, [el("span", { "class": "cc-launcher-icon", "aria-hidden": "true", text: "\u{1F4AC}" }),
      el("span", { "class": "cc-launcher-text", text: "Chat" })]);
  var closeButton = el("button", { type: "button", "class": "cc-close", "aria-label": "Close the chat" },
    [el("span", { "aria-hidden": "true", text: "\u00D7" })]);
  var heading = el("h2", { "class": "cc-title", id: "cc-title", text: title });
  var subtitleText = config.subtitle || "Questions about Scar Relaxation";
  var subtitle = el("p", { "class": "cc-subtitle", text: subtitleText });
  // The live region gets its role after the stored messages are shown, so a reload does not
  // read the whole conversation out again.
  var log = el("div", { "class": "cc-log", "aria-label": "Conversation", tabindex: "0" });
  var typingText = el("span", { "class": "cc-typing-text", text: "The assistant is typing\u2026" });
  var typing = el("div", { "class": "cc-typing", hidden: "hidden" }, [
    el("span", { "class": "cc-dots", "aria-hidden": "true" }, [el("span"), el("span"), el("span")]),
    typingText
  ]);
  var status = el("p", { "class": "cc-status", role: "status" });
  var input = el("textarea", {
    "class": "cc-input", id: "cc-input", rows: "1", maxlength: "1000", autocomplete: "off",
    placeholder: "Type your question\u2026"
  });
  var send = el("button", { type: "submit", "class": "cc-send" }, [el("span", { text: "Send" })]);
  var form = el("form", { "class": "cc-form", "aria-label": "Send a message" }, [
    el("label", { "for": "cc-input", "class": "cc-visually-hidden", text: "Your message" }), input, send
  ]);
  var panel = el("section", {
    id: "cc-panel", "class": "cc-panel", role: "dialog", "aria-modal": "false",
    "aria-labelledby": "cc-title", hidden: "hidden"
  }, [
    el("header", { "class": "cc-header" }, [el("div", {}, [heading, subtitle]), closeButton]),
    log, typing, status, form
  ]);
  var root = el("div", { "class": "cc-root" }, [panel, launcher]);

  // ---- messages ------------------------------------------------------------------------------
  var LINK = /\[([^\]\n]{1,200})\]\((https?:\/\/[^\s)]{1,500})\)|(https?:\/\/[^\s<>()]{1,500}[^\s<>().,;:!?'"])/g;

  function textWithLinks(text) {
    var fragment = document.createDocumentFragment();
    var last = 0;
    String(text).replace(LINK, function (match, label, href, bare, offset) {
      fragment.appendChild(document.createTextNode(text.slice(last, offset)));
      var url = href || bare;
      fragment.appendChild(el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: label || url }));
      last = offset + match.length;
      return match;
    });
    fragment.appendChild(document.createTextNode(String(text).slice(last)));
    return fragment;
  }

  function whoWrote(message) {
    if (message.from === "user") return "You";
    if (message.senderName) return message.senderName;
    return "The assistant";
  }

  var sourceCount = 0;

  // The source of an answer: {document, sentences} from the custom payload, or null if unusable.
  function sourceOf(custom) {
    var source = custom && custom.source;
    if (!source || typeof source !== "object" || !Array.isArray(source.sentences)) return null;
    var sentences = source.sentences.filter(function (s) { return typeof s === "string" && s; }).map(String);
    if (!sentences.length) return null;
    return { document: String(source.document || "the clinic's document"), sentences: sentences };
  }

  // "Where is this from?": a disclosure button revealing the document's name and quoted sentences.
  function showSource(item, source) {
    var id = "cc-source-" + (++sourceCount);
    var quotes = el("blockquote", { "class": "cc-source-quote" }, source.sentences.map(function (sentence) {
      return el("p", { text: sentence });
    }));
    var panel = el("div", { "class": "cc-source-text", id: id, hidden: "hidden" }, [
      el("p", { "class": "cc-source-name", text: "From the clinic's document \u201C" + source.document + "\u201D:" }),
      quotes
    ]);
    var toggle = el("button", {
      type: "button", "class": "cc-source-toggle", "aria-expanded": "false", "aria-controls": id,
      text: "Where is this from?"
    });
    toggle.addEventListener("click", function () {
      var opening = panel.hidden;
      panel.hidden = !opening;
      toggle.setAttribute("aria-expanded", opening ? "true" : "false");
    });
    var box = el("div", { "class": "cc-source" }, [toggle, panel]);
    var replies = item.querySelector(".cc-replies");
    item.insertBefore(box, replies);  // above the reply buttons, if any
  }

  function render(message) {
    var body = el("p", { "class": "cc-text" });
    body.appendChild(textWithLinks(message.text || ""));
    var item = el("div", { "class": "cc-msg cc-msg-" + (message.from === "user" ? "user" : "bot") }, [
      el("span", { "class": message.senderName ? "cc-who" : "cc-visually-hidden", text: whoWrote(message) + ": " }),
      body
    ]);
    if (message.notice) item.className = "cc-msg cc-msg-bot cc-notice";  // said by the clinic, not a person
    log.appendChild(item);
    if (message.buttons && message.buttons.length) showButtons(item, message.buttons);
    if (message.source) showSource(item, message.source);
  }

  // A source arrives after its answer's text: it belongs to the last message the assistant sent.
  function addSource(source) {
    var last = state.messages[state.messages.length - 1];
    var items = log.querySelectorAll(".cc-msg");
    var item = items[items.length - 1];
    if (!last || last.from !== "bot" || last.source || !item) return;
    last.source = source;
    save();
    showSource(item, source);
  }

  function removeButtons() {
    Array.prototype.forEach.call(log.querySelectorAll(".cc-replies"), function (group) {
      group.parentNode.removeChild(group);
    });
  }

  function showButtons(item, buttons) {
    removeButtons();
    var group = el("div", { "class": "cc-replies", role: "group", "aria-label": "Suggested replies" });
    buttons.forEach(function (button) {
      var choice = el("button", { type: "button", "class": "cc-reply", text: button.title });
      choice.addEventListener("click", function () {
        sendMessage(button.payload, button.title);
        input.focus();
      });
      group.appendChild(choice);
    });
    item.appendChild(group);
  }

  function add(message) {
    state.messages.forEach(function (m) { delete m.buttons; });  // only the newest buttons stay
    state.messages.push(message);
    save();
    render(message);
    log.scrollTop = log.scrollHeight;
  }

  // ---- the connection --------------------------------------------------------------------
  var socket = null;
  var confirmed = false;  // the server confirmed this socket's conversation (session_confirm)
  var pending = [];       // messages typed before that: sent once it has
  var typingTimer = null;
  var live = null;        // null, or {status: "waiting"|"held", staffName}: a person, not the assistant
  var typingReported = 0;

  function setLive(status, staffName) {
    live = status === "waiting" || status === "held" ? { status: status, staffName: staffName || null } : null;
    if (live) setTyping(false);
    subtitle.textContent = !live ? subtitleText
      : live.status === "held" && live.staffName ? "Chatting with " + live.staffName + " from the clinic"
      : "Waiting for someone from the clinic…";
  }

  function setTyping(on, forMs) {
    typing.hidden = !on;
    window.clearTimeout(typingTimer);
    if (on) typingTimer = window.setTimeout(function () { setTyping(false); }, forMs || TYPING_TIMEOUT_MS);
    else typingText.textContent = "The assistant is typing\u2026";
  }

  function say(text) { status.textContent = text; }

  function connect() {
    if (socket || !window.io || !config.socketUrl) {
      // The server comes only from config.js, never from the page's address.
      if (!window.io || !config.socketUrl) {
        say("The chat could not load. Please call " + (config.phone || "the clinic") + " instead.");
      }
      return;
    }
    socket = window.io(config.socketUrl, { path: "/socket.io/", transports: ["websocket", "polling"] });
    say("Connecting to the assistant\u2026");
    socket.on("connect", function () {
      confirmed = false;
      socket.emit("session_request", { session_id: state.sessionId, resume: state.resume });
    });
    socket.on("session_confirm", function (answer) {
      var id = answer && typeof answer === "object" ? answer.session_id : answer;
      var resume = answer && typeof answer === "object" ? answer.resume : null;
      if (typeof id !== "string" || !id) id = null;
      if (id && state.sessionId && id !== state.sessionId) {
        // The server did not continue the stored conversation (it issued a new id): what is
        // shown belonged to the old one, so start again rather than pretend it carries on.
        state.messages = [];
        log.textContent = "";
      }
      if (id) state.resume = typeof resume === "string" ? resume : null;
      state.sessionId = id || state.sessionId;  // the server's id wins
      save();
      say("");
      confirmed = !!state.sessionId;
      if (!state.messages.length) sendMessage("/greet", null);
      if (confirmed) {
        pending.splice(0).forEach(function (payload) {
          socket.emit("user_uttered", { message: payload, session_id: state.sessionId });
        });
      }
    });
    socket.on("live_chat_state", function (state) {
      if (state && typeof state === "object") setLive(String(state.status), state.staff_name ? String(state.staff_name) : null);
    });
    socket.on("staff_typing", function (who) {
      if (!live || !who || typeof who !== "object") return;
      typingText.textContent = String(who.staff_name || "The clinic") + " is typing\u2026";
      setTyping(true, STAFF_TYPING_MS);
    });
    socket.on("bot_uttered", function (message) {
      setTyping(false);
      if (!message) return;
      if (message.forget_conversation === true) {
        // The visitor's conversation was erased on the server: erase this device's copy too.
        state.messages = [];
        log.textContent = "";
        save();
        return;
      }
      var buttons = (message.quick_replies || message.buttons || []).map(function (b) {
        return { title: String(b.title), payload: String(b.payload) };
      });
      var custom = message.custom && typeof message.custom === "object" ? message.custom : {};
      var source = sourceOf(custom);
      if (source && !message.text && !custom.text) { addSource(source); return; }
      var messageId = custom.message_id ? String(custom.message_id) : null;
      if (messageId && state.messages.some(function (m) { return m.id === messageId; })) return;  // sent again after a reload
      if (custom.live) setLive(String(custom.live), custom.staff_name ? String(custom.staff_name) : null);
      add({
        from: "bot",
        text: message.text || custom.text || "",
        buttons: buttons,
        senderName: message.sender_name || custom.sender_name || null,
        notice: !!(custom.notice),
        id: messageId
      });
    });
    socket.on("disconnect", function () {
      confirmed = false;
      setTyping(false);
      say("Reconnecting to the assistant\u2026");
    });
    socket.on("connect_error", function () {
      say("The chat can't reach the assistant right now. Please try again in a moment, or call " +
        (config.phone || "the clinic") + ".");
    });
  }

  function sendMessage(payload, shown) {
    if (!socket) {
      say("Not connected yet - please try again in a moment.");
      return false;
    }
    if (shown !== null) add({ from: "user", text: shown });
    removeButtons();
    if (!live) setTyping(true);
    if (!socket.connected || !confirmed) {
      pending.push(payload);  // sent as soon as the server confirms the conversation
      return true;
    }
    socket.emit("user_uttered", { message: payload, session_id: state.sessionId });
    return true;
  }

  // ---- opening, closing and typing -----------------------------------------------------------
  function open() {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    root.classList.add("cc-open");
    state.open = true;
    save();
    connect();
    log.scrollTop = log.scrollHeight;
    input.focus();
  }

  function close() {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    root.classList.remove("cc-open");
    state.open = false;
    save();
    launcher.focus();
  }

  launcher.addEventListener("click", function () { if (panel.hidden) open(); else close(); });
  closeButton.addEventListener("click", close);
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { event.preventDefault(); close(); }
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    if (sendMessage(text, text)) input.value = "";
  });
  input.addEventListener("input", function () {
    var now = Date.now();
    if (!live || !socket || !confirmed || now - typingReported < TYPING_REPORT_MS) return;
    typingReported = now;
    socket.emit("visitor_typing", { session_id: state.sessionId });
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });

  function start() {
    document.body.appendChild(root);
    state.messages.forEach(render);
    log.setAttribute("role", "log");
    log.setAttribute("aria-live", "polite");
    log.setAttribute("aria-relevant", "additions");
    if (state.open) {  // reopened after a reload: the conversation carries on
      panel.hidden = false;
      launcher.setAttribute("aria-expanded", "true");
      root.classList.add("cc-open");
      connect();
      log.scrollTop = log.scrollHeight;
    }
  }

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();

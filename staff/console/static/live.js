/* The Live page (templates/live.html, staff/console/live.py): keeps the queue and the open
 * conversation current by polling state.json (also the staff member's heartbeat), rings and
 * shows a badge when a visitor starts waiting, and sends the page's forms without reloading.
 * Everything shown from a visitor is set as text, never as HTML. Without JavaScript the page
 * still works: each form posts and the page comes back.
 */
(function () {
  "use strict";

  var root = document.getElementById("live");
  if (!root) return;
  var stateUrl = root.getAttribute("data-state-url");
  var pageUrl = root.getAttribute("data-page-url");
  var pollMs = (parseFloat(root.getAttribute("data-poll")) || 2) * 1000;
  var known = null;       // ids of the waiting conversations already announced
  var audio = null;       // created on the first click (browsers allow sound only after one)
  var baseTitle = document.title;
  var shownChat = null;   // the open conversation's status, to reload when it changes

  function el(tag, text, attributes) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    Object.keys(attributes || {}).forEach(function (name) { node.setAttribute(name, attributes[name]); });
    return node;
  }

  function ring() {
    if (!audio) return;
    try {
      var tone = audio.createOscillator();
      var gain = audio.createGain();
      tone.frequency.value = 880;
      gain.gain.value = 0.15;
      tone.connect(gain);
      gain.connect(audio.destination);
      tone.start();
      tone.stop(audio.currentTime + 0.25);
    } catch (error) { /* no sound: the badge and the title still show it */ }
  }

  document.addEventListener("click", function () {
    if (!audio && (window.AudioContext || window.webkitAudioContext)) {
      audio = new (window.AudioContext || window.webkitAudioContext)();
    }
  });

  function showQueue(state) {
    var list = document.getElementById("queue");
    list.textContent = "";
    state.chats.forEach(function (item) {
      var entry = el("li", null, { "data-chat": String(item.id) });
      entry.appendChild(el("a", "Visitor " + item.id, { href: pageUrl + "?chat=" + item.id }));
      entry.appendChild(document.createTextNode(" " + (item.status === "waiting" ? "waiting " + item.waited : "with you")));
      list.appendChild(entry);
    });
    document.getElementById("queue-empty").hidden = state.chats.length > 0;
    var reach = document.getElementById("live-reach");
    if (reach && reach.textContent !== state.reach) reach.textContent = state.reach;
    var badge = document.querySelector("[data-live-badge]");
    if (badge) {
      badge.hidden = !state.waiting;
      badge.firstChild.textContent = String(state.waiting);
    }
    document.title = (state.waiting ? "(" + state.waiting + " waiting) " : "") + baseTitle;
    var waiting = state.chats.filter(function (item) { return item.status === "waiting"; })
      .map(function (item) { return item.id; });
    if (known !== null && waiting.some(function (id) { return known.indexOf(id) < 0; })) ring();
    known = waiting;
  }

  function showChat(chat) {
    var transcript = document.getElementById("transcript");
    if (!chat || !transcript) return;
    var status = chat.status + ":" + chat.mine;
    if (shownChat !== null && shownChat !== status) {
      window.location.reload();  // taken, handed back or closed elsewhere: show the right buttons
      return;
    }
    shownChat = status;
    var last = transcript.lastElementChild;
    var lastId = last ? parseInt(last.getAttribute("data-id"), 10) : -1;
    chat.messages.forEach(function (line) {
      if (line.id <= lastId) return;
      var item = el("li", null, { "data-id": String(line.id) });
      item.appendChild(el("span", line.who, { "class": "who" }));
      item.appendChild(document.createTextNode(" "));
      item.appendChild(el("span", line.at, { "class": "at" }));
      item.appendChild(el("p", line.text));
      transcript.appendChild(item);
      transcript.scrollTop = transcript.scrollHeight;
    });
    var activity = document.getElementById("visitor-activity");
    var text = chat.left ? "The visitor has left the page." : chat.typing ? "The visitor is typing\u2026" : "";
    if (activity.textContent !== text) activity.textContent = text;
  }

  function poll() {
    fetch(stateUrl, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (answer) {
        if (answer.redirected || !answer.ok) throw new Error("signed out or refused");
        return answer.json();
      })
      .then(function (state) { showQueue(state); showChat(state.chat); })
      .catch(function () { /* the next poll tries again; a signed-out page reloads to sign in */ })
      .then(function () { window.setTimeout(poll, pollMs); });
  }

  var reply = document.getElementById("reply");
  if (reply) {
    var text = document.getElementById("reply-text");
    var problem = el("p", "", { role: "alert", "class": "flash error", hidden: "hidden" });
    reply.appendChild(problem);
    reply.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!text.value.trim()) return;
      var body = new FormData(reply);
      fetch(reply.action, {
        method: "POST", body: body, credentials: "same-origin", headers: { "X-Requested-With": "fetch" }
      }).then(function (answer) { return answer.json(); })
        .then(function (result) {
          problem.hidden = !!result.ok;
          problem.textContent = result.ok ? "" : result.message;
          if (result.ok) text.value = "";
        })
        .catch(function () {
          problem.hidden = false;
          problem.textContent = "The message could not be sent. Check the connection and try again.";
        });
    });
    var typingSent = 0;
    text.addEventListener("input", function () {  // the visitor sees "Anna is typing..."
      var now = Date.now();
      if (now - typingSent < 3000 || !text.value.trim()) return;
      typingSent = now;
      var body = new FormData();
      body.append("csrf_token", reply.querySelector("[name=csrf_token]").value);
      fetch(reply.action.replace(/\/say$/, "/typing"), {
        method: "POST", body: body, credentials: "same-origin", headers: { "X-Requested-With": "fetch" }
      }).catch(function () { /* only a hint: the message itself is what counts */ });
    });
    text.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        reply.requestSubmit();
      }
    });
  }

  window.setTimeout(poll, 0);
})();

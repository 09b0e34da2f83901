/* The chat widget (rasa-webchat 1.0.1, served from web/node_modules by servers/page.py).
 *
 * The server it talks to comes only from window.CLINIC_CHAT_CONFIG (config.js, written by the
 * page server), never from the page's address: a crafted link to the clinic's page must not
 * point the chat at another server. The server issues the conversation's id: the widget
 * keeps whatever id `session_confirm` returns (rasa-webchat does) and sends it with each
 * message.
 */
(function () {
  "use strict";

  var config = window.CLINIC_CHAT_CONFIG || {};
  var socketUrl = config.socketUrl;
  if (!socketUrl) {
    console.error("The chat has no server: config.js did not load (window.CLINIC_CHAT_CONFIG).");
    return;
  }

  if (!window.WebChat) {
    console.error("The chat widget did not load (vendor/rasa-webchat.js): run `npm ci` in web/.");
    return;
  }

  window.WebChat.default({
    socketUrl: socketUrl,
    socketPath: "/socket.io/",
    customData: { language: "en" },
    params: { storage: "local" },          // the conversation survives a reload
    initPayload: "/greet",
    title: config.title || "Chat with us",  // the clinic's name from clinic.yml
    subtitle: "Questions about Scar Relaxation",
    inputTextFieldHint: "Type your question...",
    connectingText: "Connecting to the assistant...",
    hideWhenNotConnected: false,
    showFullScreenButton: false,
    mainColor: "#1d6b73",                  // the clinic's colours (style.css)
    userBackgroundColor: "#1d6b73",
    userTextColor: "#ffffff",
    assistBackgoundColor: "#eef3f3",       // sic: the widget's spelling
    assistTextColor: "#1f2a30",
    withRules: false,                      // no Botfront rules: Rasa's own channel
    // A short "typing" pause, in proportion to the answer, capped at 0.6 s.
    customMessageDelay: function (message) {
      return Math.min(600, 150 + (message || "").length * 2);
    }
  }, null);

  // Keyboard use. The launcher and the send button are real buttons; the quick-reply
  // buttons are <div>s: make them focusable and let Enter / Space choose them. The
  // header's close button gets a name for screen readers.
  function improve(root) {
    var replies = root.querySelectorAll(".rw-reply:not([tabindex])");
    replies.forEach(function (reply) {
      if (reply.tagName === "A") return;   // links are focusable already
      reply.setAttribute("role", "button");
      reply.setAttribute("tabindex", "0");
      reply.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          reply.click();
        }
      });
    });
    root.querySelectorAll(".rw-launcher:not([aria-label])").forEach(function (launcher) {
      launcher.setAttribute("aria-label", "Chat with the clinic's assistant");
    });
    root.querySelectorAll(".rw-close-button:not([aria-label])").forEach(function (button) {
      button.setAttribute("aria-label", "Close the chat");
    });
    root.querySelectorAll(".rw-messages-container:not([aria-live])").forEach(function (log) {
      log.setAttribute("role", "log");
      log.setAttribute("aria-live", "polite");
    });
  }

  new MutationObserver(function () { improve(document); })
    .observe(document.body, { childList: true, subtree: true });
  improve(document);
})();

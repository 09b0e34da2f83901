// The grounding check as staff type an answer: 600 ms after the last key, the answer is sent to
// the console (JSON, with the page's CSRF token), which says which sentences the clinic's
// document does not support and which of the document's sentences support it (highlighted).
(function () {
  "use strict";
  var answer = document.getElementById("answer");
  var result = document.getElementById("check-result");
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (!answer || !result || !meta) { return; }
  var timer = null;
  var latest = 0;

  function paragraph(text, cls) {
    var p = document.createElement("p");
    p.textContent = text;
    if (cls) { p.className = cls; }
    return p;
  }

  function highlight(numbers) {
    var wanted = {};
    numbers.forEach(function (n) { wanted[String(n)] = true; });
    document.querySelectorAll(".doc .sentence").forEach(function (span) {
      span.classList.toggle("supporting", !!wanted[span.getAttribute("data-sentence")]);
    });
  }

  // Each sentence with why it passed (the document's sentence, or an approved framing sentence
  // and who added it) or why it failed (the words the document lacks), as _check.html shows it.
  function reasons(sentences) {
    var list = document.createElement("ul");
    list.className = "reasons";
    sentences.forEach(function (reason) {
      var item = document.createElement("li");
      item.className = reason.ok ? "pass" : "fail";
      var verdict = document.createElement("span");
      verdict.className = "verdict";
      verdict.textContent = reason.ok ? "Passes:" : "Fails:";
      item.appendChild(verdict);
      item.appendChild(document.createTextNode(' "' + reason.sentence + '": ' + reason.why));
      if (reason.approvable && result.getAttribute("data-wording-url")) {
        var link = document.createElement("a");
        link.href = result.getAttribute("data-wording-url") + "?sentence=" + encodeURIComponent(reason.sentence);
        link.textContent = "Open Approved wording";
        item.appendChild(document.createTextNode(" "));
        item.appendChild(link);
      }
      list.appendChild(item);
    });
    return list;
  }

  function show(data) {
    result.replaceChildren();
    if (data.ok) {
      var count = data.supporting.length;
      result.appendChild(paragraph("Every sentence is supported by the clinic's document (" + count +
        " highlighted sentence" + (count === 1 ? "" : "s") + ").", "ok"));
    } else {
      result.appendChild(paragraph("Not supported by the clinic's document, so it cannot be saved:", "bad"));
    }
    if (data.sentences && data.sentences.length) {
      result.appendChild(reasons(data.sentences));
    } else if (!data.ok) {
      var list = document.createElement("ul");
      data.problems.forEach(function (problem) {
        var item = document.createElement("li");
        item.textContent = problem;
        list.appendChild(item);
      });
      result.appendChild(list);
    }
    highlight(data.supporting || []);
  }

  function run() {
    var mine = ++latest;
    fetch(answer.getAttribute("data-check-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": meta.getAttribute("content") },
      body: JSON.stringify({ answer: answer.value })
    }).then(function (response) {
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.json();
    }).then(function (data) {
      if (mine === latest) { show(data); }
    }).catch(function () {
      if (mine === latest) {
        result.replaceChildren(paragraph("The check could not run just now; it runs again when you save."));
      }
    });
  }

  answer.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(run, 600);
  });
})();

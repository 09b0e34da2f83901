// The training's progress bar: asks the console every 2 seconds where the run is and updates the
// bar and its words (a polite live region); when the run has ended, the page reloads to show the report.
(function () {
  "use strict";
  var section = document.getElementById("run");
  var bar = document.getElementById("run-progress");
  var stage = document.getElementById("run-stage");
  if (!section || !bar || !stage) { return; }
  var url = section.getAttribute("data-progress-url");
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (run) {
        if (!run) { window.setTimeout(poll, 5000); return; }
        if (!run.active) { window.location.reload(); return; }
        bar.value = run.progress;
        bar.textContent = run.progress + "%";
        var words = run.stage + " (" + run.progress + "%)";
        if (stage.textContent !== words) { stage.textContent = words; }
        window.setTimeout(poll, 2000);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 2000);
})();

// Progressive enhancement for the registration form; the server's submission token is what
// guarantees a single registration, this only spares the attendee a second request or an error.
(function () {
  "use strict";

  function navigationType() {
    var entries = window.performance && performance.getEntriesByType ? performance.getEntriesByType("navigation") : [];
    return entries.length ? entries[0].type : "navigate";
  }

  function remember(key, value) {
    try {
      window.sessionStorage.setItem(key, value);
    } catch (e) {
      // Storage disabled: back-and-resubmit then meets the server's "already registered" instead.
    }
  }

  function recall(key) {
    try {
      return window.sessionStorage.getItem(key);
    } catch (e) {
      return null;
    }
  }

  document.querySelectorAll("form[data-single-submit]").forEach(function (form) {
    var button = form.querySelector("button[type=submit]");
    var label = button ? button.textContent : "";
    var token = form.querySelector("input[name=submission_token]");
    var storageKey = "submission-token:" + form.action;

    // Back to a form already sent: the browser refills the typed values but the server rendered a new
    // token. Put back the one that was sent, so resubmitting is recognised as the same submission and
    // leads to the same registration (changed details get a clear message instead).
    if (token && navigationType() === "back_forward") {
      var sent = recall(storageKey);
      if (sent) {
        token.value = sent;
      }
    }

    form.addEventListener("submit", function (event) {
      if (form.dataset.submitting === "true") {
        event.preventDefault();
        return;
      }
      form.dataset.submitting = "true";
      if (token) {
        remember(storageKey, token.value);
      }
      if (button) {
        button.disabled = true;
        button.textContent = "Sending…";
      }
    });

    // Back from the next page out of the back-forward cache: make the form usable again.
    window.addEventListener("pageshow", function () {
      form.dataset.submitting = "false";
      if (button) {
        button.disabled = false;
        button.textContent = label;
      }
    });
  });

  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
  }
})();

// Keeps the attendee's status page current without a reload: polls the registration's JSON every
// second until its status is final, then swaps in the server-rendered status region, so the wording
// lives in one place (the template). A paid registration's documents (the invoice) follow its
// confirmation: while the region says it awaits them, polling goes on (for a few minutes) until the
// JSON names the invoice.
(function () {
  "use strict";
  var region = document.getElementById("status-region");
  if (!region || !window.fetch || !window.DOMParser) {
    return;
  }
  var FINAL = ["confirmed", "cancelled"];
  var pollUrl = region.dataset.pollUrl;
  var status = region.dataset.status;
  var awaitingDocuments = region.dataset.awaitingDocuments === "true";
  var started = Date.now();
  var DOCUMENTS_PATIENCE = 300000;
  var failures = 0;

  function isFinal(value) {
    return FINAL.indexOf(value) !== -1;
  }

  function getOk(url, accept) {
    return fetch(url, { headers: { Accept: accept }, cache: "no-store", credentials: "same-origin" }).then(
      function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response;
      }
    );
  }

  function refreshRegion() {
    return getOk(window.location.href, "text/html")
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("status-region");
        if (!fresh) {
          throw new Error("no status region in the page");
        }
        region.className = fresh.className;
        region.dataset.status = fresh.dataset.status;
        region.dataset.awaitingDocuments = fresh.dataset.awaitingDocuments;
        region.innerHTML = fresh.innerHTML;
        status = fresh.dataset.status;
        awaitingDocuments = fresh.dataset.awaitingDocuments === "true";
      });
  }

  function watching() {
    return !isFinal(status) || (awaitingDocuments && Date.now() - started < DOCUMENTS_PATIENCE);
  }

  function nextDelay() {
    if (failures) {
      return Math.min(1000 * Math.pow(2, failures), 15000);
    }
    // Still pending after two minutes (a gateway retrying): keep watching, less often.
    return Date.now() - started > 120000 ? 5000 : 1000;
  }

  function poll() {
    getOk(pollUrl, "application/json")
      .then(function (response) { return response.json(); })
      .then(function (data) {
        var documentsArrived = awaitingDocuments && data.invoice;
        return data.status !== status || documentsArrived ? refreshRegion() : null;
      })
      .then(
        function () { failures = 0; },
        function () { failures += 1; }
      )
      .then(function () {
        if (watching()) {
          window.setTimeout(poll, nextDelay());
        }
      });
  }

  if (watching()) {
    window.setTimeout(poll, 1000);
  }
})();

// The staff dashboard: draws each event's figures and chart from the JSON the page was served with, then
// polls the same JSON every few seconds and updates the cards in place (no reload; new events get a card).
(function () {
  "use strict";
  var grid = document.getElementById("event-grid");
  var initial = document.getElementById("figures-initial");
  var template = document.getElementById("event-card-template");
  if (!grid || !initial || !template || !window.fetch) {
    return;
  }
  var SVG = "http://www.w3.org/2000/svg";
  var pollUrl = grid.dataset.pollUrl;
  var pollMs = parseInt(grid.dataset.pollMs, 10) || 2000;
  var liveText = document.getElementById("live-text");
  var liveStatus = document.getElementById("live-status");
  var failures = 0;

  function money(amount, currency) {
    try {
      return new Intl.NumberFormat("en-GB", { style: "currency", currency: currency }).format(Number(amount));
    } catch (error) {
      return amount + " " + currency;
    }
  }

  function joinMoney(list, key) {
    return list.map(function (m) { return money(m[key], m.currency); }).join(" · ");
  }

  function time(iso) {
    return new Date(iso).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
  }

  function setField(card, name, text) {
    var element = card.querySelector('[data-field="' + name + '"]');
    if (element && element.textContent !== String(text)) {
      element.textContent = text;
    }
    return element;
  }

  function el(name, attributes, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    if (parent) {
      parent.appendChild(node);
    }
    return node;
  }

  // Three bars per minute (received, confirmed, cancelled) over the window; the y axis runs from 0 to the
  // busiest minute (at least 2), with whole-number ticks.
  function drawChart(svg, series) {
    var left = 34, right = 592, top = 10, bottom = 140;
    var names = ["received", "confirmed", "cancelled"];
    var n = series.minutes.length;
    var peak = Math.max(2, Math.max.apply(null, series.received.concat(series.confirmed, series.cancelled)));
    var slot = (right - left) / n;
    var bar = Math.max(1, (slot - 2) / names.length);
    var y = function (v) { return bottom - (v * (bottom - top)) / peak; };
    while (svg.firstChild) {
      svg.removeChild(svg.firstChild);
    }
    [0, Math.round(peak / 2), peak].forEach(function (tick) {
      el("line", { x1: left, x2: right, y1: y(tick), y2: y(tick), class: "grid" }, svg);
      el("text", { x: left - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end" }, svg).textContent = tick;
    });
    [0, Math.floor(n / 2), n - 1].forEach(function (i, k) {
      var at = [left, left + slot * (i + 0.5), right][k];
      var anchor = ["start", "middle", "end"][k];
      el("text", { x: at, y: bottom + 22, class: "axis", "text-anchor": anchor }, svg).textContent =
        time(series.minutes[i]);
    });
    for (var i = 0; i < n; i += 1) {
      names.forEach(function (name, k) {
        var v = series[name][i];
        if (v > 0) {
          var rect = el("rect", {
            x: (left + i * slot + 1 + k * bar).toFixed(1),
            y: y(v).toFixed(1),
            width: bar.toFixed(1),
            height: (bottom - y(v)).toFixed(1),
            class: "bar " + name,
          }, svg);
          el("title", {}, rect).textContent = v + " " + name + " at " + time(series.minutes[i]);
        }
      });
    }
    var total = series.received.reduce(function (a, b) { return a + b; }, 0);
    svg.setAttribute("aria-label", total + " registrations received in the last " + n + " minutes");
  }

  function cardFor(event) {
    var card = grid.querySelector('.event-card[data-slug="' + CSS.escape(event.slug) + '"]');
    if (!card) {
      card = template.content.firstElementChild.cloneNode(true);
      card.dataset.slug = event.slug;
      card.setAttribute("aria-labelledby", "event-" + event.slug);
      card.querySelector("h2").id = "event-" + event.slug;
      var empty = document.getElementById("no-events");
      if (empty) {
        empty.remove();
      }
    }
    return card;
  }

  function update(card, event, windowMinutes) {
    setField(card, "name", event.name);
    setField(card, "when", event.starts_at ? new Date(event.starts_at).toLocaleDateString("en-GB", {
      day: "numeric", month: "short", year: "numeric",
    }) : "");
    ["received", "confirmed", "pending", "cancelled"].forEach(function (name) {
      var element = card.querySelector('[data-field="' + name + '"]');
      if (element.textContent !== String(event[name])) {
        element.textContent = event[name];
        element.classList.remove("changed");
        void element.offsetWidth; // restart the highlight
        element.classList.add("changed");
      }
    });
    setField(card, "seats_left", event.seats_left === null ? "–" : event.seats_left);
    setField(card, "capacity", event.capacity === null ? "–" : event.capacity);
    var percent = event.fill_rate === null ? null : Math.round(event.fill_rate * 100);
    setField(card, "fill_rate", percent === null ? "" : percent + "% full");
    var bar = card.querySelector('[data-field="fill_bar"]');
    bar.style.width = (percent || 0) + "%";
    bar.classList.toggle("full", percent !== null && percent >= 90);
    setField(card, "revenue_gross", joinMoney(event.revenue, "gross") || "—");
    setField(card, "revenue_net", (joinMoney(event.revenue, "net") || "—") + " net");
    var refunded = setField(card, "refunded", event.refunded.length ? joinMoney(event.refunded, "gross") + " refunded" : "");
    refunded.hidden = !event.refunded.length;
    setField(card, "window", windowMinutes);
    drawChart(card.querySelector('[data-field="chart"]'), event.series);
  }

  function render(data) {
    var seen = {};
    data.events.forEach(function (event, index) {
      var card = cardFor(event);
      update(card, event, data.window_minutes);
      if (grid.children[index] !== card) {
        grid.insertBefore(card, grid.children[index] || null);
      }
      seen[event.slug] = true;
    });
    Array.prototype.slice.call(grid.querySelectorAll(".event-card")).forEach(function (card) {
      if (!seen[card.dataset.slug]) {
        card.remove();
      }
    });
    grid.dataset.generatedAt = data.generated_at;
    liveText.textContent = "Live · updated " + new Date(data.generated_at).toLocaleTimeString("en-GB");
    liveStatus.classList.remove("stale");
  }

  function poll() {
    fetch(pollUrl, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 401 || response.status === 403) {
          window.location.reload(); // signed out: the page itself sends to the sign-in
          throw new Error("signed out");
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(
        function (data) {
          failures = 0;
          render(data);
        },
        function () {
          failures += 1;
          liveStatus.classList.add("stale");
          liveText.textContent = "Reconnecting… (last update " + liveText.dataset.last + ")";
        }
      )
      .then(function () {
        liveText.dataset.last = new Date(grid.dataset.generatedAt).toLocaleTimeString("en-GB");
        window.setTimeout(poll, failures ? Math.min(pollMs * Math.pow(2, failures), 30000) : pollMs);
      });
  }

  render(JSON.parse(initial.textContent));
  liveText.dataset.last = new Date(grid.dataset.generatedAt).toLocaleTimeString("en-GB");
  window.setTimeout(poll, pollMs);
})();

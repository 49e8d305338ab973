// recapd pages: times in the browser's time zone, live updates (server-sent events), the
// browser's zone as the default of a new schedule, the channel picker, and confirmations. Every
// page also works without it (times then stay in the user's zone, else UTC).
(function () {
  "use strict";

  // Destructive buttons ask first.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      ev.preventDefault();
    }
  });

  function start() {
    localTimes(document);
    defaultZone();
    channelPicker();
    live();
  }

  // <time data-local> comes rendered in the user's zone (else UTC): show it in the browser's
  // own zone, in the server's format ("Tue 22 Sep 2026, 09:00 CEST"). A schedule's next run
  // carries no data-local: it stays in the schedule's zone.
  var formats = null;
  function localTimes(root) {
    if (!window.Intl || !Intl.DateTimeFormat.prototype.formatToParts) return;
    if (!formats) {
      var parts = { weekday: "short", day: "2-digit", month: "short", year: "numeric",
                    hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
      // Zone abbreviations: each locale knows some (en-US: EST, PDT; en-GB: CET, BST).
      formats = [new Intl.DateTimeFormat("en-GB", parts)].concat(["en-US", "en-GB"].map(
        function (locale) { return new Intl.DateTimeFormat(locale, { timeZoneName: "short" }); }));
    }
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var instant = new Date(el.getAttribute("datetime"));
      if (isNaN(instant.getTime())) return;
      var p = pieces(formats[0], instant);
      var zone = pieces(formats[1], instant).timeZoneName;
      if (/^(GMT|UTC)[+-]/.test(zone)) zone = pieces(formats[2], instant).timeZoneName;
      var clock = p.hour + ":" + p.minute + " " + zone;
      el.textContent = el.dataset.local === "time" ? clock
        : p.weekday + " " + p.day + " " + p.month + " " + p.year + ", " + clock;
      el.title = instant.toISOString().slice(0, 16).replace("T", " ") + " UTC";
    });
  }

  function pieces(format, instant) {
    var found = {};
    format.formatToParts(instant).forEach(function (part) { found[part.type] = part.value; });
    return found;
  }

  // A new schedule starts in the browser's time zone.
  function defaultZone() {
    var select = document.querySelector("select[data-browser-zone]");
    if (!select || !window.Intl) return;
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === zone) { select.value = zone; return; }
    }
  }

  // The channel list only matters for "These channels".
  function channelPicker() {
    var picker = document.getElementById("channel-picker");
    if (!picker) return;
    var radios = document.querySelectorAll("input[name=channel_mode]");
    function update() {
      var specific = document.querySelector("input[name=channel_mode][value=specific]");
      var on = !specific || specific.checked;
      picker.classList.toggle("disabled", !on);
      picker.querySelectorAll("input").forEach(function (box) { box.disabled = !on; });
    }
    radios.forEach(function (r) { r.addEventListener("change", update); });
    update();
  }

  // Recaps change while they are made, on whichever node: the server streams the changes.
  function live() {
    var main = document.getElementById("main");
    if (!main || !main.dataset.live || !window.EventSource) return;
    var source = new EventSource("/events?since=" + encodeURIComponent(main.dataset.since || "0"));
    source.addEventListener("recap", function (ev) {
      var change = JSON.parse(ev.data);
      if (main.dataset.live === "list") updateList(change);
      else updateRecap(main, change);
    });
    // Too many pages of this user follow their recaps: the server ended this one's stream.
    // Reconnecting would end another page's, so this page stops and says so.
    source.addEventListener("closed", function (ev) {
      source.close();
      var notice = document.createElement("p");
      notice.className = "notice live-stopped";
      notice.setAttribute("role", "status");
      notice.textContent = JSON.parse(ev.data).message;
      main.prepend(notice);
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function updateList(change) {
    var list = document.getElementById("recap-list");
    if (!list) return;
    var old = document.getElementById("recap-" + change.id);
    if (change.deleted) {
      if (old) old.remove();
    } else {
      if (old && old.dataset.updateAt === String(change.update_at)) return;
      var tpl = document.createElement("template");
      tpl.innerHTML = change.row.trim();
      var row = tpl.content.firstElementChild;
      localTimes(row);
      if (old) old.replaceWith(row);
      else list.prepend(row); // a new recap is unread: unread ones come first
      row.classList.add("flash");
    }
    var empty = document.getElementById("recap-empty");
    if (empty) empty.hidden = list.children.length > 0;
  }

  // The recap being looked at changed (queued -> working -> ready): fetch the page again and
  // swap its content in. Fetches may finish out of order; an older version never replaces a
  // newer one.
  function updateRecap(main, change) {
    if (change.id !== main.dataset.recapId) return;
    if (change.update_at <= Number(main.dataset.updateAt)) return;
    if (change.deleted) { window.location.assign("/"); return; }
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) { return resp.ok ? resp.text() : ""; })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        if (!fresh || Number(fresh.dataset.updateAt) <= Number(main.dataset.updateAt)) return;
        main.innerHTML = fresh.innerHTML;
        main.dataset.updateAt = fresh.dataset.updateAt;
        localTimes(main);
      });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

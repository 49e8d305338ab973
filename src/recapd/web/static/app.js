// recapd pages: live updates (server-sent events), the browser's time zone as the default of a
// new schedule, the channel picker, and confirmations. Every page also works without it.
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
    defaultZone();
    channelPicker();
    live();
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
      if (old) old.replaceWith(row);
      else list.prepend(row); // a new recap is unread: unread ones come first
      row.classList.add("flash");
    }
    var empty = document.getElementById("recap-empty");
    if (empty) empty.hidden = list.children.length > 0;
  }

  function updateRecap(main, change) {
    if (change.id !== main.dataset.recapId) return;
    if (String(change.update_at) === main.dataset.updateAt) return;
    if (change.deleted) { window.location.assign("/"); return; }
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (resp) { return resp.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        if (!fresh) return;
        main.innerHTML = fresh.innerHTML;
        main.dataset.updateAt = fresh.dataset.updateAt;
      });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

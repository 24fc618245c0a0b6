// callgate admin: live updates by server-sent events. Each "update" event
// carries the HTML of the sections that changed (rendered and escaped by
// the server); without this script the page refreshes itself.
(function () {
  'use strict';
  if (!window.EventSource) return;
  var status = document.getElementById('live-status');
  var es = new EventSource('/admin/events');
  es.addEventListener('update', function (ev) {
    var parts;
    try { parts = JSON.parse(ev.data); } catch (e) { return; }
    Object.keys(parts).forEach(function (id) {
      var el = document.getElementById(id);
      if (!el) return;
      // Keep keyboard focus on the same control where it still exists.
      var focused = document.activeElement;
      var focusKey = focused && el.contains(focused) && focused.getAttribute('aria-label');
      el.innerHTML = parts[id];
      if (focusKey) {
        try {
          var again = el.querySelector('[aria-label="' + CSS.escape(focusKey) + '"]');
          if (again) again.focus();
        } catch (e) { /* focus stays where the browser puts it */ }
      }
    });
    if (status) status.textContent = 'Live: updated at ' + new Date().toLocaleTimeString() + '.';
    document.body.setAttribute('data-updates', String(Number(document.body.getAttribute('data-updates') || 0) + 1));
  });
  es.addEventListener('open', function () {
    if (status) status.textContent = 'Live: connected.';
  });
  es.addEventListener('error', function () {
    if (status) status.textContent = 'Live updates interrupted; reconnecting…';
  });
})();

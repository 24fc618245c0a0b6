// callgate join page: checks the browser before sending someone into a
// call, and remembers the call in sessionStorage so a reload resumes it.
// No inline handlers: the CSP allows only this file (by nonce).
(function () {
  'use strict';
  var page = document.getElementById('page');
  if (!page) return;
  var call = page.getAttribute('data-call') || '';
  var url = page.getAttribute('data-join');
  var type = page.getAttribute('data-type') || 'video';
  var key = 'callgate.active.' + call;
  var status = document.getElementById('status');
  var link = document.getElementById('join');

  function showError(id) {
    var els = document.querySelectorAll('[data-error]');
    for (var i = 0; i < els.length; i++) {
      els[i].hidden = els[i].getAttribute('data-error') !== id;
    }
    if (status) status.textContent = '';
    page.setAttribute('data-state', 'error:' + id);
  }

  var remembered = null;
  try { remembered = sessionStorage.getItem(key); } catch (e) { /* storage off */ }

  if (!url) {
    // A page without a join link: the call is over or cannot be joined. If
    // this tab was in the call, the other side left it.
    if (remembered && page.getAttribute('data-kind') === 'ended') {
      showError('AGENT_DISCONNECTED');
    }
    try { sessionStorage.removeItem(key); } catch (e) { /* storage off */ }
    return;
  }

  function go() {
    try { sessionStorage.setItem(key, JSON.stringify({ at: Date.now() })); } catch (e) { /* storage off */ }
    page.setAttribute('data-state', 'joining');
    window.location.assign(url);
  }

  if (link) {
    link.addEventListener('click', function (ev) { ev.preventDefault(); go(); });
  }

  // A reload of a call this tab is already in resumes it at once.
  if (remembered) {
    page.setAttribute('data-state', 'resuming');
    go();
    return;
  }

  function check() {
    var PC = window.RTCPeerConnection || window.webkitRTCPeerConnection;
    var md = navigator.mediaDevices;
    if (!PC || !md || !md.getUserMedia) return Promise.reject('BROWSER_NOT_SUPPORTED');
    try {
      var pc = new PC();
      pc.close();
    } catch (e) {
      return Promise.reject('UNABLE_TO_CONNECT');
    }
    var want = type === 'audio' ? { audio: true } : { audio: true, video: true };
    return md.getUserMedia(want).then(function (stream) {
      stream.getTracks().forEach(function (t) { t.stop(); });
    }, function () {
      return Promise.reject('NO_CAMERA_ACCESS');
    });
  }

  check().then(go, function (id) {
    showError(typeof id === 'string' ? id : 'UNABLE_TO_CONNECT');
  });
})();

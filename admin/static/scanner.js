// The cashier screen's "Scan" button: reads a card's QR code with the phone camera and
// submits it in the card field. The browser's BarcodeDetector is used where it reads QR codes,
// the vendored jsQR decoder (jsQR.js, Apache-2.0) otherwise. Without JavaScript, or without a
// camera, the button stays hidden and the field is typed in.
(function () {
  'use strict';

  function detectorFor() {
    if (!('BarcodeDetector' in window)) return Promise.resolve(null);
    return window.BarcodeDetector.getSupportedFormats()
      .then(function (formats) {
        return formats.indexOf('qr_code') >= 0 ? new window.BarcodeDetector({ formats: ['qr_code'] }) : null;
      })
      .catch(function () { return null; });
  }

  function readWithJsQR(video, canvas) {
    var width = video.videoWidth;
    var height = video.videoHeight;
    if (!width || !height || typeof window.jsQR !== 'function') return Promise.resolve(null);
    canvas.width = width;
    canvas.height = height;
    var context = canvas.getContext('2d', { willReadFrequently: true });
    context.drawImage(video, 0, 0, width, height);
    var image = context.getImageData(0, 0, width, height);
    var code = window.jsQR(image.data, width, height, { inversionAttempts: 'attemptBoth' });
    return Promise.resolve(code ? code.data : null);
  }

  function readWithDetector(detector, video) {
    return detector.detect(video).then(function (codes) {
      return codes.length ? codes[0].rawValue : null;
    }).catch(function () { return null; });
  }

  function setUp(button) {
    var field = document.getElementById(button.getAttribute('data-scan-for'));
    var panel = document.getElementById(button.getAttribute('aria-controls'));
    if (!field || !panel || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return;
    var video = panel.querySelector('video');
    var status = panel.querySelector('[data-scan-status]');
    var stop = panel.querySelector('[data-scan-stop]');
    var canvas = document.createElement('canvas');
    var stream = null;
    var running = false;

    function finish() {
      running = false;
      if (stream) stream.getTracks().forEach(function (track) { track.stop(); });
      stream = null;
      video.srcObject = null;
      panel.hidden = true;
      button.setAttribute('aria-expanded', 'false');
    }

    function found(value) {
      field.value = value;
      finish();
      if (field.form) {
        if (typeof field.form.requestSubmit === 'function') field.form.requestSubmit();
        else field.form.submit();
      }
    }

    function loop(read) {
      if (!running) return;
      read().then(function (value) {
        if (!running) return;
        if (value) found(value);
        else window.setTimeout(function () { loop(read); }, 120);
      });
    }

    button.hidden = false;
    button.addEventListener('click', function () {
      if (running) { finish(); return; }
      panel.hidden = false;
      button.setAttribute('aria-expanded', 'true');
      if (status) status.textContent = status.getAttribute('data-starting') || '';
      navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false })
        .then(function (media) {
          stream = media;
          running = true;
          video.srcObject = media;
          video.setAttribute('playsinline', '');
          video.muted = true;
          return video.play().then(detectorFor);
        })
        .then(function (detector) {
          if (!running) return;
          if (status) status.textContent = status.getAttribute('data-ready') || '';
          loop(detector ? function () { return readWithDetector(detector, video); }
                        : function () { return readWithJsQR(video, canvas); });
        })
        .catch(function () {
          finish();
          panel.hidden = false;
          if (status) status.textContent = status.getAttribute('data-failed') || '';
        });
    });
    if (stop) stop.addEventListener('click', finish);
  }

  function init() {
    var buttons = document.querySelectorAll('[data-scan-for]');
    for (var i = 0; i < buttons.length; i++) setUp(buttons[i]);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();

// The dashboard's charts: each figure's table holds the numbers (what screen readers and pages
// without JavaScript get); this draws them with uPlot and folds the table away behind its summary.
(function () {
  'use strict';
  var colors = ['#1f5fd1', '#d1731f', '#1e7b34', '#8e3bb5'];

  function read(figure) {
    var table = figure.querySelector('table');
    var names = Array.prototype.map.call(table.tHead.rows[0].cells, function (c) { return c.textContent.trim(); });
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var data = [rows.map(function (r) { return Number(r.getAttribute('data-x')); })];
    for (var s = 1; s < names.length; s++) {
      data.push(rows.map(function (r) { return Number(r.cells[s].getAttribute('data-v')); }));
    }
    var labels = rows.map(function (r) { return r.cells[0].textContent.trim(); });
    return { names: names, data: data, labels: labels };
  }

  function options(figure, t, width) {
    var bars = figure.getAttribute('data-kind') === 'bars';
    var series = [{ label: t.names[0] }];
    for (var s = 1; s < t.names.length; s++) {
      var color = colors[(s - 1) % colors.length];
      series.push(bars
        ? { label: t.names[s], stroke: color, fill: color + 'cc', width: 1, paths: uPlot.paths.bars({ size: [0.6, 80] }), points: { show: false } }
        : { label: t.names[s], stroke: color, fill: color + '1a', width: 2, points: { show: t.data[0].length <= 31 } });
    }
    var opts = {
      width: width,
      height: width < 500 ? 200 : 240,
      series: series,
      legend: { show: t.names.length > 2 || bars === false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: !bars }, y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } } },
      axes: [{}, { size: 60 }]
    };
    var zone = figure.getAttribute('data-time-zone');
    if (!bars && zone) {
      // Days begin at midnight in the program's time zone: the time axis is drawn in it too.
      opts.tzDate = function (ts) { return uPlot.tzDate(new Date(ts * 1e3), zone); };
    }
    if (bars) {
      var n = t.labels.length;
      var slanted = slant(t, width);
      opts.scales.x.range = function () { return [-0.5, n - 0.5]; };
      opts.axes[0] = { splits: function () { return t.labels.map(function (_, i) { return i; }); },
        values: function (u, splits) { return splits.map(function (i) { return t.labels[i] || ''; }); }, grid: { show: false },
        font: (width < 400 ? '10px' : '12px') + ' system-ui, sans-serif',
        rotate: slanted ? -45 : 0,
        size: slanted ? Math.ceil(longest(t) * charWidth(width) * 0.72) + 24 : 30 };
      if (slanted) {
        // The last label slants out to the right of its bar: room for it inside the canvas
        // (Cyrillic letters run wider than charWidth's Latin average, hence no 0.72 here).
        var last = t.labels[n - 1] || '';
        var slot = (width - 60) / Math.max(1, n);
        opts.padding = [null, Math.max(0, Math.ceil(last.length * charWidth(width) - slot / 2)), null, null];
      }
    }
    return opts;
  }

  function charWidth(width) { return width < 400 ? 5.8 : 7; }

  function longest(t) {
    return t.labels.reduce(function (most, l) { return Math.max(most, l.length); }, 0);
  }

  // Whether a bar chart's labels are too wide to stand side by side under their bars.
  function slant(t, width) {
    var slot = (width - 60) / Math.max(1, t.labels.length);
    return longest(t) * charWidth(width) + 8 > slot;
  }

  function draw(figure) {
    var plot = figure.querySelector('.plot');
    if (!plot || typeof uPlot === 'undefined') return;
    var t = read(figure);
    var width = Math.max(240, plot.clientWidth);
    var chart = new uPlot(options(figure, t, width), t.data, plot);
    figure.classList.add('drawn');
    var details = figure.querySelector('details.numbers');
    if (details) details.open = false;
    if (typeof ResizeObserver !== 'undefined') {
      new ResizeObserver(function () {
        var w = Math.max(240, plot.clientWidth);
        if (Math.abs(w - chart.width) <= 4) return;
        if (figure.getAttribute('data-kind') === 'bars' && slant(t, w) !== slant(t, chart.width)) {
          // The labels change between upright and slanted: the axis is laid out anew.
          chart.destroy();
          chart = new uPlot(options(figure, t, w), t.data, plot);
        } else {
          chart.setSize({ width: w, height: w < 500 ? 200 : 240 });
        }
      }).observe(plot);
    }
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll('figure.chart'), draw);
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();

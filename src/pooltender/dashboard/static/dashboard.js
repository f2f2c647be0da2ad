// pooltender dashboard: polls the stats snapshot and draws one card per database.
// Every string from the snapshot goes into the page through textContent, never as HTML.
(function () {
  "use strict";

  var body = document.body;
  var STATS = body.dataset.stats || "pool-stats";
  var INTERVAL = Number(body.dataset.interval) || 1000;
  var WINDOW = Number(body.dataset.window) || 300; // points kept: about 5 minutes
  var main = document.getElementById("databases");
  var status = document.getElementById("status");
  var cards = new Map(); // database name -> card state

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function seconds(value) {
    if (value === null || value === undefined || isNaN(value)) return "–";
    if (value < 0.001) return (value * 1e6).toFixed(0) + " µs";
    if (value < 1) return (value * 1e3).toFixed(1) + " ms";
    return value.toFixed(2) + " s";
  }

  function count(value) {
    return value === null || value === undefined ? "∞" : String(value);
  }

  function makeTable(caption, headers, numeric) {
    var table = el("table");
    table.appendChild(el("caption", null, caption));
    var row = el("tr");
    headers.forEach(function (h, i) { row.appendChild(el("th", numeric[i] ? "num" : null, h)); });
    table.appendChild(el("thead")).appendChild(row);
    var tbody = el("tbody");
    table.appendChild(tbody);
    return { table: table, tbody: tbody, width: headers.length };
  }

  function fillTable(t, rows, empty) {
    var tbody = el("tbody");
    if (rows.length === 0) {
      var td = el("td", "empty", empty);
      td.colSpan = t.width;
      tbody.appendChild(el("tr")).appendChild(td);
    }
    rows.forEach(function (r) {
      var tr = el("tr", r.className || null);
      r.cells.forEach(function (c) { tr.appendChild(el("td", c[1] || null, c[0])); });
      tbody.appendChild(tr);
    });
    t.table.replaceChild(tbody, t.tbody);
    t.tbody = tbody;
  }

  function makeCard(name) {
    var section = el("section", "db");
    section.dataset.database = name;
    section.appendChild(el("h2", null, name));
    var url = section.appendChild(el("div", "url"));
    var tiles = section.appendChild(el("div", "tiles"));
    var chartBox = section.appendChild(el("div", "chart"));
    var tables = section.appendChild(el("div", "tables"));
    var routes = makeTable("Routes by total hold time", ["route", "checkouts", "total", "p50", "p99", "max"],
      [false, true, true, true, true, true]);
    var held = makeTable("Connections held now", ["route", "age", "checkout site"], [false, true, false]);
    routes.table.classList.add("routes");
    held.table.classList.add("held");
    tables.appendChild(routes.table);
    tables.appendChild(held.table);
    main.appendChild(section);

    var data = [[], [], [], [], []];
    var plot = new uPlot({
      width: Math.max(300, chartBox.clientWidth || 600),
      height: 220,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
      series: [
        {},
        { label: "used", stroke: "#d9480f", width: 2 },
        { label: "idle", stroke: "#2b8a3e", width: 1.5 },
        { label: "waiting", stroke: "#5f3dc4", width: 1.5 },
        { label: "max", stroke: "#868e96", dash: [6, 4], width: 1 },
      ],
      axes: [{}, { label: "connections" }],
    }, data, chartBox);
    return { section: section, url: url, tiles: tiles, chartBox: chartBox, plot: plot, data: data,
             routes: routes, held: held };
  }

  function tile(label, value, alert) {
    var t = el("div", alert ? "tile alert" : "tile");
    t.appendChild(el("span", "label", label));
    t.appendChild(el("span", "value", value));
    return t;
  }

  // Counters whose growth is bad news: their tiles turn red when not zero.
  var ALERTING = new Set(["timeouts", "rejected", "leaks_suspected", "connections_reclaimed",
    "held_after_response"]);

  function update(card, db, at, counters) {
    card.url.textContent = (db.driver || "") + "  " + (db.url || "");
    var tiles = el("div", "tiles");
    tiles.appendChild(tile("used", db.checked_out));
    tiles.appendChild(tile("idle", db.available));
    tiles.appendChild(tile("waiting", db.waiting, db.waiting > 0));
    tiles.appendChild(tile("max", count(db.max)));
    tiles.appendChild(tile("wait p50 / p99", seconds(db.wait_time && db.wait_time.p50) + " / " +
      seconds(db.wait_time && db.wait_time.p99)));
    tiles.appendChild(tile("use p50 / p99", seconds(db.use_time && db.use_time.p50) + " / " +
      seconds(db.use_time && db.use_time.p99)));
    // One tile per counter the snapshot declares (doc.counters): a counter added to
    // pooltender's stats appears here with no change to this page.
    Object.keys(counters).forEach(function (key) {
      var value = db[key];
      if (typeof value !== "number") return;
      var t = tile(counters[key].label, value, value > 0 && ALERTING.has(key));
      t.title = counters[key].help;
      t.dataset.counter = key;
      tiles.appendChild(t);
    });
    card.section.replaceChild(tiles, card.tiles);
    card.tiles = tiles;

    var d = card.data;
    d[0].push(at); d[1].push(db.checked_out); d[2].push(db.available);
    d[3].push(db.waiting); d[4].push(db.max === null ? null : db.max);
    if (d[0].length > WINDOW) d.forEach(function (s) { s.shift(); });
    card.plot.setData(d);
    card.section.dataset.points = String(d[0].length);

    fillTable(card.routes, (db.routes || []).map(function (r) {
      return { cells: [[r.route], [r.checkouts, "num"], [seconds(r.hold_total), "num"],
        [seconds(r.hold_p50), "num"], [seconds(r.hold_p99), "num"], [seconds(r.hold_max), "num"]] };
    }), "no checkouts yet");
    fillTable(card.held, (db.held || []).map(function (h) {
      return { className: h.leak ? "leak" : null,
               cells: [[h.route || "(outside a request)"], [seconds(h.age), "num"], [h.site, "site"]] };
    }), "none");
  }

  function render(doc) {
    var at = Number(doc.generated_at) || Date.now() / 1000;
    var names = Object.keys(doc.databases || {});
    names.forEach(function (name) {
      var card = cards.get(name);
      if (!card) { card = makeCard(name); cards.set(name, card); }
      update(card, doc.databases[name], at, doc.counters || {});
    });
    status.className = "status";
    status.textContent = "updated " + new Date(at * 1000).toLocaleTimeString() + " · " +
      names.length + " database" + (names.length === 1 ? "" : "s");
  }

  function fail(message) {
    status.className = "status error";
    status.textContent = message;
  }

  var busy = false;
  function tick() {
    if (busy) return;
    busy = true;
    fetch(STATS, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error(STATS + " answered " + response.status);
        return response.json();
      })
      .then(render)
      .catch(function (error) { fail("cannot read " + STATS + ": " + error.message); })
      .then(function () { busy = false; });
  }

  window.addEventListener("resize", function () {
    cards.forEach(function (card) {
      card.plot.setSize({ width: Math.max(300, card.chartBox.clientWidth), height: 220 });
    });
  });
  tick();
  setInterval(tick, INTERVAL);
})();

// coterie web monitor: draws the mesh as plain SVG and the table as HTML.
//
// The server inlines the current view in the page (#initial-view) and sends
// a new one over server-sent events (/events) after every change. Each view
// is drawn from scratch: it is small, and nothing is animated.
//
// Layout: one horizontal band per namespace; in every band one column per
// role, requesters left of responders and publishers left of subscribers, so
// requests and events flow left to right. Edges are the links nodes report
// in their status messages.
//
// Everything that comes from the network (names, keys, namespaces) is set
// with textContent or setAttribute, never parsed as HTML.
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";
  var COLUMN_ORDER = [
    "requester", "responder", "publisher", "subscriber", "sockend", "nginx-gateway", "http", "monitor",
  ];
  var KNOWN_ROLES = ["responder", "requester", "publisher", "subscriber", "monitor"];
  var COLUMN_LABELS = { http: "HTTP services (announced)", "nginx-gateway": "nginx gateways" };
  var NODE_W = 220;
  var NODE_H = 46;
  var COLUMN_GAP = 100;
  var ROW_GAP = 14;
  var BAND_TOP = 26;
  var BAND_BOTTOM = 14;
  var BAND_GAP = 14;
  var MARGIN = 14;
  var HEADER_H = 22;
  var NAME_CHARS = 29;

  function svg(name, attrs, text) {
    var node = document.createElementNS(SVG_NS, name);
    Object.keys(attrs || {}).forEach(function (key) {
      node.setAttribute(key, String(attrs[key]));
    });
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function element(name, text, className) {
    var node = document.createElement(name);
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    if (className) {
      node.className = className;
    }
    return node;
  }

  function clip(text, limit) {
    return text.length > limit ? text.slice(0, limit - 1) + "\u2026" : text;
  }

  function roleClass(role) {
    return "role-" + (KNOWN_ROLES.indexOf(role) >= 0 ? role : "other");
  }

  function columnRank(role) {
    var rank = COLUMN_ORDER.indexOf(role);
    return rank >= 0 ? rank : COLUMN_ORDER.length;
  }

  function byName(a, b) {
    return a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  }

  // Where every node goes: {places: id -> {x, y, node}, bands, columns, width, height}.
  function layout(view) {
    var roles = [];
    var namespaces = [];
    view.nodes.forEach(function (node) {
      if (roles.indexOf(node.role) < 0) roles.push(node.role);
      var ns = node.namespace || "";
      if (namespaces.indexOf(ns) < 0) namespaces.push(ns);
    });
    roles.sort(function (a, b) {
      return columnRank(a) - columnRank(b) || (a < b ? -1 : a > b ? 1 : 0);
    });
    namespaces.sort();
    var places = {};
    var bands = [];
    var y = MARGIN + HEADER_H;
    namespaces.forEach(function (ns) {
      var tallest = 0;
      roles.forEach(function (role, column) {
        var cell = view.nodes.filter(function (node) {
          return (node.namespace || "") === ns && node.role === role;
        });
        cell.sort(byName);
        cell.forEach(function (node, row) {
          places[node.id] = {
            x: MARGIN + 12 + column * (NODE_W + COLUMN_GAP),
            y: y + BAND_TOP + row * (NODE_H + ROW_GAP),
            node: node,
          };
        });
        tallest = Math.max(tallest, cell.length);
      });
      var height = BAND_TOP + tallest * (NODE_H + ROW_GAP) - ROW_GAP + BAND_BOTTOM;
      bands.push({ namespace: ns, y: y, height: height });
      y += height + BAND_GAP;
    });
    var width = MARGIN * 2 + 24 + Math.max(1, roles.length) * (NODE_W + COLUMN_GAP) - COLUMN_GAP;
    return {
      places: places,
      bands: bands,
      columns: roles,
      width: Math.max(width, 480),
      height: Math.max(y - BAND_GAP + MARGIN, 120),
    };
  }

  // The path of one edge: from the side of `a` facing `b` to the side of `b` facing `a`.
  // "12 req/s · 0.5 err/s" from an edge's rates ("12 events/s" for a
  // subscriber's link); "not known" without them.
  function trafficText(edge, events) {
    if (edge.rate === null || edge.errors === null) return "not known";
    if (events) return perSecond(edge.rate) + " events/s";
    return perSecond(edge.rate) + " req/s \u00b7 " + perSecond(edge.errors) + " err/s";
  }

  function perSecond(value) {
    return value >= 10 ? String(Math.round(value)) : String(Math.round(value * 10) / 10);
  }

  // Where an edge's label goes: the middle of the curve edgePath draws.
  function edgeMiddle(a, b) {
    var ay = a.y + NODE_H / 2;
    var by = b.y + NODE_H / 2;
    if (b.x > a.x) return { x: (a.x + NODE_W + b.x - 4) / 2, y: (ay + by) / 2 };
    return { x: (a.x + b.x + NODE_W) / 2, y: (ay + by) / 2 };
  }

  function edgePath(a, b) {
    var ay = a.y + NODE_H / 2;
    var by = b.y + NODE_H / 2;
    var ax;
    var bx;
    var bend;
    if (b.x > a.x) {
      ax = a.x + NODE_W;
      bx = b.x - 4;
      bend = (bx - ax) / 2;
      return "M" + ax + "," + ay + " C" + (ax + bend) + "," + ay + " " + (bx - bend) + "," + by + " " + bx + "," + by;
    }
    if (b.x < a.x) {
      ax = a.x;
      bx = b.x + NODE_W + 4;
      bend = (ax - bx) / 2;
      return "M" + ax + "," + ay + " C" + (ax - bend) + "," + ay + " " + (bx + bend) + "," + by + " " + bx + "," + by;
    }
    ax = a.x + NODE_W;
    bx = b.x + NODE_W + 4;
    return "M" + ax + "," + ay + " C" + (ax + 60) + "," + ay + " " + (bx + 60) + "," + by + " " + bx + "," + by;
  }

  function drawGraph(view) {
    var graph = document.getElementById("graph");
    var plan = layout(view);
    while (graph.firstChild) graph.removeChild(graph.firstChild);
    graph.setAttribute("viewBox", "0 0 " + plan.width + " " + plan.height);
    graph.setAttribute("width", plan.width);
    graph.setAttribute("height", plan.height);

    var defs = svg("defs");
    var marker = svg("marker", {
      id: "arrowhead", viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
    });
    marker.appendChild(svg("path", { d: "M0,0 L10,5 L0,10 z" }));
    defs.appendChild(marker);
    graph.appendChild(defs);

    if (!view.nodes.length) {
      graph.appendChild(svg("text", { x: MARGIN, y: MARGIN + 40, "class": "empty" },
        "No nodes yet: waiting for discovery\u2026"));
      return;
    }
    plan.columns.forEach(function (role, column) {
      graph.appendChild(svg("text", {
        x: MARGIN + 12 + column * (NODE_W + COLUMN_GAP), y: MARGIN + 12, "class": "column-label",
      }, COLUMN_LABELS[role] || role + "s"));
    });
    plan.bands.forEach(function (band) {
      var group = svg("g", { "class": "band", "data-namespace": band.namespace });
      group.appendChild(svg("rect", {
        x: MARGIN, y: band.y, width: plan.width - 2 * MARGIN, height: band.height, rx: 8,
      }));
      group.appendChild(svg("text", { x: MARGIN + 10, y: band.y + 17 },
        band.namespace ? "namespace: " + band.namespace : "no namespace"));
      graph.appendChild(group);
    });

    view.edges.forEach(function (edge) {
      var from = plan.places[edge.from];
      var to = plan.places[edge.to];
      if (!from || !to) return; // a link to a node discovery has not reported (yet)
      // Subscribers report their publishers; events flow the other way.
      var flip = from.node.role === "subscriber";
      var group = svg("g", { "class": "edge", "data-from": edge.from, "data-to": edge.to });
      var traffic = trafficText(edge, flip);
      group.appendChild(svg("title", {}, from.node.name + " \u2192 " + to.node.name + ": " +
        (edge.rate === null ? "request rate not known" : traffic)));
      group.appendChild(svg("path", {
        d: flip ? edgePath(to, from) : edgePath(from, to), "marker-end": "url(#arrowhead)",
      }));
      var middle = flip ? edgeMiddle(to, from) : edgeMiddle(from, to);
      group.appendChild(svg("text", {
        x: middle.x, y: middle.y - 4, "class": edge.rate === null ? "rate unknown" : "rate",
        "text-anchor": "middle",
      }, traffic));
      graph.appendChild(group);
    });

    Object.keys(plan.places).forEach(function (id) {
      var place = plan.places[id];
      var node = place.node;
      var group = svg("g", {
        "class": "node " + roleClass(node.role), "data-node-id": node.id,
        transform: "translate(" + place.x + "," + place.y + ")",
      });
      group.appendChild(svg("title", {}, [
        node.name, node.role, node.id,
        node.address + (node.port === null ? "" : ":" + node.port),
        "key " + (node.key || ""), node.namespace ? "namespace " + node.namespace : "",
      ].filter(Boolean).join("\n")));
      group.appendChild(svg("rect", { width: NODE_W, height: NODE_H, rx: 7 }));
      group.appendChild(svg("text", { x: 10, y: 19, "class": "name" }, clip(node.name || "(no name)", NAME_CHARS)));
      var meta = node.role + " \u00b7 " + node.id.slice(0, 8) + (node.port === null ? "" : " \u00b7 :" + node.port);
      group.appendChild(svg("text", { x: 10, y: 36, "class": "meta" }, meta));
      graph.appendChild(group);
    });
  }

  function drawLegend(view) {
    var legend = document.getElementById("legend");
    while (legend.firstChild) legend.removeChild(legend.firstChild);
    var others = view.nodes.some(function (node) {
      return KNOWN_ROLES.indexOf(node.role) < 0;
    });
    KNOWN_ROLES.concat(others ? ["other"] : []).forEach(function (role) {
      var item = element("span");
      item.appendChild(element("span", null, "swatch " + roleClass(role)));
      item.appendChild(document.createTextNode(role));
      legend.appendChild(item);
    });
    legend.appendChild(element("span",
      "arrows: requester \u2192 responder, publisher \u2192 subscriber (links from status reports)"));
    document.getElementById("rates").textContent = view.rates;
  }

  function drawTable(view) {
    document.getElementById("table-title").textContent = "Nodes: " + view.title;
    var table = document.getElementById("nodes");
    var head = table.tHead;
    var body = table.tBodies[0];
    while (head.firstChild) head.removeChild(head.firstChild);
    while (body.firstChild) body.removeChild(body.firstChild);
    var headRow = element("tr");
    view.columns.forEach(function (column) {
      headRow.appendChild(element("th", column));
    });
    head.appendChild(headRow);
    view.rows.forEach(function (row) {
      var tr = element("tr");
      tr.setAttribute("data-node-id", row.id);
      row.cells.forEach(function (cell, i) {
        var column = view.columns[i];
        var className = column === "Name" ? "name" : column === "Id" ? "id" :
          column === "Port" ? "num" : column === "Role" ? roleClass(cell) : "";
        tr.appendChild(element("td", cell, className));
      });
      body.appendChild(tr);
    });
  }

  function render(view) {
    drawGraph(view);
    drawLegend(view);
    drawTable(view);
    document.getElementById("summary").textContent = view.title;
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.title = "coterie monitor: " + view.title;
    document.body.setAttribute("data-version", view.version);
  }

  function setStatus(text, className) {
    var status = document.getElementById("status");
    status.textContent = text;
    status.className = "status " + className;
  }

  render(JSON.parse(document.getElementById("initial-view").textContent));

  if (!window.EventSource) {
    setStatus("no live updates in this browser: reload to refresh", "closed");
    return;
  }
  var source = new EventSource("events");
  source.addEventListener("open", function () {
    setStatus("live", "live");
  });
  source.addEventListener("view", function (event) {
    render(JSON.parse(event.data));
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) {
      setStatus("disconnected (server refused or stopped): reload to retry", "closed");
    } else {
      setStatus("reconnecting\u2026", "reconnecting");
    }
  });
})();

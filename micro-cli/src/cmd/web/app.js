// micro web's page: services pushed over server-sent events (/api/events), members and leases
// polled (/api/registry: TTLs change every second without any registry event), and the call form
// (/api/call). Every value from the registry is inserted as text, never as HTML.
"use strict";

const REGISTRY_POLL_MS = 2000;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

function metadata(m) {
  return Object.entries(m || {}).map(([k, v]) => `${k}=${v}`).join(", ");
}

// A go-micro field tree ({name, type, values}) as nested blocks, as `micro get service` prints it.
function tree(value) {
  if (!value || !value.values || value.values.length === 0) return el("div", { class: "tree" }, "{}");
  const box = el("div", { class: "tree" });
  for (const f of value.values) {
    const line = el("div", {}, `${f.name.toLowerCase()} ${f.type}`);
    if (f.values && f.values.length) line.append(tree(f));
    box.append(line);
  }
  return box;
}

let lastServices = [];

function renderServices(snapshot) {
  lastServices = snapshot.services;
  const root = document.getElementById("services");
  root.replaceChildren();
  let nodes = 0;
  const names = document.getElementById("service-names");
  names.replaceChildren();
  for (const svc of snapshot.services) {
    names.append(el("option", { value: svc.name }));
    const block = el("div", { class: "service", "data-service": svc.name });
    block.append(el("h3", {}, svc.name));
    const table = el("table", { class: "nodes" },
      el("thead", {}, el("tr", {}, el("th", {}, "node"), el("th", {}, "address"),
        el("th", {}, "version"), el("th", {}, "metadata"))));
    const body = el("tbody");
    for (const version of svc.versions) {
      for (const n of version.nodes) {
        nodes += 1;
        body.append(el("tr", { class: "node", "data-service": svc.name, "data-node": n.id },
          el("td", {}, n.id), el("td", { class: "address" }, n.address),
          el("td", {}, version.version), el("td", {}, metadata(n.metadata))));
      }
    }
    table.append(body);
    block.append(table);
    const endpoints = (svc.versions[0] && svc.versions[0].endpoints) || [];
    for (const e of endpoints) {
      const name = el("b", { title: "use in the call form" }, e.name);
      name.addEventListener("click", () => {
        document.getElementById("call-service").value = svc.name;
        document.getElementById("call-endpoint").value = e.name;
      });
      block.append(el("div", { class: "endpoint", "data-endpoint": e.name },
        el("div", {}, name, ` ${metadata(e.metadata)}`),
        el("div", { class: "io" }, "Request", tree(e.request)),
        el("div", { class: "io" }, "Response", tree(e.response))));
    }
    const text = el("details", {}, el("summary", {}, "as micro get service prints it"),
      el("pre", {}, svc.text));
    block.append(text);
    root.append(block);
  }
  if (snapshot.services.length === 0) root.append(el("p", { class: "empty" }, "no services registered"));
  document.getElementById("node-count").textContent = `(${snapshot.services.length} services, ${nodes} nodes)`;
  updateEndpointNames();
  const changes = document.getElementById("changes");
  changes.replaceChildren(...snapshot.changes.map((c) => el("li", {},
    `${new Date(c.at).toLocaleTimeString()} ${c.action} ${c.node} ${c.address}`)));
}

function updateEndpointNames() {
  const service = document.getElementById("call-service").value;
  const list = document.getElementById("endpoint-names");
  list.replaceChildren();
  for (const svc of lastServices.filter((s) => s.name === service)) {
    for (const e of (svc.versions[0] && svc.versions[0].endpoints) || []) {
      list.append(el("option", { value: e.name }));
    }
  }
}

function renderRegistry(status) {
  const members = document.querySelector("#members tbody");
  members.replaceChildren(...status.members.map((m) => el("tr", { class: "member", "data-member": m.name },
    el("td", {}, m.name), el("td", {}, m.id), el("td", {}, m.client_urls.join(", ")),
    m.error ? el("td", { class: "error" }, m.error)
      : el("td", { class: m.leader ? "leader" : "" }, m.leader ? "leader" : "follower"),
    el("td", {}, m.term), el("td", {}, m.revision), el("td", {}, m.raft_index), el("td", {}, m.version))));
  const leases = document.querySelector("#leases tbody");
  leases.replaceChildren(...status.leases.map((l) => el("tr", { class: "lease", "data-lease": l.id },
    el("td", {}, l.id), el("td", { class: "ttl" }, `${l.ttl}s`), el("td", {}, `${l.granted_ttl}s`),
    el("td", {}, l.keys.join("\n")))));
  const more = status.more_leases ? ` +${status.more_leases} not listed` : "";
  document.getElementById("lease-count").textContent = `(${status.leases.length}${more})`;
  document.getElementById("registry-errors").textContent = status.errors.join("\n");
}

async function pollRegistry() {
  try {
    const response = await fetch("/api/registry");
    renderRegistry(await response.json());
  } catch (e) {
    document.getElementById("registry-errors").textContent = `dashboard unreachable: ${e}`;
  } finally {
    setTimeout(pollRegistry, REGISTRY_POLL_MS);
  }
}

function follow() {
  const live = document.getElementById("live");
  // EventSource reconnects by itself; the badge shows whether the stream is up.
  const events = new EventSource("/api/events");
  events.addEventListener("open", () => { live.textContent = "live"; live.className = "badge on"; });
  events.addEventListener("error", () => { live.textContent = "reconnecting"; live.className = "badge off"; });
  events.addEventListener("services", (e) => renderServices(JSON.parse(e.data)));
}

async function call(event) {
  event.preventDefault();
  const result = document.getElementById("call-result");
  result.className = "result";
  result.textContent = "calling...";
  const form = {
    service: document.getElementById("call-service").value,
    endpoint: document.getElementById("call-endpoint").value,
    request: document.getElementById("call-request").value,
  };
  try {
    const response = await fetch("/api/call", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(form),
    });
    const answer = await response.json();
    if (answer.error !== undefined) {
      result.className = "result error";
      result.textContent = answer.error;
    } else {
      result.className = "result ok";
      result.textContent = answer.answer;
    }
  } catch (e) {
    result.className = "result error";
    result.textContent = `dashboard unreachable: ${e}`;
  }
}

document.getElementById("call-form").addEventListener("submit", call);
document.getElementById("call-service").addEventListener("input", updateEndpointNames);
follow();
pollRegistry();

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmemd's Cockpit page.  Everything it shows or changes goes through
 * vmemctl --json, run as the logged-in user: the daemon decides who may do
 * what, and its messages are shown as they are. */
"use strict";

const SINCE = "6h";
const SPAN_S = 6 * 3600;
const REFRESH_MS = 10000;
const COLORS = ["#0066cc", "#4cb140", "#f0ab00", "#ec7a08", "#009596", "#5752d1",
                "#c9190b", "#8f4700", "#7d1007", "#38812f", "#004b95", "#6a6e73"];

const state = {
    status: null,
    profiles: [],
    explain: {},        /* workload -> explanation */
    sort: { key: "name", dir: 1 },
    editing: null,      /* the profile being edited, or null for a new one */
    hosts: null,
};

function $(sel, root) { return (root || document).querySelector(sel); }

function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === undefined || v === null)
            continue;
        if (k === "class")
            e.className = v;
        else if (k.startsWith("on"))
            e.addEventListener(k.slice(2), v);
        else
            e.setAttribute(k, v);
    }
    for (const c of children)
        if (c !== undefined && c !== null)
            e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {}))
        e.setAttribute(k, v);
    if (text !== undefined)
        e.textContent = text;
    return e;
}

function mib(v) { return v === undefined || v === null ? "-" : v + " MiB"; }

/* A profile's sizes: 0 or absent is unset. */
function sizeArg(v) { return v ? v + "M" : ""; }
function psize(v) { return v ? v + " MiB" : "-"; }

function fmtTime(t) {
    const d = new Date(t * 1000);
    return d.toLocaleString(undefined, { hour12: false });
}

/* ---- vmemctl ------------------------------------------------------------ */

function vmemctl(args, json) {
    const argv = ["vmemctl"].concat(json ? ["--json"] : [], args);
    return cockpit.spawn(argv, { err: "message", environ: ["LC_ALL=C.UTF-8"] })
            .then(out => json ? JSON.parse(out) : out);
}

function errorText(ex) {
    if (ex && ex.message)
        return ex.message.trim();
    if (ex && ex.problem === "not-found")
        return "vmemctl is not installed";
    return String(ex);
}

function showError(ex) {
    const box = $("#error");
    if (ex === null) {
        box.hidden = true;
        box.textContent = "";
        return;
    }
    box.textContent = errorText(ex);
    box.hidden = false;
}

/* What the page does with a change: run it, show the daemon's error as it
 * is, reload either way. */
function change(args) {
    showError(null);
    return vmemctl(args, false)
            .then(() => true, ex => { showError(ex); return false })
            .then(ok => refresh().then(() => ok));
}

/* ---- status of a domain ----------------------------------------------- */

const PRESSURE = /under the buffer|swapped in|major faults|guest memory pressure/;

/* ok / pressure / starved / no driver, from the controller's last action
 * and its reason. */
function domainStatus(d) {
    if (!d.managed)
        return "";
    if (d.state !== "running")
        return d.state || "";
    if (d.action === "no-driver" || d.action === "no-stats" || d.action === "stuck" ||
        (d.used_mib === undefined && d.action === undefined))
        return "no driver";
    const reason = d.reason || "";
    if (/the host is short by/.test(reason) && (d.action === "grow" || d.action === "hold"))
        return "starved";
    if (PRESSURE.test(reason)) {
        if (d.action === "grow" || /already gives/.test(reason))
            return "pressure";
        return "starved";
    }
    return "ok";
}

/* ---- charts --------------------------------------------------------------- */

/* series: [{ name, color, points: [[t, mib], ...] }]; stacked: areas on top
 * of each other, else lines. */
function drawChart(container, series, t0, t1, stacked) {
    const W = 900, H = 260, L = 70, R = 10, T = 10, B = 30;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    let max = 0;
    if (stacked) {
        const n = series.length ? series[0].points.length : 0;
        for (let i = 0; i < n; i++)
            max = Math.max(max, series.reduce((s, x) => s + (x.points[i][1] || 0), 0));
    } else {
        for (const s of series)
            for (const p of s.points)
                max = Math.max(max, p[1]);
    }
    max = max > 0 ? niceCeil(max) : 1024;
    const x = t => L + (W - L - R) * (t - t0) / Math.max(1, t1 - t0);
    const y = v => H - B - (H - T - B) * v / max;
    for (let i = 0; i <= 4; i++) {
        const v = max * i / 4;
        root.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
        root.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, Math.round(v) + " MiB"));
    }
    for (let i = 0; i <= 6; i++) {
        const t = t0 + (t1 - t0) * i / 6;
        const d = new Date(t * 1000);
        const label = d.getHours().toString().padStart(2, "0") + ":" + d.getMinutes().toString().padStart(2, "0");
        root.append(svg("text", { x: x(t), y: H - B + 16, "text-anchor": i === 6 ? "end" : "middle" }, label));
    }
    root.append(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
    root.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    if (stacked) {
        const n = series.length ? series[0].points.length : 0;
        const base = new Array(n).fill(0);
        for (const s of series) {
            const top = s.points.map((p, i) => base[i] + (p[1] || 0));
            let d = "";
            for (let i = 0; i < n; i++)
                d += (i ? "L" : "M") + x(s.points[i][0]).toFixed(1) + "," + y(top[i]).toFixed(1);
            for (let i = n - 1; i >= 0; i--)
                d += "L" + x(s.points[i][0]).toFixed(1) + "," + y(base[i]).toFixed(1);
            root.append(svg("path", { d: d + "Z", fill: s.color, "fill-opacity": 0.7, stroke: s.color, "data-series": s.name }));
            for (let i = 0; i < n; i++)
                base[i] = top[i];
        }
    } else {
        for (const s of series) {
            if (!s.points.length)
                continue;
            let d = "";
            s.points.forEach((p, i) => { d += (i ? "L" : "M") + x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1) });
            root.append(svg("path", { d, fill: "none", stroke: s.color, "stroke-width": 2,
                                      "stroke-dasharray": s.dash || "", "data-series": s.name }));
        }
    }
    const legend = el("div", { class: "legend" });
    for (const s of series)
        legend.append(el("span", { "data-series": s.name }, swatch(s.color), s.name));
    container.replaceChildren(root, legend);
}

/* A legend's colour square: an SVG, since Cockpit's content security
 * policy refuses inline styles. */
function swatch(color) {
    const e = svg("svg", { width: 12, height: 12, viewBox: "0 0 12 12" });
    e.append(svg("rect", { width: 12, height: 12, fill: color }));
    return e;
}

function niceCeil(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10])
        if (m * p >= v)
            return m * p;
    return 10 * p;
}

/* The target in force at time t: the last applied move before it, else
 * the balloon size then (before any move the balloon is at its target). */
function targetAt(h, t, sample) {
    let target = null;
    for (const m of h.moves)
        if (m.applied && m.t <= t)
            target = m.to_mib;
    if (target !== null)
        return target;
    return sample ? sample.actual_mib : 0;
}

/* Samples sorted by time; the one in force at t (none if older than gap). */
function sampleAt(samples, t, gap) {
    let best = null;
    for (const s of samples) {
        if (s.t > t)
            break;
        best = s;
    }
    return best && t - best.t <= gap ? best : null;
}

function sortedHistory(h) {
    h.samples = (h.samples || []).slice().sort((a, b) => a.t - b.t);
    h.moves = (h.moves || []).slice().sort((a, b) => a.t - b.t);
    return h;
}

/* ---- Host ----------------------------------------------------------------- */

function renderHost() {
    const s = state.status;
    if (!s)
        return;
    const reserved = (s.reservations || []).reduce((a, r) => a + (r.mib || 0), 0);
    /* Committed counts each boot reservation already (the larger of a
     * domain's balloon and its reservation). */
    const free = s.capacity_mib - s.committed_mib;
    const fig = (label, value, key) => el("div", { "data-key": key }, el("dt", {}, label), el("dd", {}, value));
    $("#host-figures").replaceChildren(
        fig("Capacity", mib(s.capacity_mib), "capacity_mib"),
        fig("Committed", mib(s.committed_mib), "committed_mib"),
        fig("Boot reservations", mib(reserved), "reservations"),
        fig("Free", mib(free), "free_mib"),
        fig("Admission", s.admission, "admission"),
        fig("libvirt", s.libvirt_connected ? "connected" : "not connected", "libvirt"),
        fig("Ready", s.ready ? "yes" : "no", "ready"));
    const tbody = $("#reservations tbody");
    tbody.replaceChildren(...(s.reservations || []).map(r =>
        el("tr", {}, el("td", {}, r.name), el("td", { class: "num" }, mib(r.mib)), el("td", { class: "num" }, r.age_s + " s"))));
    if (!(s.reservations || []).length)
        tbody.append(el("tr", {}, el("td", { colspan: 3, class: "note" }, "none")));
    drawHostChart();
}

function drawHostChart() {
    const managed = (state.status.domains || []).filter(d => d.managed);
    const now = Math.floor(Date.now() / 1000);
    const t0 = now - SPAN_S;
    Promise.all(managed.map(d => vmemctl(["history", d.uuid, "--since", SINCE], true)
            .then(sortedHistory, () => ({ samples: [], moves: [] }))))
            .then(hs => {
                const N = 120;
                const step = SPAN_S / N;
                const series = hs.map((h, k) => {
                    const d = managed[k];
                    const points = [];
                    for (let i = 0; i <= N; i++) {
                        const t = t0 + i * step;
                        const s = sampleAt(h.samples, t, step + 60);
                        points.push([t, s ? targetAt(h, t, s) : 0]);
                    }
                    /* Now: what the daemon says. */
                    if (d.state === "running")
                        points[N][1] = d.target_mib !== undefined ? d.target_mib : d.current_mib;
                    return { name: d.name, color: COLORS[k % COLORS.length], points };
                });
                drawChart($("#host-chart"), series, t0, now, true);
            });
}

/* ---- Domains ------------------------------------------------------------- */

function domainRows() {
    const rows = (state.status ? state.status.domains : []).filter(d => d.managed)
            .map(d => Object.assign({}, d, { status: domainStatus(d) }));
    const { key, dir } = state.sort;
    rows.sort((a, b) => {
        const va = a[key], vb = b[key];
        if (va === vb)
            return a.name < b.name ? -1 : 1;
        if (va === undefined)
            return 1;
        if (vb === undefined)
            return -1;
        return (typeof va === "number" ? va - vb : String(va).localeCompare(String(vb))) * dir;
    });
    return rows;
}

function renderDomains() {
    const tbody = $("#domains tbody");
    const rows = domainRows();
    tbody.replaceChildren(...rows.map(d => {
        const num = (k) => el("td", { class: "num", "data-key": k }, mib(d[k]));
        const st = d.status;
        return el("tr", { "data-name": d.name },
                  el("td", { "data-key": "name" }, el("a", { href: "#/domain/" + encodeURIComponent(d.name) }, d.name)),
                  el("td", { "data-key": "workload" }, d.workload),
                  num("demand_mib"), num("target_mib"), num("current_mib"), num("used_mib"),
                  el("td", { "data-key": "status" }, st ? el("span", { class: "status status-" + st.replace(" ", "-") }, st) : ""),
                  el("td", { "data-key": "action" }, d.action ? d.action + (d.action_time ? " at " + fmtTime(d.action_time) : "") : "-"),
                  el("td", { "data-key": "reason", class: "reason" }, d.reason || ""));
    }));
    if (!rows.length)
        tbody.append(el("tr", {}, el("td", { colspan: 9, class: "note" }, "No managed domain.")));
    const other = (state.status ? state.status.domains : []).filter(d => !d.managed).map(d => d.name);
    $("#unmanaged").textContent = other.length ? "Not managed: " + other.join(", ") : "";
    for (const th of document.querySelectorAll("#domains th[data-key]")) {
        th.classList.toggle("sorted-asc", th.dataset.key === state.sort.key && state.sort.dir > 0);
        th.classList.toggle("sorted-desc", th.dataset.key === state.sort.key && state.sort.dir < 0);
    }
}

function renderDomain(name) {
    $("#domain-name").textContent = name;
    const d = ((state.status && state.status.domains) || []).find(x => x.name === name);
    const fig = (label, value) => el("div", {}, el("dt", {}, label), el("dd", {}, value));
    if (d)
        $("#domain-figures").replaceChildren(
            fig("Workload", d.workload || "-"), fig("State", d.state),
            fig("Memory", mib(d.memory_mib)), fig("Demand", mib(d.demand_mib)),
            fig("Target", mib(d.target_mib)), fig("Actual", mib(d.current_mib)),
            fig("Used", mib(d.used_mib)), fig("Status", domainStatus(d) || "-"));
    vmemctl(["explain", name], false)
            .then(text => { $("#domain-explain").textContent = text },
                  ex => { $("#domain-explain").textContent = errorText(ex) });
    vmemctl(["history", name, "--since", SINCE], true).then(sortedHistory).then(h => {
        const now = Math.floor(Date.now() / 1000);
        const t0 = now - SPAN_S;
        const used = h.samples.map(s => [s.t, s.used_mib]);
        const target = h.samples.map(s => [s.t, targetAt(h, s.t, s)]);
        const series = [
            { name: "used", color: "#c9190b", points: used },
            { name: "target", color: "#0066cc", points: target },
        ];
        const demand = d && d.demand_mib !== undefined ? d.demand_mib : null;
        if (demand !== null)
            series.push({ name: "demand (staged now)", color: "#4cb140", dash: "6 4",
                          points: [[t0, demand], [now, demand]] });
        drawChart($("#domain-chart"), series, t0, now, false);
        $("#moves tbody").replaceChildren(...h.moves.slice().reverse().map(m =>
            el("tr", {}, el("td", {}, fmtTime(m.t)), el("td", {}, m.action),
               el("td", { class: "num" }, mib(m.from_mib)), el("td", { class: "num" }, mib(m.to_mib)),
               el("td", {}, m.applied ? "yes" : "no"), el("td", { class: "reason" },
                  m.reason === null ? "(reason no longer kept)" : m.reason))));
    }, ex => { $("#domain-chart").textContent = errorText(ex) });
}

/* ---- Workloads ------------------------------------------------------------- */

function renderWorkloads() {
    const tbody = $("#profiles tbody");
    tbody.replaceChildren(...state.profiles.map(p => {
        const x = state.explain[p.name] || {};
        const plan = x.plan || {};
        const est = plan.estimate || null;
        const peers = est && est.peers ? est.peers.length : 0;
        const c = est ? est.calibration : null;
        const cal = est && plan.source === "peers" && est.margin_pct !== undefined
            ? (c && c.scope !== "none"
               ? `margin ${(+est.effective_margin_pct).toFixed(1)}%: risk \u2264 ${+(c.risk * 100).toFixed(2)}% with ${+(c.confidence * 100).toFixed(1)}% confidence, ${c.outcomes} outcomes`
               : `margin ${est.margin_pct}%: too few outcomes to calibrate`)
            : "-";
        const del = el("button", { class: "danger", "data-action": "delete" }, "Delete");
        del.addEventListener("click", () => {
            if (del.dataset.armed) {
                change(["profile", "remove", p.name]);
                return;
            }
            del.dataset.armed = "1";
            del.textContent = "Delete " + p.name + "?";
        });
        return el("tr", { "data-name": p.name },
                  el("td", { "data-key": "name" }, p.name),
                  el("td", { class: "num", "data-key": "demand_mib" }, psize(p.demand_mib)),
                  el("td", { class: "num", "data-key": "floor_mib" }, psize(p.floor_mib)),
                  el("td", { class: "num", "data-key": "ceiling_mib" }, psize(p.ceiling_mib)),
                  el("td", { "data-key": "mode" }, p.mode),
                  el("td", { class: "num", "data-key": "estimate" }, mib(plan.demand_mib)),
                  el("td", { "data-key": "source" }, plan.source || "-"),
                  el("td", { class: "num", "data-key": "peers" }, est ? peers : "-"),
                  el("td", { "data-key": "calibration" }, cal),
                  el("td", { "data-key": "domains" }, (x.domains || []).join(", ")),
                  el("td", {}, el("button", { type: "button", "data-action": "edit", onclick: () => editProfile(p) }, "Edit"), " ", del));
    }));
    const doms = (state.status ? state.status.domains : []).map(d => d.name);
    fillSelect($("#assign-form select[name=domain]"), doms);
    fillSelect($("#assign-form select[name=workload]"), state.profiles.map(p => p.name));
}

function fillSelect(sel, values) {
    const keep = sel.value;
    sel.replaceChildren(...values.map(v => el("option", { value: v }, v)));
    if (values.includes(keep))
        sel.value = keep;
}

const FIELDS = {
    demand: p => sizeArg(p.demand_mib), floor: p => sizeArg(p.floor_mib), ceiling: p => sizeArg(p.ceiling_mib),
    margin: p => p.margin_pct ?? "", quantile: p => p.quantile ?? "", buffer: p => p.buffer_pct ?? "",
    mode: p => p.mode || "balloon", prealloc: p => p.prealloc === false ? "off" : "on",
    scale: p => p.scale || "absolute", priority: p => p.priority ?? "", match: p => p.match ?? "",
};
const SIZES = ["demand", "floor", "ceiling"];

function editProfile(p) {
    state.editing = p;
    const f = $("#profile-form");
    f.hidden = false;
    $("#profile-form-title").textContent = p ? "Edit " + p.name : "New profile";
    f.elements.name.value = p ? p.name : "";
    f.elements.name.readOnly = !!p;
    for (const [k, get] of Object.entries(FIELDS))
        f.elements[k].value = p ? String(get(p)) : (k === "mode" ? "balloon" : k === "prealloc" ? "on" : k === "scale" ? "absolute" : "");
}

function saveProfile(ev) {
    ev.preventDefault();
    const f = $("#profile-form");
    const p = state.editing;
    const name = f.elements.name.value.trim();
    const args = ["profile", p ? "set" : "add", name];
    for (const [k, get] of Object.entries(FIELDS)) {
        const v = f.elements[k].value.trim();
        if (p && v === String(get(p)))
            continue;
        if (v === "") {
            if (!p)
                continue;
            if (k === "match")
                args.push("--no-match");
            else if (SIZES.includes(k))
                args.push("--" + k, "none");
            continue;
        }
        args.push("--" + k, v);
    }
    change(args).then(ok => {
        if (ok) {
            f.hidden = true;
            state.editing = null;
        }
    });
}

/* ---- Hosts ------------------------------------------------------------------ */

/* The tab is there only when the store is shared: `vmemctl hosts` lists a
 * host other than this one. */
function probeHosts() {
    return vmemctl(["hosts"], true).then(h => {
        state.hosts = h && Array.isArray(h.hosts) && h.hosts.some(x => !x.self) ? h : null;
    }, () => { state.hosts = null }).then(() => {
        $("#tab-hosts").hidden = !state.hosts;
    });
}

function renderHosts() {
    if (!state.hosts)
        return;
    $("#hosts tbody").replaceChildren(...state.hosts.hosts.map(h => {
        const name = h.name && h.name !== h.id ? `${h.name} (${h.id})` : h.id;
        const note = [h.self ? "this host" : "", h.alive ? "" : "no heartbeat"].filter(x => x).join(", ");
        return el("tr", { "data-name": h.id }, el("td", {}, name),
                  el("td", { class: "num" }, mib(h.capacity_mib)), el("td", { class: "num" }, mib(h.committed_mib)),
                  el("td", { class: "num" }, mib(h.free_mib)),
                  el("td", { class: "note" }, note));
    }));
}

/* ---- loading and routing ----------------------------------------------- */

function refresh() {
    return Promise.all([
        vmemctl(["status"], true),
        vmemctl(["profile", "list"], true),
    ]).then(([status, list]) => {
        state.status = status.status || status;
        state.profiles = Array.isArray(list) ? list : (list.profiles || []);
        return Promise.all(state.profiles.map(p => vmemctl(["explain", "--workload", p.name], true)
                .then(x => [p.name, x.explanation || x], () => [p.name, {}])));
    }).then(xs => {
        state.explain = Object.fromEntries(xs);
        render();
    }, ex => {
        showError(ex);
        render();
    });
}

function render() {
    const path = cockpit.location.path;
    if (state.status)
        $("#host-name").textContent = `vmemd ${state.status.version} on ${state.status.host}`;
    const page = path[0] || "host";
    for (const a of document.querySelectorAll("#tabs a"))
        a.classList.toggle("active", a.dataset.tab === (page === "domain" ? "domains" : page));
    for (const s of document.querySelectorAll(".page"))
        s.hidden = s.id !== "page-" + page;
    if (page === "host")
        renderHost();
    else if (page === "domains")
        renderDomains();
    else if (page === "domain")
        renderDomain(path[1] || "");
    else if (page === "workloads")
        renderWorkloads();
    else if (page === "hosts")
        renderHosts();
    document.body.dataset.loaded = String((+document.body.dataset.loaded || 0) + 1);
}

function init() {
    for (const th of document.querySelectorAll("#domains th[data-key]"))
        th.addEventListener("click", () => {
            const key = th.dataset.key;
            state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
            renderDomains();
        });
    $("#profile-new").addEventListener("click", () => editProfile(null));
    $("#profile-cancel").addEventListener("click", () => { $("#profile-form").hidden = true });
    $("#profile-form").addEventListener("submit", saveProfile);
    $("#assign-form").addEventListener("submit", ev => {
        ev.preventDefault();
        const f = ev.target;
        change(["assign", f.elements.domain.value, f.elements.workload.value]);
    });
    $("#unassign").addEventListener("click", () => {
        change(["unassign", $("#assign-form").elements.domain.value]);
    });
    cockpit.addEventListener("locationchanged", render);
    probeHosts().then(refresh);
    window.setInterval(() => {
        if ($("#profile-form").hidden)
            refresh();
    }, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", init);

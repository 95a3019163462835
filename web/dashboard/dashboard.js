// SPDX-License-Identifier: MIT
// The cache dashboard: reads the service's cache history and statistics
// (same origin, nothing else) and draws them with uPlot. Every figure is
// derived from the history's cumulative counters; docs/dashboard.md says
// how each chart and the cost/benefit sentence are computed.
(function () {
    "use strict";

    const HISTORY = "/api/v1/monitoring/cache/history";
    const STATS = "/api/v1/monitoring/cache/stats";
    const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c",
                    "#0891b2", "#4b5563"];
    const BREAKER = ["closed", "half_open", "open"];
    const CHANNEL = ["none", "down", "connecting", "healthy"];

    const nf = new Intl.NumberFormat("en-US");
    const nf1 = new Intl.NumberFormat("en-US", {maximumFractionDigits: 1});
    const charts = {};
    let drawn = 0;

    function $(id) { return document.getElementById(id); }

    function setValue(id, text, raw, cls) {
        const el = $(id);
        el.textContent = text;
        el.dataset.value = String(raw);
        el.className = "value" + (cls ? " " + cls : "");
    }

    // Differences of a cumulative column between consecutive samples, per
    // second or as they are; the first sample has no predecessor (null).
    function delta(col, t, perSecond) {
        const out = [null];
        for (let i = 1; i < col.length; i++) {
            const d = col[i] - col[i - 1];
            const dt = t[i] - t[i - 1];
            if (d < 0 || (perSecond && dt <= 0)) {
                out.push(null);
            } else {
                out.push(perSecond ? d / dt : d);
            }
        }
        return out;
    }

    // Percent of part over whole, per interval; null without reads.
    function ratio(part, whole) {
        return part.map((p, i) =>
            p === null || whole[i] === null || whole[i] === 0
                ? null : 100 * p / whole[i]);
    }

    function add(a, b) {
        return a.map((x, i) => x === null || b[i] === null ? null : x + b[i]);
    }

    function scale(col, f) {
        return col.map((x) => x === null ? null : x * f);
    }

    // Mean loader time of one load, µs, over every load since the start;
    // 0 before the first load.
    function meanLoadUs(c) {
        const n = c.loader_calls.length - 1;
        return c.loader_calls[n] > 0 ? c.loader_us[n] / c.loader_calls[n] : 0;
    }

    function duration(s) {
        if (s >= 3540) {
            const h = Math.round(s / 360) / 10;
            return h === 1 ? "hour" : nf1.format(h) + " hours";
        }
        if (s >= 90) {
            return nf.format(Math.round(s / 60)) + " minutes";
        }
        return nf.format(Math.round(s)) + " seconds";
    }

    function seconds(us) {
        const s = us / 1e6;
        if (s >= 100) { return nf.format(Math.round(s)) + " s"; }
        if (s >= 1) { return nf1.format(s) + " s"; }
        return nf.format(Math.round(us / 1000)) + " ms";
    }

    function bytes(b) {
        if (b >= 1048576) { return nf1.format(b / 1048576) + " MiB"; }
        if (b >= 1024) { return nf1.format(b / 1024) + " KiB"; }
        return nf.format(b) + " B";
    }

    // ---- the cost/benefit, from the history window ------------------------
    //
    // Every hit is a load the cache avoided, i.e. a database query it
    // absorbed. Its database time is the mean time the service's loader
    // took per load of that keyspace (all loads since the start, so that a
    // window without any load still has a mean). Hence, per keyspace,
    //   queries saved = hits(last) - hits(first)
    //   time saved    = queries saved * loader_us / loader_calls (last)
    // summed over the keyspaces.
    function benefit(h) {
        const n = h.t_ms.length - 1;
        let queries = 0, us = 0, loads = 0;
        for (const name of Object.keys(h.keyspaces)) {
            const c = h.keyspaces[name];
            const hits = c.hits[n] - c.hits[0];
            queries += hits;
            us += hits * meanLoadUs(c);
            loads += c.loader_calls[n] - c.loader_calls[0];
        }
        return {queries: queries, us: us, loads: loads,
                span_s: (h.t_ms[n] - h.t_ms[0]) / 1000};
    }

    function renderSummary(h, st) {
        const tot = st.totals;
        setValue("hit-rate", nf1.format(100 * tot.hit_rate) + " %",
                 tot.hit_rate,
                 tot.hits + tot.misses === 0 ? ""
                     : tot.hit_rate >= 0.8 ? "good"
                     : tot.hit_rate >= 0.5 ? "warn" : "bad");
        setValue("hits", nf.format(tot.hits), tot.hits);
        setValue("misses", nf.format(tot.misses), tot.misses);

        const b = benefit(h);
        setValue("saved-queries", nf.format(b.queries), b.queries, "good");
        setValue("saved-time", seconds(b.us), b.us / 1e6, "good");
        const win = duration(b.span_s);
        const sentence = $("benefit");
        sentence.textContent = "";
        sentence.append("In the last " + win + " the cache saved ");
        const q = document.createElement("strong");
        q.textContent = nf.format(b.queries) + " database queries";
        sentence.append(q, " and ");
        const t = document.createElement("strong");
        t.textContent = seconds(b.us) + " of database time";
        sentence.append(t, ".");
        const reads = b.queries + b.loads;
        $("benefit-detail").textContent =
            "The database answered " + nf.format(b.loads) +
            " loads in that time, so the cache took " +
            (reads > 0 ? nf1.format(100 * b.queries / reads) : "0") +
            " % of the reads off it. Time saved is each keyspace's hits " +
            "times the mean time its loader takes per database load.";

        const near = st.near || {};
        const u = near.usage || {bytes: 0, budget_bytes: 0};
        setValue("near-used", near.enabled
                     ? bytes(u.bytes) + " / " + bytes(u.budget_bytes) : "off",
                 u.bytes);
        const br = st.pool ? st.pool.breaker : "closed";
        setValue("breaker", br, br, br === "closed" ? "good" : "bad");
        const ch = near.channel || "none";
        setValue("channel", ch, ch,
                 ch === "healthy" ? "good" : ch === "none" ? "" : "warn");
        $("backend").textContent = "backend: " + st.backend +
            (st.scope ? " (" + st.scope + ")" : "");
        $("footer").textContent = "Sampled every " + h.interval_s +
            " s, " + h.capacity + " samples kept (" +
            duration(h.interval_s * h.capacity) + "); showing " +
            h.samples + " (the last one taken just now). " +
            "Hit rates and rates are per sampling interval.";
    }

    function renderHot(h) {
        const body = $("hot").tBodies[0];
        body.textContent = "";
        let rows = 0;
        for (const name of Object.keys(h.hot)) {
            for (const e of h.hot[name]) {
                const tr = document.createElement("tr");
                for (const [text, cls] of [[name, ""], [e.key, "key"],
                                           [nf.format(e.reads), "num"]]) {
                    const td = document.createElement("td");
                    td.textContent = text;
                    if (cls) { td.className = cls; }
                    tr.append(td);
                }
                body.append(tr);
                rows++;
            }
        }
        if (rows === 0) {
            const tr = document.createElement("tr");
            const td = document.createElement("td");
            td.colSpan = 3;
            td.className = "muted";
            td.textContent = "No entries read yet.";
            tr.append(td);
            body.append(tr);
        }
    }

    // ---- charts -----------------------------------------------------------

    // Each chart: id, title, what it means, y unit, series names, and the
    // columns (after the time column) computed from the history.
    function chartDefs(h) {
        const t = h.t_ms.map((x) => x / 1000);
        const names = Object.keys(h.keyspaces);
        const T = h.totals;
        const defs = [];

        const reads = (c) => add(delta(c.hits, t), delta(c.misses, t));
        defs.push({
            id: "hit-ks", title: "Hit rate per keyspace",
            help: "Hits / (hits + misses) in each interval.",
            unit: "%", range: [0, 100],
            series: names.concat(["all"]),
            cols: names.map((n) => ratio(delta(h.keyspaces[n].hits, t),
                                         reads(h.keyspaces[n])))
                .concat([ratio(delta(T.hits, t), reads(T))]),
        });
        const redisHits = T.hits.map((x, i) => x - T.near_hits[i]);
        defs.push({
            id: "hit-tier", title: "Hit rate per tier",
            help: "Near: reads answered in-process. Redis: of the reads " +
                "the near cache did not answer, those Redis had.",
            unit: "%", range: [0, 100],
            series: ["near", "redis"],
            cols: [ratio(delta(T.near_hits, t), reads(T)),
                   ratio(delta(redisHits, t),
                         add(delta(redisHits, t), delta(T.misses, t)))],
        });
        const L = h.latency;
        defs.push({
            id: "latency", title: "Latency p50 / p99",
            help: "Requests to the service and cache reads, per interval " +
                "(upper bounds of histogram buckets).",
            unit: "ms",
            series: ["request p50", "request p99", "cache p50", "cache p99"],
            cols: [scale(L.request_p50_us_le, 1e-3),
                   scale(L.request_p99_us_le, 1e-3),
                   scale(L.get_p50_us_le, 1e-3),
                   scale(L.get_p99_us_le, 1e-3)],
        });
        defs.push({
            id: "db-load", title: "Database load saved",
            help: "Queries per second the cache absorbed (hits) against " +
                "those that reached the database (loads).",
            unit: "/s",
            series: ["absorbed by the cache", "sent to the database"],
            cols: [delta(T.hits, t, true), delta(T.loader_calls, t, true)],
        });
        const saved = names.map((n) => {
            const c = h.keyspaces[n];
            return scale(delta(c.hits, t, true), meanLoadUs(c) / 1000);
        });
        defs.push({
            id: "db-time", title: "Database time saved",
            help: "Milliseconds of loader time avoided per second: hits " +
                "times the keyspace's mean loader time.",
            unit: "ms/s", series: names, cols: saved,
        });
        defs.push({
            id: "absorbed", title: "Database queries absorbed",
            help: "Hits since the start of the window, per keyspace.",
            unit: "", series: names,
            cols: names.map((n) => h.keyspaces[n].hits.map(
                (x) => x - h.keyspaces[n].hits[0])),
        });
        const evicted = h.redis.evicted_keys;
        defs.push({
            id: "evictions", title: "Evictions",
            help: "Entries dropped per second to stay within memory: the " +
                "near cache's budget, and Redis's maxmemory.",
            unit: "/s", series: ["near cache", "redis"],
            cols: [delta(T.near_evictions, t, true),
                   evicted.some((x) => x === null) ? evicted.map(() => null)
                       : delta(evicted, t, true)],
        });
        const last = t.length - 1;
        defs.push({
            id: "near-bytes", title: "Near cache memory",
            help: "Bytes held (entries and their overhead) as a share of " +
                "the budget; now " + bytes(T.near_bytes[last]) + " of " +
                bytes(h.near.budget_bytes[last]) + ".",
            unit: "%", range: [0, 100], series: ["held"],
            cols: [T.near_bytes.map((b, i) => h.near.budget_bytes[i] > 0
                ? 100 * b / h.near.budget_bytes[i] : null)],
        });
        defs.push({
            id: "lag", title: "Invalidation lag",
            help: "Time from a write in Redis to its invalidation reaching " +
                "this process (heartbeat probes), per interval.",
            unit: "ms", series: ["p50", "p99"],
            cols: [scale(h.near.lag_p50_us_le, 1e-3),
                   scale(h.near.lag_p99_us_le, 1e-3)],
        });
        defs.push({
            id: "stale", title: "Stale answers and fallbacks",
            help: "Per second: answers past their TTL (the database failed " +
                "or was slow), and reads served by the database because " +
                "the cache failed.",
            unit: "/s", series: ["stale served", "fallbacks"],
            cols: [delta(T.stale_served, t, true),
                   delta(T.fallbacks, t, true)],
        });
        defs.push({
            id: "refill", title: "Warm on write",
            help: "Per second: hot entries loaded again right after a " +
                "write invalidated them, reads those entries answered " +
                "(hits that would have waited for the database), and " +
                "refills not made (the entry was cold, the refill rate " +
                "was spent, the queue was full or a breaker open; each " +
                "cause is in the cache statistics).",
            unit: "/s",
            series: ["refills", "reads answered by refills",
                     "refills skipped"],
            cols: [delta(T.refills, t, true), delta(T.refill_hits, t, true),
                   delta(T.refill_skipped, t, true)],
        });
        defs.push({
            id: "state", title: "Breaker and channel state",
            help: "Redis circuit breaker (0 closed, 1 half open, 2 open) " +
                "and the near cache's invalidation channel (0 none, " +
                "1 down, 2 connecting, 3 healthy).",
            unit: "", range: [0, 3], step: true,
            series: ["breaker", "channel"],
            cols: [h.pool.breaker.map((s) => BREAKER.indexOf(s)),
                   h.near.channel.map((s) => CHANNEL.indexOf(s))],
        });
        return {t: t, defs: defs};
    }

    function plotWidth(el) {
        return Math.max(300, el.clientWidth - 4);
    }

    function makeChart(def, data) {
        const box = document.createElement("div");
        box.className = "chart";
        box.id = "chart-" + def.id;
        const h2 = document.createElement("h2");
        h2.textContent = def.title;
        const p = document.createElement("p");
        p.textContent = def.help;
        const plot = document.createElement("div");
        plot.className = "plot";
        box.append(h2, p, plot);
        $("charts").append(box);

        const series = [{}];
        def.series.forEach((name, i) => {
            const s = {
                label: name,
                stroke: COLORS[i % COLORS.length],
                width: 2,
                value: (u, v) => v === null || v === undefined ? "–"
                    : nf1.format(v) + (def.unit ? " " + def.unit : ""),
            };
            if (def.step) {
                s.paths = uPlot.paths.stepped({align: 1});
            }
            series.push(s);
        });
        const opts = {
            width: plotWidth(plot),
            height: 220,
            series: series,
            scales: {y: def.range
                ? {range: () => def.range} : {range: (u, lo, hi) =>
                    [Math.min(0, lo), hi > 0 ? hi * 1.1 : 1]}},
            axes: [{}, {size: 60,
                        values: (u, ticks) => ticks.map((v) => nf1.format(v))}],
            hooks: {draw: [() => { countDraw(def.id); }]},
        };
        const u = new uPlot(opts, data, plot);
        charts[def.id] = {u: u, plot: plot, help: p, drawn: false};
    }

    function countDraw(id) {
        const c = charts[id];
        if (c !== undefined && !c.drawn) {
            c.drawn = true;
            drawn++;
            if (drawn === Object.keys(charts).length) {
                document.body.dataset.rendered = "1";
            }
        }
    }

    function renderCharts(h) {
        const cd = chartDefs(h);
        for (const def of cd.defs) {
            const data = [cd.t].concat(def.cols);
            if (charts[def.id] === undefined) {
                makeChart(def, data);
            } else {
                charts[def.id].help.textContent = def.help;
                charts[def.id].u.setData(data);
            }
        }
    }

    window.addEventListener("resize", () => {
        for (const id of Object.keys(charts)) {
            const c = charts[id];
            c.u.setSize({width: plotWidth(c.plot), height: 220});
        }
    });

    // ---- polling ----------------------------------------------------------

    async function getJson(url) {
        const r = await fetch(url, {cache: "no-store",
                                    credentials: "same-origin"});
        if (!r.ok) {
            throw new Error(url + ": HTTP " + r.status);
        }
        return r.json();
    }

    let interval = 5;

    async function refresh() {
        const status = $("status");
        try {
            const [h, st] = await Promise.all([getJson(HISTORY),
                                               getJson(STATS)]);
            interval = Math.min(10, Math.max(2, h.interval_s));
            renderSummary(h, st);
            renderHot(h);
            renderCharts(h);
            status.textContent = "updated " +
                new Date().toLocaleTimeString("en-GB");
            status.className = "status";
            document.body.dataset.updates =
                String(Number(document.body.dataset.updates || 0) + 1);
        } catch (e) {
            status.textContent = "cannot read the service: " + e.message;
            status.className = "status error";
        }
        setTimeout(refresh, interval * 1000);
    }

    refresh();
})();

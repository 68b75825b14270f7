#!/usr/bin/env python3
"""Summarises a loadtest/compare CSV and draws it as an SVG bar chart.

Usage: chart.py RESULTS_CSV CHART_SVG [TITLE]

Prints, per connection count, the median over rounds of each proxy's requests/s, p99,
requests per proxy CPU-second and per upstream CPU-second, what a request cost the proxy in
upstream exchanges of the same run (the steadiest figure for an A/B of a change), confab's ratios to nginx and
HAProxy, each proxy's share of the two-exchange mark (half the upstream's requests per
CPU-second when the load goes straight to it, the `direct` run), and the conversations
query's throughput as a share of /healthz. The chart has two panels (requests/s and requests
per proxy CPU-second), one group of bars per connection count, one bar per proxy (the median),
with every round's value marked on its bar, and the two-exchange mark dashed across each group
of the second panel when the CSV has a direct run. Standard library only, so that it runs wherever
the load test does.
"""

import csv
import statistics
import sys
from collections import defaultdict
from xml.sax.saxutils import escape

PROXY_COLOURS = {"confab": "#1f77b4", "nginx": "#2ca02c", "haproxy": "#d62728"}
# Colours of confab variants (`confab:FLAGS` runs), in order of first appearance.
VARIANT_COLOURS = ["#9467bd", "#17becf", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f"]
PANEL_HEIGHT = 300
MARGIN_LEFT = 70
MARGIN_TOP = 60
BAR_WIDTH = 34
BAR_GAP = 8
GROUP_GAP = 40


def milliseconds(text):
    """wrk writes latencies like 812.00us, 1.23ms or 1.05s."""
    for suffix, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float("nan")


def load(path):
    runs = defaultdict(list)
    with open(path, newline="") as file:
        for record in csv.DictReader(file):
            key = (record["name"], int(record["connections"]))
            record["upstream_exchanges"] = upstream_exchanges(record)
            runs[key].append(record)
    return runs


def upstream_exchanges(record):
    """What the proxy spent per request, in upstream exchanges of the same run: the upstream's
    requests per CPU-second over the proxy's. Both CPU figures cover the same requests at the
    same moment, so the ratio keeps little of the machine's run-to-run noise; "" without them."""
    proxy = record.get("requests_per_cpu_s")
    upstream = record.get("requests_per_upstream_cpu_s")
    if not proxy or not upstream:
        return ""
    return f"{float(upstream) / float(proxy):.4f}"


def median_of(records, field, convert=float):
    values = [convert(r[field]) for r in records if r.get(field) not in ("", None)]
    return statistics.median(values) if values else None


def summarise(runs):
    lines = []
    connection_counts = sorted({connections for _, connections in runs})
    for connections in connection_counts:
        lines.append(f"at {connections} connections (median of rounds):")
        medians = {}
        for (name, count), records in sorted(runs.items()):
            if count != connections:
                continue
            rps = median_of(records, "requests_per_s")
            p99 = median_of(records, "p99", milliseconds)
            per_cpu = median_of(records, "requests_per_cpu_s")
            per_upstream_cpu = median_of(records, "requests_per_upstream_cpu_s")
            errors = sum(int(r["errors"]) for r in records)
            medians[name] = (rps, p99, per_cpu, per_upstream_cpu)
            cpu_text = f", {per_cpu:,.0f} requests per proxy CPU-second" if per_cpu else ""
            if per_upstream_cpu:
                cpu_text += f", {per_upstream_cpu:,.0f} per upstream CPU-second"
            exchanges = median_of(records, "upstream_exchanges")
            if exchanges:
                cpu_text += f" (a request cost the proxy {exchanges:.3f} upstream exchanges)"
            lines.append(
                f"  {name:22s} {rps:>10,.0f} req/s, p99 {p99:.2f} ms{cpu_text}, errors {errors}"
            )
        confab = medians.get("confab")
        for other in ("nginx", "haproxy"):
            theirs = medians.get(other)
            if confab and theirs and theirs[0] and theirs[2]:
                lines.append(
                    f"  confab / {other}: {confab[0] / theirs[0]:.2f}x req/s, "
                    f"{confab[2] / theirs[2]:.2f}x requests per CPU-second, "
                    f"p99 {confab[1]:.2f} vs {theirs[1]:.2f} ms"
                )
        lines.extend(floor_lines(medians))
        health = medians.get("confab /healthz")
        query = medians.get("confab conversations")
        if health and query and health[0]:
            lines.append(f"  conversations query / healthz: {query[0] / health[0]:.1%}")
    return lines


def floor_lines(medians):
    """The two-exchange mark from the direct run, and each proxy's share of it: a proxied
    request is two HTTP exchanges, so a proxy that spends on it what the upstream spends on two
    of its own answers reaches 100%."""
    direct = medians.get("direct")
    if not direct or not direct[3]:
        return []
    mark = direct[3] / 2
    shares = ", ".join(
        f"{name} {values[2] / mark:.0%}"
        for name, values in medians.items()
        if values[2] and name != "direct"
    )
    line = (
        f"  two-exchange mark: the upstream answers {direct[3]:,.0f} requests per CPU-second "
        f"when loaded directly, so two exchanges at its cost make {mark:,.0f} proxied "
        "requests per CPU-second"
    )
    return [line + (f"; reached: {shares}" if shares else "")]


def proxies_in(runs):
    """Every proxy run (confab's own /healthz and conversations timings are not proxies), in
    the order they first ran."""
    names = []
    for (name, _), records in runs.items():
        if name not in names and any(r["requests_per_cpu_s"] for r in records):
            names.append(name)
    return names


def colour_of(name, runs):
    if name in PROXY_COLOURS:
        return PROXY_COLOURS[name]
    variants = [n for n in proxies_in(runs) if n not in PROXY_COLOURS]
    return VARIANT_COLOURS[variants.index(name) % len(VARIANT_COLOURS)]


def panel_width(runs):
    groups = len({connections for _, connections in runs})
    return groups * (len(proxies_in(runs)) * (BAR_WIDTH + BAR_GAP) + GROUP_GAP)


def nice_ceiling(value):
    """The smallest round number (a step of 1 to 10 times a power of ten) at least `value`."""
    power = 1.0
    while power * 10 <= value:
        power *= 10
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def two_exchange_mark(runs, connections):
    """Half the upstream's median requests per CPU-second in the direct runs, or None."""
    records = runs.get(("direct", connections), [])
    per_upstream_cpu = median_of(records, "requests_per_upstream_cpu_s") if records else None
    return per_upstream_cpu / 2 if per_upstream_cpu else None


def bars(runs, field, origin_x, title, marks=None):
    """One panel of grouped bars for `field`, with a dashed line across each group at
    `marks[connections]` where given; returns its SVG elements."""
    marks = marks or {}
    proxies = proxies_in(runs)
    connection_counts = sorted({connections for _, connections in runs})
    values = {
        key: [float(r[field]) for r in records if r[field]]
        for key, records in runs.items()
        if key[0] in proxies
    }
    highest = max((max(v) for v in values.values() if v), default=1.0)
    highest = max([highest] + [mark for mark in marks.values() if mark])
    top = nice_ceiling(highest * 1.1)
    panel = panel_width(runs)
    parts = [
        f'<text x="{origin_x + panel / 2}" y="{MARGIN_TOP - 20}" text-anchor="middle" '
        f'font-size="15" font-weight="bold">{escape(title)}</text>'
    ]
    base_y = MARGIN_TOP + PANEL_HEIGHT
    parts.append(
        f'<line x1="{origin_x}" y1="{base_y}" x2="{origin_x + panel}" y2="{base_y}" '
        'stroke="#333"/>'
    )
    for tick in range(0, 6):
        value = top * tick / 5
        y = base_y - PANEL_HEIGHT * tick / 5
        parts.append(
            f'<line x1="{origin_x}" y1="{y:.1f}" x2="{origin_x + panel}" y2="{y:.1f}" '
            'stroke="#ddd"/>'
        )
        parts.append(
            f'<text x="{origin_x - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{value / 1000:g}k</text>"
        )
    x = origin_x + GROUP_GAP / 2
    for connections in connection_counts:
        group_start = x
        for proxy in proxies:
            samples = values.get((proxy, connections), [])
            if samples:
                median = statistics.median(samples)
                height = PANEL_HEIGHT * median / top
                colour = colour_of(proxy, runs)
                parts.append(
                    f'<rect x="{x:.1f}" y="{base_y - height:.1f}" width="{BAR_WIDTH}" '
                    f'height="{height:.1f}" fill="{colour}"><title>{escape(proxy)}, '
                    f"{connections} connections: {median:,.0f}</title></rect>"
                )
                parts.append(
                    f'<text x="{x + BAR_WIDTH / 2:.1f}" y="{base_y - height - 4:.1f}" '
                    f'text-anchor="middle" font-size="10">{median / 1000:.1f}k</text>'
                )
                for sample in samples:
                    y = base_y - PANEL_HEIGHT * sample / top
                    parts.append(
                        f'<line x1="{x + 4:.1f}" y1="{y:.1f}" x2="{x + BAR_WIDTH - 4:.1f}" '
                        f'y2="{y:.1f}" stroke="#000" stroke-width="1.5"/>'
                    )
            x += BAR_WIDTH + BAR_GAP
        mark = marks.get(connections)
        if mark:
            y = base_y - PANEL_HEIGHT * mark / top
            parts.append(
                f'<line x1="{group_start - 6:.1f}" y1="{y:.1f}" x2="{x - BAR_GAP + 6:.1f}" '
                f'y2="{y:.1f}" stroke="#555" stroke-width="1.5" stroke-dasharray="6,4">'
                f"<title>two-exchange mark: {mark:,.0f}</title></line>"
            )
        parts.append(
            f'<text x="{(group_start + x - BAR_GAP) / 2:.1f}" y="{base_y + 18}" '
            f'text-anchor="middle" font-size="12">{connections} connections</text>'
        )
        x += GROUP_GAP
    return parts


def legend(runs, y):
    parts = []
    x = MARGIN_LEFT
    for proxy in proxies_in(runs):
        parts.append(
            f'<rect x="{x}" y="{y - 10}" width="12" height="12" '
            f'fill="{colour_of(proxy, runs)}"/>'
        )
        parts.append(f'<text x="{x + 18}" y="{y}" font-size="12">{escape(proxy)}</text>')
        x += 30 + 7 * len(proxy)
    note = "bar: median of rounds; black marks: each round"
    if any(name == "direct" for name, _ in runs):
        note += "; dashed: two exchanges at the upstream's cost (direct run)"
    parts.append(f'<text x="{x + 20}" y="{y}" font-size="11" fill="#555">{escape(note)}</text>')
    return parts


def draw(runs, path, title):
    panel = max(panel_width(runs), 300)
    width = MARGIN_LEFT + 2 * (panel + MARGIN_LEFT)
    height = MARGIN_TOP + PANEL_HEIGHT + 80
    body = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" viewBox="0 0 {width} {height}">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{MARGIN_LEFT}" y="18" font-size="12" fill="#333">{escape(title)}</text>',
    ]
    body += bars(runs, "requests_per_s", MARGIN_LEFT, "requests/s")
    connection_counts = {connections for _, connections in runs}
    body += bars(
        runs,
        "requests_per_cpu_s",
        2 * MARGIN_LEFT + panel,
        "requests per proxy CPU-second",
        {count: two_exchange_mark(runs, count) for count in connection_counts},
    )
    body += legend(runs, MARGIN_TOP + PANEL_HEIGHT + 55)
    body.append("</svg>")
    with open(path, "w") as file:
        file.write("\n".join(body) + "\n")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    runs = load(sys.argv[1])
    title = sys.argv[3] if len(sys.argv) > 3 else ""
    summary = summarise(runs)
    print("\n".join(summary))
    with open(sys.argv[2].rsplit("/", 1)[0] + "/summary.txt", "w") as file:
        file.write("\n".join(summary) + "\n")
    draw(runs, sys.argv[2], title)


if __name__ == "__main__":
    main()

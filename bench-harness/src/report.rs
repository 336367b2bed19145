//! Rendering a comparison: terminal table, Markdown, and a self-contained HTML
//! page with inline SVG plots (no scripts, nothing fetched from the network).

use std::fmt::Write as _;

use crate::compare::{CaseSummary, Report};
use crate::stats::LatencySummary;

const COLORS: [&str; 6] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

fn f(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "-".into(),
    }
}

fn ratio(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map_or("-".into(), |v| format!("{v:.2}x"))
}

fn si(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 1e6 => format!("{:.2}M", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.1}k", v / 1e3),
        Some(v) => format!("{v:.0}"),
        None => "-".into(),
    }
}

const HEADER: [&str; 17] = [
    "workload", "size", "server", "msgs/s", "MB/s", "p50 us", "p90 us", "p99 us", "p99.9 us",
    "max us", "CPU s/M", "RSS MiB", "foreign", "x msgs/s", "x p99", "x CPU", "ok/fail",
];

fn rows(r: &Report) -> Vec<[String; 17]> {
    r.cases
        .iter()
        .map(|c| {
            let l = c.latency.as_ref();
            [
                c.workload.name().to_string(),
                c.size.to_string(),
                c.server.clone(),
                si(c.msgs_per_s),
                f(c.mb_per_s, 1),
                f(l.map(|l| l.p50_us), 1),
                f(l.map(|l| l.p90_us), 1),
                f(l.map(|l| l.p99_us), 1),
                f(l.map(|l| l.p999_us), 1),
                f(l.map(|l| l.max_us), 1),
                f(c.cpu_s_per_million, 3),
                f(c.peak_rss_mib, 1),
                f(c.foreign_load_cores, 2),
                ratio(c.vs_best_reference.msgs_per_s),
                ratio(c.vs_best_reference.p99),
                ratio(c.vs_best_reference.cpu_per_million),
                format!("{}/{}", c.rounds_ok, c.failures.len()),
            ]
        })
        .collect()
}

fn preamble_lines(r: &Report) -> Vec<String> {
    let mut out = vec![format!(
        "Host: {} CPUs, kernel {}, load avg before {} / after {}. Harness threads {}. Cores {}.",
        r.host.cpus,
        r.host.kernel,
        r.host.loadavg_before,
        r.host.loadavg_after,
        if r.host.pinned {
            "pinned (core_affinity)"
        } else {
            "not pinned"
        },
        // Tried: a SCHED_IDLE spinner per core. On 2 cores it made every server's open-loop
        // p99 worse by milliseconds (a yielding pacer or runtime hands the core to the spinner
        // until the next tick), so the harness reports the wake-up cost instead of hiding it.
        "not kept awake (an idle virtual CPU takes tens of µs to wake: low-rate latency includes it)"
    )];
    out.push(r.host.note.clone());
    for s in &r.servers {
        out.push(format!(
            "Server {} ({}): {} [{}]",
            s.name, s.role, s.version, s.path
        ));
    }
    out.push(format!(
        "Rounds: {} per case, servers alternating. Ratios (x) are against the best reference server other than the row's own.",
        r.rounds
    ));
    let ceil: Vec<String> = r
        .ceiling
        .iter()
        .map(|c| {
            format!(
                "{}B {} msgs/s ({:.0} MB/s)",
                c.size,
                si(Some(c.msgs_per_s)),
                c.mb_per_s
            )
        })
        .collect();
    out.push(format!(
        "Harness ceiling (pub into the built-in sink): {}",
        ceil.join(", ")
    ));
    if !r.go_ceiling.is_empty() {
        let go: Vec<String> = r
            .go_ceiling
            .iter()
            .map(|c| match &c.latency {
                Some(l) => format!(
                    "{} {}B {} req/s (p50 / p99 / p99.9 {:.0} / {:.0} / {:.0} µs)",
                    c.workload.name(),
                    c.size,
                    si(Some(c.msgs_per_s)),
                    l.p50_us,
                    l.p99_us,
                    l.p999_us
                ),
                None => format!(
                    "{} {}B {} msgs/s",
                    c.workload.name(),
                    c.size,
                    si(Some(c.msgs_per_s))
                ),
            })
            .collect();
        out.push(format!(
            "Go client ceiling (natsbench against the built-in sink and source, no server): {}",
            go.join(", ")
        ));
    }
    out
}

fn failures(r: &Report) -> Vec<String> {
    r.cases
        .iter()
        .flat_map(|c| {
            c.failures
                .iter()
                .map(move |e| format!("{} {}B on {}: {}", c.workload.name(), c.size, c.server, e))
        })
        .collect()
}

/// Where a multi-shard server did the work, round by round: "one shard" when the connections
/// of a run landed on one shard, "spread" when at least two shards worked. Cross-shard hops
/// cost a wake-up each, so this explains much of the spread between rounds.
fn placement_lines(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for c in &r.cases {
        let rounds: Vec<&str> = r
            .measurements
            .iter()
            .filter(|m| m.server == c.server && m.workload == c.workload && m.size == c.size)
            .filter_map(|m| m.one_shard())
            .map(|one| if one { "one shard" } else { "spread" })
            .collect();
        if !rounds.is_empty() {
            out.push(format!(
                "{} {}B {}: {}",
                c.workload.name(),
                c.size,
                c.server,
                rounds.join(", ")
            ));
        }
    }
    out
}

pub fn terminal(r: &Report) -> String {
    let rows = rows(r);
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut s = String::new();
    for l in preamble_lines(r) {
        let _ = writeln!(s, "{l}");
    }
    let _ = writeln!(s);
    let line = |s: &mut String, cells: &[String]| {
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i < 3 {
                let _ = write!(s, "{c:<w$}  ");
            } else {
                let _ = write!(s, "{c:>w$}  ");
            }
        }
        let _ = writeln!(s);
    };
    line(&mut s, &HEADER.map(String::from));
    for row in &rows {
        line(&mut s, row);
    }
    let placement = placement_lines(r);
    if !placement.is_empty() {
        let _ = writeln!(s, "\nShard placement per round:");
        for l in placement {
            let _ = writeln!(s, "  {l}");
        }
    }
    for e in failures(r) {
        let _ = writeln!(s, "FAILED: {e}");
    }
    s
}

pub fn markdown(r: &Report) -> String {
    let mut s = String::from("# Tachyon comparison\n\n");
    for l in preamble_lines(r) {
        let _ = writeln!(s, "- {l}");
    }
    let _ = writeln!(s, "\n| {} |", HEADER.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(HEADER.len()));
    for row in rows(r) {
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    let placement = placement_lines(r);
    if !placement.is_empty() {
        let _ = writeln!(
            s,
            "\n## Shard placement per round\n\nWhere the kernel put the connections of each \
             run of a multi-shard server (\"spread\": at least two shards did a tenth of the \
             busiest one's work; every cross-shard message costs a ring hop).\n"
        );
        for l in placement {
            let _ = writeln!(s, "- {l}");
        }
    }
    let fails = failures(r);
    if !fails.is_empty() {
        let _ = writeln!(s, "\n## Failures\n");
        for e in fails {
            let _ = writeln!(s, "- {e}");
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Percentile to the x axis of an HDR-style plot: log10(1 / (1 - p)), max at 6.
fn pct_x(p: f64) -> f64 {
    if p >= 100.0 {
        6.0
    } else {
        (1.0 / (1.0 - p / 100.0)).log10().min(6.0)
    }
}

/// Percentile distribution plot, both axes logarithmic.
pub fn svg_latency(title: &str, series: &[(&str, &LatencySummary)]) -> String {
    let (w, h, ml, mr, mt, mb) = (520.0, 300.0, 60.0, 110.0, 28.0, 40.0);
    let pw = w - ml - mr;
    let ph = h - mt - mb;
    let vals = series
        .iter()
        .flat_map(|(_, l)| l.curve.iter().map(|p| p.1))
        .filter(|v| *v > 0.0);
    let (lo, hi) = vals.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><text x="{ml}" y="16" font-weight="bold">{}</text>"#,
        esc(title)
    );
    if lo > hi {
        s.push_str(r#"<text x="60" y="100">no latency data</text></svg>"#);
        return s;
    }
    let ylo = lo.log10().floor();
    let yhi = hi.log10().ceil().max(ylo + 1.0);
    let x = |p: f64| ml + pct_x(p) / 6.0 * pw;
    let y = |v: f64| mt + ph - (v.max(1e-3).log10() - ylo) / (yhi - ylo) * ph;
    let _ = write!(
        s,
        r##"<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##
    );
    let mut e = ylo;
    while e <= yhi {
        let yy = y(10f64.powf(e));
        let label = if e >= 6.0 {
            format!("{}s", 10f64.powf(e - 6.0))
        } else if e >= 3.0 {
            format!("{}ms", 10f64.powf(e - 3.0))
        } else {
            format!("{}us", 10f64.powf(e))
        };
        let _ = write!(
            s,
            r##"<line x1="{ml}" x2="{}" y1="{yy}" y2="{yy}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{label}</text>"##,
            ml + pw,
            ml - 4.0,
            yy + 4.0
        );
        e += 1.0;
    }
    for (i, lab) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "max"]
        .iter()
        .enumerate()
    {
        let xx = ml + i as f64 / 6.0 * pw;
        let _ = write!(
            s,
            r##"<line x1="{xx}" x2="{xx}" y1="{mt}" y2="{}" stroke="#eee"/><text x="{xx}" y="{}" text-anchor="middle">{lab}</text>"##,
            mt + ph,
            mt + ph + 14.0
        );
    }
    for (i, (name, l)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = l
            .curve
            .iter()
            .map(|(p, v)| format!("{:.1},{:.1}", x(*p), y(*v)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        let ly = mt + 14.0 + i as f64 * 16.0;
        let _ = write!(
            s,
            r#"<rect x="{}" y="{}" width="12" height="3" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            ml + pw + 8.0,
            ly - 4.0,
            ml + pw + 24.0,
            ly,
            esc(name)
        );
    }
    s.push_str("</svg>");
    s
}

/// Grouped bars: one group per label, one bar per server.
pub fn svg_bars(title: &str, servers: &[String], groups: &[(String, Vec<Option<f64>>)]) -> String {
    let (w, h, ml, mt, mb) = (520.0, 260.0, 60.0, 28.0, 40.0);
    let pw = w - ml - 110.0;
    let ph = h - mt - mb;
    let max = groups
        .iter()
        .flat_map(|g| g.1.iter().flatten())
        .fold(0.0f64, |a, b| a.max(*b));
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><text x="{ml}" y="16" font-weight="bold">{}</text>"#,
        esc(title)
    );
    let _ = write!(
        s,
        r##"<line x1="{ml}" x2="{}" y1="{}" y2="{}" stroke="#999"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
        ml + pw,
        mt + ph,
        mt + ph,
        ml - 4.0,
        mt + 4.0,
        si(Some(max))
    );
    let gw = pw / groups.len().max(1) as f64;
    let bw = (gw * 0.8) / servers.len().max(1) as f64;
    for (gi, (label, vals)) in groups.iter().enumerate() {
        let gx = ml + gi as f64 * gw + gw * 0.1;
        for (si_, v) in vals.iter().enumerate() {
            let Some(v) = v else { continue };
            let bh = if max > 0.0 { v / max * ph } else { 0.0 };
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                gx + si_ as f64 * bw,
                mt + ph - bh,
                bw * 0.95,
                bh,
                COLORS[si_ % COLORS.len()],
                esc(&servers[si_.min(servers.len().saturating_sub(1))]),
                si(Some(*v))
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            gx + gw * 0.4,
            mt + ph + 14.0,
            esc(label)
        );
    }
    for (i, name) in servers.iter().enumerate() {
        let ly = mt + 14.0 + i as f64 * 16.0;
        let _ = write!(
            s,
            r#"<rect x="{}" y="{}" width="12" height="8" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            ml + pw + 8.0,
            ly - 8.0,
            COLORS[i % COLORS.len()],
            ml + pw + 24.0,
            ly,
            esc(name)
        );
    }
    s.push_str("</svg>");
    s
}

pub fn html(r: &Report) -> String {
    let mut s = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Tachyon comparison</title><style>\
         body{font-family:sans-serif;margin:20px;max-width:1300px}table{border-collapse:collapse;font-size:12px}\
         td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}td:nth-child(-n+3){text-align:left}\
         .plots{display:flex;flex-wrap:wrap;gap:8px}.fail{color:#b00}</style></head><body><h1>Tachyon comparison</h1><ul>",
    );
    for l in preamble_lines(r) {
        let _ = write!(s, "<li>{}</li>", esc(&l));
    }
    s.push_str("</ul><h2>Results (medians over rounds)</h2><table><tr>");
    for h in HEADER {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr>");
    for row in rows(r) {
        s.push_str("<tr>");
        for c in row {
            let _ = write!(s, "<td>{}</td>", esc(&c));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    let fails = failures(r);
    if !fails.is_empty() {
        s.push_str("<h2 class=\"fail\">Failures</h2><ul class=\"fail\">");
        for e in fails {
            let _ = write!(s, "<li>{}</li>", esc(&e));
        }
        s.push_str("</ul>");
    }
    let names: Vec<String> = r.servers.iter().map(|x| x.name.clone()).collect();
    let find = |w, size, server: &str| -> Option<&CaseSummary> {
        r.cases
            .iter()
            .find(|c| c.workload == w && c.size == size && c.server == server)
    };
    s.push_str("<h2>Throughput (msgs/s, median)</h2><div class=\"plots\">");
    for &w in &r.workloads {
        let groups: Vec<(String, Vec<Option<f64>>)> = r
            .sizes
            .iter()
            .map(|&size| {
                (
                    format!("{size} B"),
                    names
                        .iter()
                        .map(|n| find(w, size, n).and_then(|c| c.msgs_per_s))
                        .collect(),
                )
            })
            .collect();
        s.push_str(&svg_bars(w.name(), &names, &groups));
    }
    s.push_str("</div><h2>Latency percentile distribution (log scales)</h2><div class=\"plots\">");
    for &w in &r.workloads {
        for &size in &r.sizes {
            let series: Vec<(&str, &LatencySummary)> = names
                .iter()
                .filter_map(|n| {
                    find(w, size, n)
                        .and_then(|c| c.latency.as_ref())
                        .map(|l| (n.as_str(), l))
                })
                .collect();
            if !series.is_empty() {
                s.push_str(&svg_latency(&format!("{} {size} B", w.name()), &series));
            }
        }
    }
    s.push_str("</div></body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis() {
        assert_eq!(pct_x(0.0), 0.0);
        assert!((pct_x(90.0) - 1.0).abs() < 1e-9);
        assert!((pct_x(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(pct_x(100.0), 6.0);
    }

    #[test]
    fn svgs_are_self_contained() {
        let l = LatencySummary {
            curve: vec![(0.0, 5.0), (50.0, 10.0), (99.0, 100.0), (100.0, 2000.0)],
            ..Default::default()
        };
        let svg = svg_latency("a<b", &[("nats", &l), ("tachyon", &l)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("a&lt;b"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(
            !svg.contains("http://") || svg.matches("http://").count() == 1,
            "only the xmlns"
        );
        let bars = svg_bars(
            "pub",
            &["x".into(), "y".into()],
            &[
                ("16 B".into(), vec![Some(1.0), Some(2.0)]),
                ("128 B".into(), vec![None, Some(1.0)]),
            ],
        );
        assert_eq!(bars.matches("<title>").count(), 3);
    }
}

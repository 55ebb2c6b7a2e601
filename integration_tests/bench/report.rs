//! results.md: the table and lines BENCHMARKS.md is written from, made from the JSON rows.

use serde_json::Value;

fn f(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.is_nan() => "-".into(),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
        None => "-".into(),
    }
}

pub fn markdown(results: &[Value], machine: &str) -> String {
    let mut md = String::new();
    md.push_str(&format!("Machine: {machine}\n\n"));
    md.push_str("| id | setup | delivered (min / mean) | latency p50 / p95 / p99 ms | first frame p50 ms | CPU % of a core | floor CPU % | CPU / floor | RSS peak MB (anon) | encodes / source frame | MB/s out |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results.iter().filter(|r| r.get("delivered_min").is_some()) {
        md.push_str(&format!(
            "| {} | {} | {:.1} % / {:.1} % | {} / {} / {} | {} | {} | {} | {} | {} ({}) | {} | {} |\n",
            r["id"].as_str().unwrap_or(""),
            r["setup"].as_str().unwrap_or(""),
            r["delivered_min"].as_f64().unwrap_or(0.0) * 100.0,
            r["delivered_mean"].as_f64().unwrap_or(0.0) * 100.0,
            f(&r["latency_ms"]["p50"]),
            f(&r["latency_ms"]["p95"]),
            f(&r["latency_ms"]["p99"]),
            f(&r["first_frame_ms"]["p50"]),
            f(&r["cpu_percent"]),
            f(&r["floor_cpu_percent"]),
            f(&r["cpu_vs_floor"]),
            f(&r["rss_mb_peak_process"]),
            f(&r["rss_anon_mb_peak"]),
            f(&r["encodes_per_source_frame"]),
            f(&r["mbytes_per_s"]),
        ));
    }
    md.push('\n');
    for r in results
        .iter()
        .filter(|r| r["poll"]["requests_per_s"].as_f64().unwrap_or(0.0) > 0.0)
    {
        let p = &r["poll"];
        md.push_str(&format!(
            "- {} polling: {} req/s, p50 {} ms, p99 {} ms, 304 share {:.0} %, cache hits {}\n",
            r["id"].as_str().unwrap_or(""),
            f(&p["requests_per_s"]),
            f(&p["p50_ms"]),
            f(&p["p99_ms"]),
            p["share_304"].as_f64().unwrap_or(0.0) * 100.0,
            p["cache_hits"]
        ));
    }
    for r in results {
        match r["id"].as_str() {
            Some("S4") => md.push_str(&format!(
                "- S4 snapshots ({}): {} requests, {} req/s, p50 {} ms, p99 {} ms, CPU {} %\n",
                r["setup"].as_str().unwrap_or(""),
                r["requests"],
                f(&r["requests_per_s"]),
                f(&r["p50_ms"]),
                f(&r["p99_ms"]),
                f(&r["cpu_percent"])
            )),
            Some("S7") => md.push_str(&format!(
                "- S7 time to first frame ({}): WebSocket p50 {} ms (max {}), MJPEG p50 {} ms (max {})\n",
                r["setup"].as_str().unwrap_or(""),
                f(&r["ws_first_frame_ms"]["p50"]),
                f(&r["ws_first_frame_ms"]["max"]),
                f(&r["mjpeg_first_frame_ms"]["p50"]),
                f(&r["mjpeg_first_frame_ms"]["max"])
            )),
            Some("S9") => md.push_str(&format!(
                "- S9 camera start to first frame ({}): p50 {} ms (max {})\n",
                r["setup"].as_str().unwrap_or(""),
                f(&r["first_frame_ms"]["p50"]),
                f(&r["first_frame_ms"]["max"])
            )),
            Some("FLOOR") => md.push_str(&format!(
                "- Floor: decode + one JPEG encode at q85, no server: {} ms per 720p frame, {} ms per 1080p frame (one core)\n",
                f(&r["ms_per_frame_720p"]),
                f(&r["ms_per_frame_1080p"])
            )),
            _ => {}
        }
        if let Some(e) = r.get("error") {
            md.push_str(&format!(
                "- {}: ERROR {e}\n",
                r["id"].as_str().unwrap_or("")
            ));
        }
    }
    md
}

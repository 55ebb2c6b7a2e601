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

/// The CPU % of the row `id`, when it ran and measured one.
fn cpu_of(results: &[Value], id: &str) -> Option<f64> {
    results
        .iter()
        .find(|r| r["id"] == id)
        .and_then(|r| r["cpu_percent"].as_f64())
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
            Some(id @ ("S12" | "S12F")) if r.get("cpu_percent").is_some() => {
                let ratio = match (id, cpu_of(results, "S12")) {
                    ("S12F", Some(retina)) => format!(
                        "; S12 (retina) over this: {}",
                        f(&Value::from(retina / r["cpu_percent"].as_f64().unwrap_or(f64::NAN)))
                    ),
                    _ => format!(
                        "; passthrough floor {} %, over it {}",
                        f(&r["passthrough_cpu_percent"]),
                        f(&r["cpu_vs_passthrough"])
                    ),
                };
                md.push_str(&format!(
                    "- {id} ({}): {} % of a core{ratio}; RSS {} MB, threads {}; cameras still decoding {}, frames decoded {} of {} units\n",
                    r["setup"].as_str().unwrap_or(""),
                    f(&r["cpu_percent"]),
                    f(&r["rss_mb"]),
                    r["threads"],
                    r["cameras_decoding"],
                    r["frames_decoded"],
                    r["units_in"],
                ));
            }
            Some("S23") if r.get("kb_per_viewer").is_some() => md.push_str(&format!(
                "- S23 ({}): RSS {} MB with one viewer, {} MB with all ({} viewers counted by the status over the cameras): **{} KB per viewer**\n",
                r["setup"].as_str().unwrap_or(""),
                f(&r["rss_mb_one_viewer"]),
                f(&r["rss_mb_all_viewers"]),
                r["viewers_counted"],
                f(&r["kb_per_viewer"]),
            )),
            Some("S21") if r.get("cpu_percent").is_some() => md.push_str(&format!(
                "- S21 ({}): recording {} % of a core against {} % without replay: **{} x**; wrote {} MB/s ({} MB/s without replay) for {} MB/s sent by the cameras: **{} x**; snapshot at an instant p50 / max {} / {} ms ({}); WebSocket replay to its first unit p50 / max {} / {} ms ({}); a 60 s clip: first byte {} ms, whole {} ms, {} MB\n",
                r["setup"].as_str().unwrap_or(""),
                f(&r["cpu_percent"]),
                f(&r["cpu_percent_no_replay"]),
                f(&r["cpu_ratio"]),
                f(&r["written_mb_per_s"]),
                f(&r["written_no_replay_mb_per_s"]),
                f(&r["source_mb_per_s"]),
                f(&r["written_vs_source"]),
                f(&r["at_snapshot_ms"]["p50"]),
                f(&r["at_snapshot_ms"]["max"]),
                r["at_snapshot_ms"]["n"],
                f(&r["ws_replay_first_unit_ms"]["p50"]),
                f(&r["ws_replay_first_unit_ms"]["max"]),
                r["ws_replay_first_unit_ms"]["n"],
                f(&r["clip60"]["first_byte_ms"]),
                f(&r["clip60"]["whole_ms"]),
                f(&r["clip60"]["mb"]),
            )),
            Some("S20") if r.get("cpu_percent").is_some() => md.push_str(&format!(
                "- S20 ({}): S9 {} %; audio kept, nobody listening {} % ({} % of a core per camera); kept and forwarded to a WebSocket listener {} %: **{} % of a core per camera**; a live camera with a WHEP listener alone {} %, of which the AAC to Opus transcode {} % of a core; {} audio frames/s in, {} to the WebSocket listener; WHEP player: {} video and {} audio frames, audio after video by p50 {} ms (|skew| p50 {} ms, p99 {} ms)\n",
                r["setup"].as_str().unwrap_or(""),
                f(&r["s9_cpu_percent"]),
                f(&r["cpu_percent_kept"]),
                f(&r["kept_cost_per_camera_percent"]),
                f(&r["cpu_percent"]),
                f(&r["audio_cost_per_camera_percent"]),
                f(&r["cpu_percent_live_with_whep"]),
                f(&r["transcode_cpu_percent_per_listened_camera"]),
                f(&r["audio_frames_in_per_s"]),
                r["ws_listener_audio_frames"],
                r["whep"]["video_frames"],
                r["whep"]["audio_frames"],
                f(&r["whep"]["skew_ms"]["p50"]),
                f(&r["whep"]["skew_ms"]["abs_p50"]),
                f(&r["whep"]["skew_ms"]["abs_p99"]),
            )),
            Some("S4") => md.push_str(&format!(
                "- S4 snapshots ({}): {} requests, {} req/s, p50 {} ms, p99 {} ms, CPU {} %\n",
                r["setup"].as_str().unwrap_or(""),
                r["requests"],
                f(&r["requests_per_s"]),
                f(&r["p50_ms"]),
                f(&r["p99_ms"]),
                f(&r["cpu_percent"])
            )),
            Some("S7") => {
                md.push_str(&format!(
                    "- S7 time to first frame ({}): WebSocket p50 {} ms (max {}), MJPEG p50 {} ms (max {})\n",
                    r["setup"].as_str().unwrap_or(""),
                    f(&r["ws_first_frame_ms"]["p50"]),
                    f(&r["ws_first_frame_ms"]["max"]),
                    f(&r["mjpeg_first_frame_ms"]["p50"]),
                    f(&r["mjpeg_first_frame_ms"]["max"])
                ));
                md.push_str(&format!(
                    "- S7 with video: subscribe (codecs h264) to the first video frame, a keyframe: p50 {} ms (max {}) over {} subscriptions; first frame not a keyframe: {}, no video frame in 10 s: {}\n",
                    f(&r["video_first_key_ms"]["p50"]),
                    f(&r["video_first_key_ms"]["max"]),
                    r["video_subscriptions"],
                    r["video_first_not_key"],
                    r["video_no_frame"]
                ));
                md.push_str(&format!(
                    "- S7 in headless Chromium, cold page load (navigation start) to the first camera picture painted: p50 {} ms (max {}) over 3 loads, painted from {}; with `?codec=jpeg`: p50 {} ms (max {}), from {}\n",
                    f(&r["page_first_paint_ms"]["p50"]),
                    f(&r["page_first_paint_ms"]["max"]),
                    r["page_first_paint_ms"]["kind"],
                    f(&r["page_first_paint_jpeg_ms"]["p50"]),
                    f(&r["page_first_paint_jpeg_ms"]["max"]),
                    r["page_first_paint_jpeg_ms"]["kind"]
                ));
            }
            Some("S9" | "S10") if r.get("video").is_some() => {
                let v = &r["video"];
                md.push_str(&format!(
                    "- {} video: bytes per client / source bitrate {} (source: the clip's bytes per second as served, {} MB/s for {} cameras); units bad since start {}; JPEG frames to video clients {}\n",
                    r["id"].as_str().unwrap_or(""),
                    f(&v["bytes_per_client_over_source"]),
                    f(&(v["source_bytes_per_s"].as_f64().unwrap_or(f64::NAN) / 1e6).into()),
                    r["cameras"],
                    v["units_bad"],
                    v["jpeg_frames_to_video_clients"]
                ));
                if r["id"] == "S9" {
                    if let Some(s2) = cpu_of(results, "S2") {
                        md.push_str(&format!(
                            "- S9 CPU / S2 CPU (video against JPEG, same setup, same run): {}\n",
                            f(&(r["cpu_percent"].as_f64().unwrap_or(f64::NAN) / s2).into())
                        ));
                    }
                }
            }
            Some("S18") if r.get("webrtc").is_some() => {
                let w = &r["webrtc"];
                let s9 = cpu_of(results, "S9").unwrap_or(f64::NAN);
                md.push_str(&format!(
                    "- S18 ({}): {} % of a core, **{} x S9** (same run); delivered min/mean {}/{}; bytes over the source max/mean {}/{}; first frame p50/max {}/{} ms; JPEG encodes {}; RSS {} MB; sessions {}, errors {}\n",
                    r["setup"].as_str().unwrap_or(""),
                    f(&r["cpu_percent"]),
                    f(&(r["cpu_percent"].as_f64().unwrap_or(f64::NAN) / s9).into()),
                    f(&w["delivered_min"]),
                    f(&w["delivered_mean"]),
                    f(&w["bytes_over_source_max"]),
                    f(&w["bytes_over_source_mean"]),
                    f(&w["first_frame_ms"]["p50"]),
                    f(&w["first_frame_ms"]["max"]),
                    w["jpeg_encodes"],
                    f(&w["rss_mb"]),
                    w["sessions"],
                    w["errors"].as_array().map_or(0, Vec::len),
                ));
                let floor = w["udp_floor_cpu_percent"].as_f64().unwrap_or(f64::NAN);
                md.push_str(&format!(
                    "- S18 floor: the same {} datagrams/s of {} bytes sent over loopback by one thread doing nothing else: {} % of a core; S18 less that floor: {} x S9\n",
                    f(&w["datagrams_per_s"]),
                    w["datagram_bytes_mean"],
                    f(&floor.into()),
                    f(&((r["cpu_percent"].as_f64().unwrap_or(f64::NAN) - floor) / s9).into()),
                ));
            }
            Some("S19") => {
                md.push_str(&format!(
                    "- S19 ({}, {} tries): offer to first frame (str0m receiver) p50/max {}/{} ms; offer to first decoded frame (aiortc) p50/max {}/{} ms ({} tries){}\n",
                    r["setup"].as_str().unwrap_or(""),
                    r["tries"],
                    f(&r["str0m_first_frame_ms"]["p50"]),
                    f(&r["str0m_first_frame_ms"]["max"]),
                    f(&r["aiortc_first_decoded_ms"]["p50"]),
                    f(&r["aiortc_first_decoded_ms"]["max"]),
                    r["aiortc_first_decoded_ms"]["n"],
                    r.get("page_first_paint_ms").map_or(String::new(), |p| format!(
                        "; page load to first painted frame on an insecure origin p50/max {}/{} ms (painted by: {})",
                        f(&p["p50"]),
                        f(&p["max"]),
                        p["kind"].as_str().unwrap_or("?")
                    )),
                ));
            }
            Some("PASSTHROUGH") => {
                let s9 = cpu_of(results, "S9").unwrap_or(f64::NAN);
                let p = r["cpu_percent"].as_f64().unwrap_or(f64::NAN);
                md.push_str(&format!(
                    "- Passthrough floor ({}; {} still reading at the end): {} % of a core; camwall's S9 CPU over it: {}\n",
                    r["setup"].as_str().unwrap_or(""),
                    r["readers_alive"],
                    f(&p.into()),
                    f(&(s9 / p).into())
                ));
            }
            Some("S14") if r.get("cluster").is_some() => {
                let c = &r["cluster"];
                let (l, rm) = (&c["latency_local_ms"], &c["latency_remote_ms"]);
                md.push_str(&format!(
                    "- S14 latency, cameras local to the viewer's node: mean {} p50 {} p99 {} max {} ms ({} frames); relayed through NATS: mean {} p50 {} p99 {} max {} ms ({} frames); the hop adds mean {} p50 {} p99 {} ms\n",
                    f(&l["mean"]), f(&l["p50"]), f(&l["p99"]), f(&l["max"]), l["n"],
                    f(&rm["mean"]), f(&rm["p50"]), f(&rm["p99"]), f(&rm["max"]), rm["n"],
                    f(&c["hop_ms"]["mean"]), f(&c["hop_ms"]["p50"]), f(&c["hop_ms"]["p99"]),
                ));
                let nodes: Vec<String> = c["nodes"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, n)| {
                        format!(
                            "{name}: {} cameras, {} % CPU, {} MB peak RSS",
                            n["cameras"],
                            f(&n["cpu_percent"]),
                            f(&n["rss_mb_peak_process"])
                        )
                    })
                    .collect();
                md.push_str(&format!(
                    "- S14 nodes ({}); nats-server {} % of a core for {} relayed streams: {} % per stream; NATS {} msgs/s in, {} MB/s out; units bad {}; JPEG frames to video clients {}\n",
                    nodes.join("; "),
                    f(&c["nats_cpu_percent"]),
                    c["relayed_streams"],
                    f(&c["nats_cpu_percent_per_relayed_stream"]),
                    f(&c["nats_msgs_in_per_s"]),
                    f(&c["nats_mbytes_out_per_s"]),
                    c["units_bad"],
                    c["jpeg_frames_to_video_clients"],
                ));
            }
            Some("S17") if r.get("links").is_some() => {
                md.push_str(&format!("- S17 ({}):\n", r["setup"].as_str().unwrap_or("")));
                for l in r["links"].as_array().into_iter().flatten() {
                    let rungs: Vec<&str> = l["rungs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    md.push_str(&format!(
                        "  - {} over {}: {} frames/s, {} kbit/s{}, frame age p50/p90 {}/{} ms; rungs: {}\n",
                        l["mode"].as_str().unwrap_or(""),
                        l["link"].as_str().unwrap_or(""),
                        f(&l["fps"]),
                        f(&l["kbps"]),
                        l["link_use_percent"]
                            .as_f64()
                            .map(|u| format!(" ({u:.0} % of the link)"))
                            .unwrap_or_default(),
                        f(&l["age_ms"]["p50"]),
                        f(&l["age_ms"]["p90"]),
                        rungs.join(", "),
                    ));
                }
            }
            Some("S16") if r.get("cluster_jpeg").is_some() => {
                let c = &r["cluster_jpeg"];
                let nodes: Vec<String> = c["nodes_cpu_percent"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(f)
                    .collect();
                md.push_str(&format!(
                    "- S16 ({}): alone {} % of a core; 3 nodes {} % (nodes {}) + nats-server {} % = {} %: **{} x** alone. Frames per tile per second alone {} / cluster {}; latency p50/p99 alone {}/{} ms, cluster {}/{} ms. JPEG encodes alone {}, cluster on the owners {}, on the other nodes {}; NATS {} MB/s out\n",
                    r["setup"].as_str().unwrap_or(""),
                    f(&c["alone_cpu_percent"]),
                    f(&c["nodes_cpu_percent"]
                        .as_array()
                        .map(|v| v.iter().filter_map(Value::as_f64).sum::<f64>())
                        .into()),
                    nodes.join(" / "),
                    f(&c["nats_cpu_percent"]),
                    f(&c["cluster_cpu_percent"]),
                    f(&c["cluster_over_alone"]),
                    f(&c["alone_fps_per_tile"]),
                    f(&c["cluster_fps_per_tile"]),
                    f(&c["alone_latency_ms"]["p50"]),
                    f(&c["alone_latency_ms"]["p99"]),
                    f(&c["cluster_latency_ms"]["p50"]),
                    f(&c["cluster_latency_ms"]["p99"]),
                    c["alone_encodes"],
                    c["encodes_on_owners"],
                    c["encodes_on_other_nodes"],
                    f(&c["nats_mbytes_out_per_s"]),
                ));
            }
            Some("S11") => md.push_str(&format!(
                "- S11 camera start to first frame ({}): p50 {} ms (max {})\n",
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

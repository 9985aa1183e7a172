//! The status page: JSON and the Prometheus text exposition format
//! (version 0.0.4), from a snapshot of the zone. Pure.

use core::fmt::Write;

use super::schema::{Family, Kind, MetricType, Samples, BUCKETS_MS, PROCESS, SLOTS};

/// One series, copied out of the zone.
#[derive(Clone, Debug)]
pub struct SeriesSnapshot {
    pub kind: Kind,
    pub label: Vec<u8>,
    pub values: [u64; SLOTS],
}

/// What the status page shows.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The zone's name.
    pub zone: String,
    /// workers, reloads, series, capacity, dropped (the order of
    /// [`PROCESS`]).
    pub process: [u64; 5],
    pub series: Vec<SeriesSnapshot>,
}

/// The format of the status page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Json,
    Prometheus,
}

impl Format {
    pub fn parse(word: &[u8]) -> Option<Format> {
        match word {
            b"json" => Some(Format::Json),
            b"prometheus" => Some(Format::Prometheus),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The format an `Accept` header asks for, if it names one of ours:
    /// JSON for `application/json`, Prometheus for `text/plain` or
    /// OpenMetrics (what Prometheus sends). The first one named wins;
    /// `*/*` names none.
    pub fn from_accept(accept: &[u8]) -> Option<Format> {
        accept.split(|&b| b == b',').find_map(|item| {
            let media = item.split(|&b| b == b';').next().unwrap_or(b"");
            let media = media.trim_ascii();
            if media.eq_ignore_ascii_case(b"application/json") {
                Some(Format::Json)
            } else if media.eq_ignore_ascii_case(b"text/plain")
                || media.eq_ignore_ascii_case(b"application/openmetrics-text")
            {
                Some(Format::Prometheus)
            } else {
                None
            }
        })
    }
}

/// The page in `format`.
pub fn render(snapshot: &Snapshot, format: Format) -> String {
    match format {
        Format::Json => json(snapshot),
        Format::Prometheus => prometheus(snapshot),
    }
}

/// A label value in the exposition format: `\`, `"` and newline escaped;
/// bytes that are not UTF-8 replaced (the format is UTF-8).
pub fn escape_label(out: &mut String, value: &[u8]) {
    for c in String::from_utf8_lossy(value).chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A JSON string (with its quotes).
pub fn json_string(out: &mut String, value: &[u8]) {
    out.push('"');
    for c in String::from_utf8_lossy(value).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `le` of a bucket in seconds, as Prometheus shows it (`0.005`, `2.5`).
fn le_seconds(ms: u64) -> String {
    let s = format!("{}.{:03}", ms / 1000, ms % 1000);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// Milliseconds as seconds with millisecond precision.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Cumulative bucket counts (the last is `+Inf`, the count) and the sum.
fn histogram(values: &[u64; SLOTS], first: usize) -> (Vec<u64>, u64) {
    let mut total = 0;
    let cumulative = (0..=BUCKETS_MS.len())
        .map(|i| {
            total += values[first + i];
            total
        })
        .collect();
    (cumulative, values[first + BUCKETS_MS.len() + 1])
}

fn prometheus(snapshot: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    for (i, (name, _, metric_type, help)) in PROCESS.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {}", metric_type.as_str());
        let _ = write!(out, "{name}{{zone=\"");
        escape_label(&mut out, snapshot.zone.as_bytes());
        let _ = writeln!(out, "\"}} {}", snapshot.process[i]);
    }
    for kind in Kind::ALL {
        let schema = kind.schema();
        let series: Vec<&SeriesSnapshot> =
            snapshot.series.iter().filter(|s| s.kind == kind).collect();
        if series.is_empty() {
            continue;
        }
        for family in schema.families {
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(
                out,
                "# TYPE {} {}",
                family.name,
                family.metric_type.as_str()
            );
            for s in &series {
                let mut key = String::new();
                if let Some(label) = schema.key_label {
                    let _ = write!(key, "{label}=\"");
                    escape_label(&mut key, &s.label);
                    key.push('"');
                }
                prometheus_family(&mut out, family, &key, &s.values);
            }
        }
    }
    out
}

/// `{a="b",c="d"}` from label pairs already rendered, or nothing.
fn braces(parts: &[&str]) -> String {
    let parts: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn prometheus_family(out: &mut String, family: &Family, key: &str, values: &[u64; SLOTS]) {
    let name = family.name;
    match family.samples {
        Samples::Single(slot) => {
            let _ = writeln!(out, "{name}{} {}", braces(&[key]), values[slot]);
        }
        Samples::Labeled {
            label,
            values: labeled,
        } => {
            for (value, slot) in labeled {
                let own = format!("{label}=\"{value}\"");
                let _ = writeln!(out, "{name}{} {}", braces(&[key, &own]), values[*slot]);
            }
        }
        Samples::Histogram(first) => {
            let (cumulative, sum) = histogram(values, first);
            for (i, count) in cumulative.iter().enumerate() {
                let le = BUCKETS_MS
                    .get(i)
                    .map_or_else(|| "+Inf".to_owned(), |&ms| le_seconds(ms));
                let own = format!("le=\"{le}\"");
                let _ = writeln!(out, "{name}_bucket{} {count}", braces(&[key, &own]));
            }
            let _ = writeln!(out, "{name}_sum{} {}", braces(&[key]), seconds(sum));
            let count = cumulative.last().copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_count{} {count}", braces(&[key]));
        }
    }
}

fn json(snapshot: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("{\"version\":1,\"zone\":");
    json_string(&mut out, snapshot.zone.as_bytes());
    out.push_str(",\"process\":{");
    for (i, (_, key, _, _)) in PROCESS.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{key}\":{}", snapshot.process[i]);
    }
    out.push('}');
    for kind in Kind::ALL {
        let schema = kind.schema();
        let _ = write!(out, ",\"{}\":[", schema.section);
        let series = snapshot.series.iter().filter(|s| s.kind == kind);
        for (n, s) in series.enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push('{');
            let mut first = true;
            if let Some(label) = schema.key_label {
                let _ = write!(out, "\"{label}\":");
                json_string(&mut out, &s.label);
                first = false;
            }
            for family in schema.families {
                if !first {
                    out.push(',');
                }
                first = false;
                let _ = write!(out, "\"{}\":", family.json);
                json_family(&mut out, family, &s.values);
            }
            out.push('}');
        }
        out.push(']');
    }
    out.push_str("}\n");
    out
}

fn json_family(out: &mut String, family: &Family, values: &[u64; SLOTS]) {
    match family.samples {
        Samples::Single(slot) => {
            let _ = write!(out, "{}", values[slot]);
        }
        Samples::Labeled {
            values: labeled, ..
        } => {
            out.push('{');
            for (i, (value, slot)) in labeled.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "\"{value}\":{}", values[*slot]);
            }
            out.push('}');
        }
        Samples::Histogram(first) => {
            let (cumulative, sum) = histogram(values, first);
            out.push_str("{\"le\":{");
            for (i, count) in cumulative.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match BUCKETS_MS.get(i) {
                    Some(ms) => {
                        let _ = write!(out, "\"{ms}\":{count}");
                    }
                    None => {
                        let _ = write!(out, "\"+Inf\":{count}");
                    }
                }
            }
            let count = cumulative.last().copied().unwrap_or(0);
            let _ = write!(out, "}},\"sum\":{sum},\"count\":{count}}}");
        }
    }
    debug_assert!(family.metric_type != MetricType::Histogram || family.json.ends_with("_ms"));
}

#[cfg(test)]
mod tests {
    use super::super::schema::{auth_request, key_auth, HISTOGRAM_SLOTS};
    use super::*;

    fn sample() -> Snapshot {
        let mut values = [0u64; SLOTS];
        values[auth_request::ALLOW] = 3;
        values[auth_request::ERROR] = 1;
        values[auth_request::LATENCY] = 2; // <= 1 ms
        values[auth_request::LATENCY + 3] = 1; // <= 25 ms
        values[auth_request::LATENCY + HISTOGRAM_SLOTS - 2] = 1; // > 10 s
        values[auth_request::LATENCY + HISTOGRAM_SLOTS - 1] = 12_020; // sum ms
        let mut k = [0u64; SLOTS];
        k[key_auth::MISSING] = 7;
        Snapshot {
            zone: "st".into(),
            process: [2, 1, 2, 100, 0],
            series: vec![
                SeriesSnapshot {
                    kind: Kind::AuthRequest,
                    label: b"/a\"b\\c\nd".to_vec(),
                    values,
                },
                SeriesSnapshot {
                    kind: Kind::KeyAuth,
                    label: vec![],
                    values: k,
                },
            ],
        }
    }

    #[test]
    fn prometheus_text() {
        let text = render(&sample(), Format::Prometheus);
        assert!(text.contains("# TYPE authgate_auth_request_decisions_total counter\n"));
        assert!(text.contains(
            "authgate_auth_request_decisions_total{uri=\"/a\\\"b\\\\c\\nd\",decision=\"allow\"} 3\n"
        ));
        assert!(text.contains(
            "authgate_auth_request_duration_seconds_bucket{uri=\"/a\\\"b\\\\c\\nd\",le=\"0.001\"} 2\n"
        ));
        assert!(text.contains("le=\"0.025\"} 3\n"));
        assert!(text.contains("le=\"10\"} 3\n"));
        assert!(text.contains("le=\"+Inf\"} 4\n"));
        assert!(text.contains(
            "authgate_auth_request_duration_seconds_sum{uri=\"/a\\\"b\\\\c\\nd\"} 12.020\n"
        ));
        assert!(text.contains(
            "authgate_auth_request_duration_seconds_count{uri=\"/a\\\"b\\\\c\\nd\"} 4\n"
        ));
        assert!(text.contains("authgate_key_auth_requests_total{outcome=\"missing\"} 7\n"));
        assert!(text.contains("authgate_status_workers{zone=\"st\"} 2\n"));
        assert!(!text.contains("authgate_ntlm"), "no series, no family");
        // every sample line names a family announced by # TYPE before it
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| typed.contains(*b)))
                    .unwrap_or(name);
                assert!(typed.contains(base), "{line}");
            }
        }
    }

    #[test]
    fn json_shape() {
        let text = render(&sample(), Format::Json);
        assert!(text.starts_with("{\"version\":1,\"zone\":\"st\",\"process\":{\"workers\":2,\"reloads\":1,\"series\":2,\"capacity\":100,\"dropped\":0},\"auth_request\":[{\"uri\":\"/a\\\"b\\\\c\\nd\",\"decisions\":{\"allow\":3,\"unauthorized\":0,\"forbidden\":0,\"passed\":0,\"error\":1}"), "{text}");
        assert!(text.contains("\"duration_ms\":{\"le\":{\"1\":2,\"5\":2,\"10\":2,\"25\":3,"));
        assert!(text.contains("\"+Inf\":4},\"sum\":12020,\"count\":4}"));
        assert!(text.contains("\"key_auth\":[{\"requests\":{\"allowed\":0,\"missing\":7,"));
        assert!(text.contains("\"ntlm\":[]"));
    }

    #[test]
    fn escapes() {
        let mut s = String::new();
        json_string(&mut s, b"a\x01\xff");
        assert_eq!(s, "\"a\\u0001\u{fffd}\"");
        let mut s = String::new();
        escape_label(&mut s, b"x\"y");
        assert_eq!(s, "x\\\"y");
        assert_eq!(le_seconds(1), "0.001");
        assert_eq!(le_seconds(2500), "2.5");
        assert_eq!(le_seconds(10000), "10");
    }

    #[test]
    fn accept() {
        assert_eq!(Format::from_accept(b"application/json"), Some(Format::Json));
        assert_eq!(
            Format::from_accept(
                b"application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ),
            Some(Format::Prometheus)
        );
        assert_eq!(Format::from_accept(b"*/*"), None);
        assert_eq!(
            Format::from_accept(b"text/html, Application/JSON"),
            Some(Format::Json)
        );
    }
}

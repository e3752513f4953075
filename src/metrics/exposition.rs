//! The Prometheus text exposition format 0.0.4: a writer for families and samples
//! ([`Exposition`]), with label values, help text and floats written as the format
//! requires.

use std::fmt::Write as _;

use crate::stats::{HistogramSnapshot, LATENCY_BUCKETS};

/// The Content-Type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, `_sum` and `_count`.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Writes the text exposition format: `# HELP` and `# TYPE` once per family, then
/// its samples, with label values and help text escaped as the format requires.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty document.
    pub fn new() -> Exposition {
        Exposition {
            out: String::with_capacity(16 * 1024),
        }
    }

    /// Starts a family. Every sample of it must follow before the next family.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample with an integer value.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.name_and_labels(name, labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// One sample with a floating-point value.
    pub fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.name_and_labels(name, labels, None);
        let _ = writeln!(self.out, " {}", format_f64(value));
    }

    /// The samples of one histogram: cumulative `_bucket`s with `le`, `+Inf` last,
    /// then `_sum` (seconds) and `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let cumulative = h.cumulative();
        let bucket = format!("{name}_bucket");
        for (i, count) in cumulative.iter().enumerate() {
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| format_f64(*b));
            self.name_and_labels(&bucket, labels, Some(&le));
            let _ = writeln!(self.out, " {count}");
        }
        self.sample_f64(&format!("{name}_sum"), labels, h.sum_seconds());
        self.sample(&format!("{name}_count"), labels, h.count());
    }

    /// The document.
    pub fn finish(self) -> String {
        self.out
    }

    fn name_and_labels(&mut self, name: &str, labels: &[(&str, &str)], le: Option<&str>) {
        self.out.push_str(name);
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                self.out.push(',');
            }
            first = false;
            let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
        }
        self.out.push('}');
    }
}

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Escapes help text: backslash and line feed.
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as the format writes it (`+Inf`, `-Inf`, `NaN`, else Rust's shortest
/// round-tripping form).
pub fn format_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Histogram;
    use std::time::Duration;

    #[test]
    fn samples_and_labels_are_written_and_escaped() {
        let mut e = Exposition::new();
        e.family("x_total", Kind::Counter, "Line one\nwith \\ backslash.");
        e.sample("x_total", &[], 7);
        e.sample("x_total", &[("group", "a\"b\\c\nd"), ("cache", "main")], 3);
        e.family("y", Kind::Gauge, "A float.");
        e.sample_f64("y", &[], 0.25);
        e.sample_f64("y", &[("k", "inf")], f64::INFINITY);
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP x_total Line one\\nwith \\\\ backslash.\n\
             # TYPE x_total counter\n\
             x_total 7\n\
             x_total{group=\"a\\\"b\\\\c\\nd\",cache=\"main\"} 3\n\
             # HELP y A float.\n\
             # TYPE y gauge\n\
             y 0.25\n\
             y{k=\"inf\"} +Inf\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_with_inf_last_and_count_equal_to_it() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(200));
        h.observe(Duration::from_millis(7));
        h.observe(Duration::from_secs(30));
        let mut snap = HistogramSnapshot::default();
        snap.add(&h);
        let mut e = Exposition::new();
        e.family("lat_seconds", Kind::Histogram, "Latency.");
        e.histogram("lat_seconds", &[("group", "g")], &snap);
        let text = e.finish();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "lat_seconds_bucket{group=\"g\",le=\"0.0005\"} 1");
        assert_eq!(lines[5], "lat_seconds_bucket{group=\"g\",le=\"0.005\"} 1");
        assert_eq!(lines[6], "lat_seconds_bucket{group=\"g\",le=\"0.01\"} 2");
        assert_eq!(lines[15], "lat_seconds_bucket{group=\"g\",le=\"10\"} 2");
        assert_eq!(lines[16], "lat_seconds_bucket{group=\"g\",le=\"+Inf\"} 3");
        assert!(lines[17].starts_with("lat_seconds_sum{group=\"g\"} 30.0072"));
        assert_eq!(lines[18], "lat_seconds_count{group=\"g\"} 3");
        assert_eq!(lines.len(), 19);
    }
}

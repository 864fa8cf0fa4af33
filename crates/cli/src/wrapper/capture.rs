//! Recording the wrapped program's output: each stdout/stderr line becomes a log line in the
//! spool (with its source, number and level), and with `--scalars` the `key: value` /
//! `key=value` numbers of matching lines become metrics.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::LazyLock;

use regex::Regex;
use wanllmdb_api_types::logs::{LogLevel, LogSource, NewLogLine};
use wanllmdb_api_types::metrics::{HistoryPoint, MetricValue, MetricValues};

use crate::metrics_line::MAX_KEY_LEN;
use crate::spool::Spool;

/// Longest message the server stores; longer lines are split.
const MAX_MESSAGE: usize = 1024 * 1024 - 16;

static PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)([A-Za-z_][A-Za-z0-9_./-]*)\s*[:=]\s*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[-+]?[0-9]+)?|[-+]?inf(?:inity)?|nan)\b",
    )
    .expect("scalar pattern")
});

/// Writes output lines (and captured scalars) to the spool.
pub struct OutputRecorder {
    out: BufWriter<File>,
    scalars: Option<(Regex, BufWriter<File>)>,
    line_no: [i64; 2],
    partial: [Vec<u8>; 2],
    capture_step: i64,
}

fn idx(source: LogSource) -> usize {
    usize::from(source == LogSource::Stderr)
}

impl OutputRecorder {
    /// Appends to the spool's output (and captured-scalars) files.
    pub fn new(spool: &Spool, scalars: Option<Regex>) -> std::io::Result<OutputRecorder> {
        let open = |p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
        };
        let out = BufWriter::new(open(spool.output_path())?);
        let scalars = match scalars {
            Some(re) => Some((re, BufWriter::new(open(spool.captured_path())?))),
            None => None,
        };
        Ok(OutputRecorder {
            out,
            scalars,
            line_no: [0, 0],
            partial: [Vec::new(), Vec::new()],
            capture_step: 0,
        })
    }

    /// Takes bytes the program wrote; complete lines are recorded.
    pub fn feed(&mut self, source: LogSource, bytes: &[u8]) -> std::io::Result<()> {
        let i = idx(source);
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial[i]);
            line.extend_from_slice(&rest[..nl]);
            self.record(source, &line)?;
            rest = &rest[nl + 1..];
        }
        self.partial[i].extend_from_slice(rest);
        if self.partial[i].len() > MAX_MESSAGE {
            let line = std::mem::take(&mut self.partial[i]);
            self.record(source, &line)?;
        }
        Ok(())
    }

    /// Records what is left of a stream that ended without a newline.
    pub fn end(&mut self, source: LogSource) -> std::io::Result<()> {
        let i = idx(source);
        if !self.partial[i].is_empty() {
            let line = std::mem::take(&mut self.partial[i]);
            self.record(source, &line)?;
        }
        Ok(())
    }

    /// Makes everything recorded so far visible to the shipper.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        if let Some((_, w)) = &mut self.scalars {
            w.flush()?;
        }
        Ok(())
    }

    fn record(&mut self, source: LogSource, raw: &[u8]) -> std::io::Result<()> {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // A carriage return redraws the line (progress bars): keep what the terminal shows.
        let shown = match raw.iter().rposition(|&b| b == b'\r') {
            Some(p) => &raw[p + 1..],
            None => raw,
        };
        let text = String::from_utf8_lossy(shown);
        let timestamp = crate::spool::unix_now();
        let mut start = 0;
        loop {
            let mut end = (start + MAX_MESSAGE).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let part = &text[start..end];
            let i = idx(source);
            self.line_no[i] += 1;
            let line = NewLogLine {
                level: Some(detect_level(part).unwrap_or(LogLevel::Info)),
                message: part.to_string(),
                timestamp: Some(timestamp),
                source: Some(source),
                line_number: Some(self.line_no[i]),
            };
            serde_json::to_writer(&mut self.out, &line)?;
            self.out.write_all(b"\n")?;
            if end >= text.len() {
                break;
            }
            start = end;
        }
        if let Some((re, w)) = &mut self.scalars
            && let Some(point) = capture_scalars(re, &text, &mut self.capture_step, timestamp)
        {
            serde_json::to_writer(&mut *w, &point)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// The level a line announces at its start (`ERROR: …`, `[warning] …`, `WARNING:root:…`).
pub fn detect_level(line: &str) -> Option<LogLevel> {
    let t = line.trim_start();
    let t = t.strip_prefix('[').unwrap_or(t);
    let word_end = t
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(t.len());
    let (word, after) = t.split_at(word_end);
    if !(after.is_empty() || after.starts_with([']', ':', ' '])) {
        return None;
    }
    match word.to_ascii_uppercase().as_str() {
        "DEBUG" | "TRACE" => Some(LogLevel::Debug),
        "INFO" => Some(LogLevel::Info),
        "WARN" | "WARNING" => Some(LogLevel::Warning),
        "ERROR" | "CRITICAL" | "FATAL" => Some(LogLevel::Error),
        _ => None,
    }
}

/// Numbers in a line the pattern selects. With named groups `key` and `value` the pattern
/// says exactly what to take; otherwise every `key: number` / `key=number` pair of a
/// matching line is taken. A `step` pair sets the step; other lines count up.
pub fn capture_scalars(
    re: &Regex,
    line: &str,
    next_step: &mut i64,
    ts: f64,
) -> Option<HistoryPoint> {
    let mut pairs: Vec<(String, f64)> = Vec::new();
    let named = re.capture_names().flatten().any(|n| n == "key")
        && re.capture_names().flatten().any(|n| n == "value");
    if named {
        for c in re.captures_iter(line) {
            if let (Some(k), Some(v)) = (c.name("key"), c.name("value"))
                && let Some(f) = parse_number(v.as_str())
            {
                pairs.push((k.as_str().to_string(), f));
            }
        }
    } else if re.is_match(line) {
        for c in PAIR.captures_iter(line) {
            if let Some(f) = parse_number(&c[2]) {
                pairs.push((c[1].to_string(), f));
            }
        }
    }
    let mut step = None;
    pairs.retain(|(k, v)| {
        if k.eq_ignore_ascii_case("step") && v.fract() == 0.0 {
            step = Some(*v as i64);
            false
        } else {
            !k.is_empty() && k.len() <= MAX_KEY_LEN
        }
    });
    if pairs.is_empty() {
        return None;
    }
    let step = step.unwrap_or(*next_step);
    *next_step = step + 1;
    Some(HistoryPoint {
        step,
        timestamp: Some(ts),
        values: MetricValues(
            pairs
                .into_iter()
                .map(|(k, v)| (k, MetricValue(v)))
                .collect(),
        ),
    })
}

fn parse_number(s: &str) -> Option<f64> {
    let l = s.to_ascii_lowercase();
    match l.trim_start_matches('+') {
        "nan" => Some(f64::NAN),
        "inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_read_from_line_starts() {
        assert_eq!(detect_level("ERROR: boom"), Some(LogLevel::Error));
        assert_eq!(detect_level("[warning] x"), Some(LogLevel::Warning));
        assert_eq!(
            detect_level("WARNING:root:careful"),
            Some(LogLevel::Warning)
        );
        assert_eq!(detect_level("  debug thing"), Some(LogLevel::Debug));
        assert_eq!(detect_level("Errors happen"), None);
        assert_eq!(detect_level("epoch 1"), None);
    }

    #[test]
    fn scalars_from_matching_lines() {
        let re = Regex::new("loss").unwrap();
        let mut step = 0;
        let p =
            capture_scalars(&re, "epoch=2 loss: 0.25 acc=9.5e-1 lr=3e-4", &mut step, 1.0).unwrap();
        let keys: Vec<_> = p.values.0.iter().map(|(k, v)| (k.as_str(), v.0)).collect();
        assert_eq!(
            keys,
            [("epoch", 2.0), ("loss", 0.25), ("acc", 0.95), ("lr", 3e-4)]
        );
        assert_eq!(p.step, 0);
        assert!(capture_scalars(&re, "accuracy=3", &mut step, 1.0).is_none());
        let p = capture_scalars(&re, "step=40 loss=nan", &mut step, 1.0).unwrap();
        assert_eq!(p.step, 40);
        assert!(p.values.0[0].1.0.is_nan());
        assert_eq!(step, 41);
    }

    #[test]
    fn named_groups_choose_exactly() {
        let re = Regex::new(r"(?P<key>val_\w+) -> (?P<value>[0-9.]+)").unwrap();
        let mut step = 5;
        let p = capture_scalars(&re, "val_acc -> 0.5, loss=3", &mut step, 1.0).unwrap();
        assert_eq!(p.values.0.len(), 1);
        assert_eq!(p.values.0[0].0, "val_acc");
        assert_eq!(p.step, 5);
    }

    #[test]
    fn lines_split_on_newlines_and_keep_the_last_redraw() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool {
            dir: dir.path().to_path_buf(),
        };
        let mut r = OutputRecorder::new(&spool, None).unwrap();
        r.feed(LogSource::Stdout, b"one\ntw").unwrap();
        r.feed(LogSource::Stderr, b"10%\r50%\r100%\n").unwrap();
        r.feed(LogSource::Stdout, b"o\nthree").unwrap();
        r.end(LogSource::Stdout).unwrap();
        r.flush().unwrap();
        let text = std::fs::read_to_string(spool.output_path()).unwrap();
        let lines: Vec<NewLogLine> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let got: Vec<_> = lines
            .iter()
            .map(|l| {
                (
                    l.source.unwrap(),
                    l.line_number.unwrap(),
                    l.message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (LogSource::Stdout, 1, "one"),
                (LogSource::Stderr, 1, "100%"),
                (LogSource::Stdout, 2, "two"),
                (LogSource::Stdout, 3, "three"),
            ]
        );
    }
}

//! `wanllmdb runs plot RUN… --keys loss`: downsampled curves drawn with Braille characters at
//! the terminal's width, for SSH sessions without a browser. Each column of the plot is one
//! bucket of the server's downsampling: its min..max range is drawn as a vertical stroke, so
//! spikes show, and consecutive last values are joined by a line.

use console::{Color, Style};
use std::io::IsTerminal;

use wanllmdb_api_types::metrics::{HistoryQueryRequest, HistoryQueryResponse, Series};

use crate::client::Api;
use crate::error::{CliResult, user_err};
use crate::output::out;

/// ANSI colours of the runs, in order.
const COLOURS: [Color; 6] = [
    Color::Blue,
    Color::Red,
    Color::Green,
    Color::Magenta,
    Color::Yellow,
    Color::Cyan,
];

/// `text` in the colour of the `i`th curve.
fn in_colour(text: impl std::fmt::Display, i: usize) -> String {
    Style::new()
        .fg(COLOURS[i % COLOURS.len()])
        .force_styling(true)
        .apply_to(text)
        .to_string()
}
/// Characters the y-axis labels take.
const LABEL: usize = 10;

/// A grid of Braille cells, 2 × 4 dots each, with a run index per cell for its colour.
struct Canvas {
    cols: usize,
    rows: usize,
    dots: Vec<u8>,
    owner: Vec<Option<usize>>,
}

impl Canvas {
    fn new(cols: usize, rows: usize) -> Canvas {
        Canvas {
            cols,
            rows,
            dots: vec![0; cols * rows],
            owner: vec![None; cols * rows],
        }
    }

    fn set(&mut self, x: i64, y: i64, run: usize) {
        let (w, h) = ((self.cols * 2) as i64, (self.rows * 4) as i64);
        if !(0..w).contains(&x) || !(0..h).contains(&y) {
            return;
        }
        let (cx, cy) = ((x / 2) as usize, (y / 4) as usize);
        let bit = match (x % 2, y % 4) {
            (0, 3) => 0x40,
            (1, 3) => 0x80,
            (0, r) => 1 << r,
            (_, r) => 8 << r,
        };
        let i = cy * self.cols + cx;
        self.dots[i] |= bit;
        self.owner[i] = Some(run);
    }

    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), run: usize) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
        for s in 0..=steps {
            let x = x0 + (x1 - x0) * s / steps;
            let y = y0 + (y1 - y0) * s / steps;
            self.set(x, y, run);
        }
    }

    fn row(&self, r: usize, colour: bool) -> String {
        let mut out = String::new();
        for c in 0..self.cols {
            let i = r * self.cols + c;
            let ch = char::from_u32(0x2800 + u32::from(self.dots[i])).unwrap_or(' ');
            match self.owner[i].filter(|_| colour) {
                Some(run) => out.push_str(&in_colour(ch, run)),
                None => out.push(ch),
            }
        }
        out
    }
}

fn finite(v: &[wanllmdb_api_types::metrics::MetricValue]) -> Vec<Option<f64>> {
    v.iter()
        .map(|m| Some(m.0).filter(|x| x.is_finite()))
        .collect()
}

/// One chart of one key over several runs' series, `width` characters wide in all.
pub fn render(
    key: &str,
    series: &[(String, Series)],
    width: usize,
    rows: usize,
    colour: bool,
) -> String {
    let cols = width.saturating_sub(LABEL + 1).max(10);
    let cols_of = |s: &Series| {
        let last = finite(&s.values);
        let min = s.min.as_deref().map_or_else(|| last.clone(), finite);
        let max = s.max.as_deref().map_or_else(|| last.clone(), finite);
        (last, min, max)
    };
    let (mut x0, mut x1, mut y0, mut y1) = (i64::MAX, i64::MIN, f64::INFINITY, f64::NEG_INFINITY);
    for (_, s) in series {
        let (_, min, max) = cols_of(s);
        for (i, step) in s.steps.iter().enumerate() {
            x0 = x0.min(*step);
            x1 = x1.max(*step);
            for v in [min[i], max[i]].into_iter().flatten() {
                y0 = y0.min(v);
                y1 = y1.max(v);
            }
        }
    }
    let mut out = format!("{key}\n");
    if x0 > x1 || !y0.is_finite() {
        out.push_str("  (no points)\n");
        return out;
    }
    if y1 <= y0 {
        (y0, y1) = (y0 - 0.5, y1 + 0.5);
    }
    let (pw, ph) = ((cols * 2) as f64 - 1.0, (rows * 4) as f64 - 1.0);
    let px = |step: i64| ((step - x0) as f64 / ((x1 - x0).max(1)) as f64 * pw).round() as i64;
    let py = |v: f64| ((y1 - v) / (y1 - y0) * ph).round() as i64;
    let mut canvas = Canvas::new(cols, rows);
    for (run, (_, s)) in series.iter().enumerate() {
        let (last, min, max) = cols_of(s);
        let mut prev: Option<(i64, i64)> = None;
        for (i, step) in s.steps.iter().enumerate() {
            let x = px(*step);
            if let (Some(lo), Some(hi)) = (min[i], max[i]) {
                canvas.line((x, py(hi)), (x, py(lo)), run);
            }
            match last[i] {
                Some(v) => {
                    let p = (x, py(v));
                    if let Some(q) = prev {
                        canvas.line(q, p, run);
                    }
                    prev = Some(p);
                }
                None => prev = None,
            }
        }
    }
    let label = |v: f64| format!("{:>w$}", short(v), w = LABEL);
    for r in 0..rows {
        let l = if r == 0 {
            label(y1)
        } else if r == rows - 1 {
            label(y0)
        } else {
            " ".repeat(LABEL)
        };
        out.push_str(&format!("{l}│{}\n", canvas.row(r, colour)));
    }
    let left = x0.to_string();
    let right = x1.to_string();
    let gap = cols.saturating_sub(left.len() + right.len());
    out.push_str(&format!("{}└{}\n", " ".repeat(LABEL), "─".repeat(cols)));
    out.push_str(&format!(
        "{} {left}{}{right} (step)\n",
        " ".repeat(LABEL),
        " ".repeat(gap)
    ));
    if series.len() > 1 {
        let legend: Vec<String> = series
            .iter()
            .enumerate()
            .map(|(i, (run, _))| {
                if colour {
                    format!("{} {run}", in_colour('⣿', i))
                } else {
                    format!("#{} {run}", i + 1)
                }
            })
            .collect();
        out.push_str(&format!("{} {}\n", " ".repeat(LABEL), legend.join("   ")));
    }
    out
}

/// A number in at most 9 characters.
pub fn short(v: f64) -> String {
    if v != 0.0 && !(1e-3..1e7).contains(&v.abs()) {
        return format!("{v:.2e}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s.len() <= 9 { s } else { format!("{v:.2e}") }
}

/// The terminal's width in characters (80 when it cannot be told).
fn terminal_width() -> usize {
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return c;
    }
    console::Term::stdout()
        .size_checked()
        .map_or(80, |(_, w)| usize::from(w))
}

/// Fetches the runs' keys downsampled to the plot's width and prints one chart per key.
pub async fn plot(
    api: &Api,
    runs: Vec<String>,
    keys: Vec<String>,
    width: Option<usize>,
    height: usize,
) -> CliResult {
    if keys.is_empty() {
        return Err(user_err!("name the metrics to plot").hint("pass --keys loss,acc"));
    }
    if !(2..=200).contains(&height) {
        return Err(user_err!("--height must be between 2 and 200"));
    }
    let width = width.unwrap_or_else(terminal_width).max(LABEL + 12);
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let runs = runs
        .iter()
        .map(|r| super::valid_run_id(r))
        .collect::<CliResult<Vec<_>>>()?;
    // Two Braille dots per character: one bucket per dot column.
    let max_points = (width - LABEL - 1) * 2;
    let answer: HistoryQueryResponse = api
        .post(
            "/api/v1/history/query",
            &HistoryQueryRequest {
                runs: runs.clone(),
                keys: keys.clone(),
                min_step: None,
                max_step: None,
                max_points: Some(max_points),
            },
        )
        .await?;
    for key in &keys {
        let series: Vec<(String, Series)> = answer
            .results
            .iter()
            .filter_map(|h| {
                h.series
                    .iter()
                    .find(|s| &s.key == key)
                    .map(|s| (h.run.to_string(), s.clone()))
            })
            .collect();
        out!("{}", render(key, &series, width, height, colour))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wanllmdb_api_types::metrics::MetricValue;

    fn series(values: &[f64], max: Option<&[f64]>) -> Series {
        let wire = |v: &[f64]| v.iter().copied().map(MetricValue).collect::<Vec<_>>();
        Series {
            key: "loss".into(),
            steps: (0..values.len() as i64).collect(),
            values: wire(values),
            timestamps: vec![0.0; values.len()],
            total_points: values.len() as u64,
            downsampled: max.is_some(),
            min: max.map(|_| wire(values)),
            max: max.map(wire),
            last: max.map(|_| wire(values)),
        }
    }

    #[test]
    fn draws_at_the_width_with_spikes_and_labels() {
        let values: Vec<f64> = (0..40).map(|i| 1.0 - i as f64 / 40.0).collect();
        let mut spiky = values.clone();
        spiky[20] = 50.0;
        let out = render(
            "loss",
            &[("ab12cd34".into(), series(&values, Some(&spiky)))],
            60,
            8,
            false,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "loss");
        assert_eq!(lines.len(), 1 + 8 + 2);
        for l in &lines[1..9] {
            assert_eq!(l.chars().count(), 60, "{l:?}");
        }
        assert!(
            lines[1].trim_start().starts_with("50"),
            "the spike sets the top: {}",
            lines[1]
        );
        assert!(
            lines[1]
                .chars()
                .any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)),
            "the spike is drawn"
        );
        assert!(lines[10].contains('0') && lines[10].contains("39"));
    }

    #[test]
    fn legend_for_several_runs_and_empty_series() {
        let a = series(&[1.0, 2.0, 3.0], None);
        let out = render(
            "acc",
            &[("aaaaaaaa".into(), a.clone()), ("bbbbbbbb".into(), a)],
            40,
            4,
            false,
        );
        assert!(out.contains("#1 aaaaaaaa") && out.contains("#2 bbbbbbbb"));
        let out = render(
            "acc",
            &[("aaaaaaaa".into(), series(&[], None))],
            40,
            4,
            false,
        );
        assert!(out.contains("(no points)"));
        assert_eq!(short(0.000012345), "1.23e-5");
        assert_eq!(short(2.5), "2.5");
    }
}

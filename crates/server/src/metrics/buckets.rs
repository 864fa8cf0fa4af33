//! Downsampling onto a step grid. A downsampled read splits a step range into buckets and
//! gives, for each bucket that holds points, its smallest and largest value and its last point,
//! so a chart draws the extremes as a band and a line through the last values: spikes are never
//! hidden, and the line ends on the series' real last value.
//!
//! The grid depends only on the range and the bucket count, so every series read with the same
//! range (all runs of a multi-run query) lands on the same steps. Bucket 0 holds only the
//! range's first step, so the first point is kept exactly; each other bucket `i` covers
//! `(lo + (i - 1) * width, lo + i * width]` and is reported at its upper edge, the last one
//! clipped to the range's last step, which keeps the last point at its real step.

use super::codec::Point;

/// The buckets of one downsampled read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    lo: i64,
    hi: i64,
    /// Steps per bucket after the first.
    width: u64,
    /// Buckets after the first.
    n: u64,
}

impl Grid {
    /// At most `buckets` buckets (at least 1) over the inclusive range `[lo, hi]`.
    pub fn new(lo: i64, hi: i64, buckets: usize) -> Grid {
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        let span = (i128::from(hi) - i128::from(lo)) as u128; // steps after the first
        let n = (buckets.saturating_sub(1) as u128).min(span);
        let width = if n == 0 {
            1
        } else {
            u64::try_from(span.div_ceil(n)).unwrap_or(u64::MAX)
        };
        Grid {
            lo,
            hi,
            width,
            n: n as u64,
        }
    }

    /// The bucket a step falls in (steps outside the range are clamped into it).
    pub fn bucket(&self, step: i64) -> u64 {
        if step <= self.lo || self.n == 0 {
            return 0;
        }
        let offset = (i128::from(step.min(self.hi)) - i128::from(self.lo) - 1) as u128;
        (1 + offset / u128::from(self.width)).min(u128::from(self.n)) as u64
    }

    /// The step a bucket is reported at.
    pub fn step(&self, bucket: u64) -> i64 {
        if bucket == 0 {
            return self.lo;
        }
        let edge = i128::from(self.lo) + i128::from(bucket) * i128::from(self.width);
        edge.min(i128::from(self.hi)) as i64
    }

    /// Number of buckets.
    pub fn len(&self) -> u64 {
        self.n + 1
    }

    /// A grid always has its first bucket.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Per-bucket columns of a downsampled series, in step order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// The grid step of each bucket.
    pub steps: Vec<i64>,
    /// Smallest value (NaN only where the bucket holds nothing but NaN).
    pub min: Vec<f64>,
    /// Largest value (NaN only where the bucket holds nothing but NaN).
    pub max: Vec<f64>,
    /// Value of the bucket's last point.
    pub last: Vec<f64>,
    /// Timestamp of the bucket's last point (microseconds).
    pub last_us: Vec<i64>,
}

/// Collects units (single points, or blocks and chunks given by their extremes and last
/// point) in step order and writes one entry per bucket. A unit belongs to the bucket of its
/// last step; units are at most as wide as a bucket wherever a read uses them, so an extreme
/// is reported at most one bucket later than its own step, and never lost.
pub struct BucketWriter {
    grid: Grid,
    current: Option<u64>,
    min: f64,
    max: f64,
    last: Point,
    out: Buckets,
}

/// NaN counts only where nothing else is there.
fn lower(a: f64, b: f64) -> f64 {
    if b < a || a.is_nan() { b } else { a }
}

fn higher(a: f64, b: f64) -> f64 {
    if b > a || a.is_nan() { b } else { a }
}

impl BucketWriter {
    /// A writer onto `grid`.
    pub fn new(grid: Grid) -> BucketWriter {
        BucketWriter {
            grid,
            current: None,
            min: f64::NAN,
            max: f64::NAN,
            last: Point {
                step: 0,
                value: f64::NAN,
                timestamp_us: 0,
            },
            out: Buckets::default(),
        }
    }

    /// One point.
    pub fn point(&mut self, p: Point) {
        self.unit(p.value, p.value, p);
    }

    /// A run of consecutive points given by its extremes (NaN when it holds only NaN) and its
    /// last point.
    pub fn unit(&mut self, min: f64, max: f64, last: Point) {
        let b = self.grid.bucket(last.step);
        if self.current != Some(b) {
            self.flush();
            self.current = Some(b);
            self.min = min;
            self.max = max;
        } else {
            self.min = lower(self.min, min);
            self.max = higher(self.max, max);
        }
        self.last = last;
    }

    fn flush(&mut self) {
        if let Some(b) = self.current.take() {
            self.out.steps.push(self.grid.step(b));
            self.out.min.push(self.min);
            self.out.max.push(self.max);
            self.out.last.push(self.last.value);
            self.out.last_us.push(self.last.timestamp_us);
        }
    }

    /// The buckets written.
    pub fn finish(mut self) -> Buckets {
        self.flush();
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(step: i64, value: f64) -> Point {
        Point {
            step,
            value,
            timestamp_us: step * 10,
        }
    }

    #[test]
    fn grid_keeps_first_and_last_step() {
        let g = Grid::new(0, 999, 10);
        assert_eq!(g.len(), 10);
        assert_eq!(g.step(0), 0);
        assert_eq!(g.bucket(0), 0);
        assert_eq!(g.bucket(1), 1);
        assert_eq!(g.step(g.bucket(999)), 999);
        let steps: Vec<i64> = (0..g.len()).map(|b| g.step(b)).collect();
        assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
        for s in 0..=999 {
            let b = g.bucket(s);
            assert!(s <= g.step(b), "step {s} is reported at or after itself");
            if b > 0 {
                assert!(s > g.step(b - 1), "step {s} is after the previous bucket");
            }
        }
    }

    #[test]
    fn grid_degenerate_and_extreme_ranges() {
        let one = Grid::new(5, 5, 100);
        assert_eq!((one.len(), one.bucket(5), one.step(0)), (1, 0, 5));
        let few = Grid::new(0, 3, 100);
        assert_eq!(few.len(), 4, "never more buckets than steps");
        let wide = Grid::new(i64::MIN, i64::MAX, 1000);
        assert_eq!(wide.step(wide.bucket(i64::MAX)), i64::MAX);
        assert_eq!(wide.bucket(i64::MIN), 0);
        assert!(wide.len() <= 1000);
        let single = Grid::new(0, 100, 1);
        assert_eq!(single.len(), 1);
    }

    #[test]
    fn writer_keeps_extremes_and_last() {
        let g = Grid::new(0, 99, 5);
        let mut w = BucketWriter::new(g);
        for s in 0..100 {
            let v = match s {
                37 => 100.0,
                38 => f64::NAN,
                61 => -100.0,
                _ => s as f64,
            };
            w.point(pt(s, v));
        }
        let b = w.finish();
        assert_eq!(b.steps.len(), 5);
        assert_eq!(b.steps[0], 0);
        assert_eq!(*b.steps.last().unwrap(), 99);
        assert!(b.max.contains(&100.0) && b.min.contains(&-100.0));
        assert_eq!(*b.last.last().unwrap(), 99.0);
        assert_eq!(*b.last_us.last().unwrap(), 990);
        assert!(b.min.iter().all(|v| !v.is_nan()), "NaN only alone");
    }

    #[test]
    fn units_and_points_agree() {
        let g = Grid::new(0, 4095, 9);
        let pts: Vec<Point> = (0..4096)
            .map(|s| pt(s, ((s * 7919) % 1013) as f64))
            .collect();
        let mut by_point = BucketWriter::new(g);
        pts.iter().for_each(|p| by_point.point(*p));
        let by_point = by_point.finish();
        // Units of 32 points never wider than a bucket land on the same buckets' last points.
        let mut by_unit = BucketWriter::new(g);
        by_unit.point(pts[0]);
        for block in pts[1..].chunks(32) {
            let min = block.iter().map(|p| p.value).fold(f64::NAN, lower);
            let max = block.iter().map(|p| p.value).fold(f64::NAN, higher);
            by_unit.unit(min, max, *block.last().unwrap());
        }
        let by_unit = by_unit.finish();
        assert_eq!(by_unit.steps, by_point.steps);
        assert_eq!(by_unit.last, by_point.last);
        let all_max = pts.iter().map(|p| p.value).fold(f64::NAN, higher);
        assert_eq!(by_unit.max.iter().copied().fold(f64::NAN, higher), all_max);
    }

    #[test]
    fn only_nan_bucket() {
        let mut w = BucketWriter::new(Grid::new(0, 10, 2));
        w.point(pt(0, 1.0));
        w.point(pt(5, f64::NAN));
        let b = w.finish();
        assert_eq!(b.steps, vec![0, 10]);
        assert!(b.min[1].is_nan() && b.max[1].is_nan() && b.last[1].is_nan());
    }
}

//! Parameter importance: how much of the objective's variation each parameter explains.
//!
//! A small random forest of regression trees is fitted to (parameters → objective), and each
//! parameter's importance is the first-order functional-ANOVA share of the forest: the variance
//! of the forest's prediction averaged over every other parameter, as a function of this one,
//! divided by the prediction's total variance (Hutter, Hoos & Leyton-Brown, "An Efficient
//! Approach for Assessing Hyperparameter Importance", ICML 2014). Trees are axis-aligned boxes,
//! so these marginals are exact sums over leaves, taken under the uniform measure on the
//! observed range of each numeric parameter and on the observed categories.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One parameter's value in one trial.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// A number (a float or integer parameter).
    Num(f64),
    /// A choice, compared as text.
    Cat(String),
}

/// How much each parameter explains the objective.
#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    /// The parameter's name as given.
    pub name: String,
    /// Share of the explained variance, in [0, 1]; the shares of all parameters sum to 1 (or are all 0).
    pub importance: f64,
    /// Spearman rank correlation with the objective; None for categorical or constant parameters.
    pub correlation: Option<f64>,
}

const TREES: usize = 32;
const MAX_DEPTH: usize = 8;
const MIN_LEAF: usize = 2;
/// Fixed so the same trials always give the same importances.
const SEED: u64 = 0x0077_7061_7261_6d73;

/// Importance of every parameter, most important first.
///
/// `columns`: (parameter name, one value per trial: Num(f64) or Cat(String)), `objective`: one
/// finite value per trial. Trials beyond the shortest column, or with a non-finite objective,
/// are left out; fewer than 3 usable trials give an empty list. A column that is not all finite
/// numbers is treated as categorical.
pub fn importance(columns: &[(String, Vec<ParamValue>)], objective: &[f64]) -> Vec<Importance> {
    let n = columns
        .iter()
        .map(|(_, v)| v.len())
        .fold(objective.len(), usize::min);
    let rows: Vec<usize> = (0..n).filter(|&i| objective[i].is_finite()).collect();
    if rows.len() < 3 || columns.is_empty() {
        return Vec::new();
    }
    let y: Vec<f64> = rows.iter().map(|&i| objective[i]).collect();
    let features: Vec<Feature> = columns
        .iter()
        .map(|(_, values)| Feature::encode(values, &rows))
        .collect();
    let shares = forest_shares(&features, &y);
    let mut out: Vec<Importance> = columns
        .iter()
        .zip(&features)
        .zip(shares)
        .map(|(((name, _), feature), importance)| Importance {
            name: name.clone(),
            importance,
            correlation: feature.spearman(&y),
        })
        .collect();
    // A stable sort keeps the given order among equals.
    out.sort_by(|a, b| b.importance.total_cmp(&a.importance));
    out
}

/// One parameter over the usable trials.
enum Feature {
    /// Values, with the observed range the marginals are taken over.
    Numeric { x: Vec<f64>, low: f64, high: f64 },
    /// Category codes 0..n in order of first appearance.
    Categorical { codes: Vec<usize>, n: usize },
}

impl Feature {
    fn encode(values: &[ParamValue], rows: &[usize]) -> Feature {
        let numbers: Option<Vec<f64>> = rows
            .iter()
            .map(|&i| match values[i] {
                ParamValue::Num(x) if x.is_finite() => Some(x),
                _ => None,
            })
            .collect();
        if let Some(x) = numbers {
            let low = x.iter().copied().fold(f64::INFINITY, f64::min);
            let high = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            return Feature::Numeric { x, low, high };
        }
        let mut labels: Vec<String> = Vec::new();
        let codes = rows
            .iter()
            .map(|&i| {
                let label = match &values[i] {
                    ParamValue::Num(x) => x.to_string(),
                    ParamValue::Cat(s) => s.clone(),
                };
                match labels.iter().position(|l| *l == label) {
                    Some(c) => c,
                    None => {
                        labels.push(label);
                        labels.len() - 1
                    }
                }
            })
            .collect();
        Feature::Categorical {
            codes,
            n: labels.len(),
        }
    }

    fn spearman(&self, y: &[f64]) -> Option<f64> {
        match self {
            Feature::Numeric { x, .. } => pearson(&ranks(x), &ranks(y)),
            Feature::Categorical { .. } => None,
        }
    }
}

/// Ranks from 1, ties sharing their average rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        let average = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            r[i] = average;
        }
        start = end;
    }
    r
}

/// None when either side is constant (the correlation is undefined).
fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    (saa > 0.0 && sbb > 0.0).then(|| (sab / (saa * sbb).sqrt()).clamp(-1.0, 1.0))
}

/// Each feature's first-order variance share, averaged over the trees, normalised to sum to 1.
fn forest_shares(features: &[Feature], y: &[f64]) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut totals = vec![0.0; features.len()];
    let per_split = (2 * features.len()).div_ceil(3).max(1);
    for _ in 0..TREES {
        let sample: Vec<usize> = (0..y.len()).map(|_| rng.random_range(0..y.len())).collect();
        let mut tree = Tree {
            features,
            y,
            per_split,
            nodes: Vec::new(),
        };
        tree.grow(sample, 0, &mut rng);
        if let Some(shares) = tree.variance_shares() {
            for (t, s) in totals.iter_mut().zip(shares) {
                *t += s;
            }
        }
    }
    let sum: f64 = totals.iter().sum();
    if sum > 0.0 {
        totals.iter().map(|t| t / sum).collect()
    } else {
        vec![0.0; features.len()]
    }
}

/// Which trials go to the left child.
#[derive(Debug, Clone)]
enum Rule {
    AtMost(f64),
    /// Category codes going left.
    In(Vec<bool>),
}

enum Node {
    Leaf(f64),
    Split {
        feature: usize,
        rule: Rule,
        left: usize,
        right: usize,
    },
}

/// A regression tree under construction (nodes in a flat arena).
struct Tree<'a> {
    features: &'a [Feature],
    y: &'a [f64],
    per_split: usize,
    nodes: Vec<Node>,
}

/// The best split found for one feature: its rule and the children's summed squared error.
struct Candidate {
    feature: usize,
    rule: Rule,
    sse: f64,
}

impl Tree<'_> {
    /// Grows the subtree for `rows` (trial indices, repeats allowed) and returns its node index.
    fn grow(&mut self, rows: Vec<usize>, depth: usize, rng: &mut StdRng) -> usize {
        let (sum, sq) = rows.iter().fold((0.0, 0.0), |(s, q), &i| {
            (s + self.y[i], q + self.y[i] * self.y[i])
        });
        let n = rows.len() as f64;
        let sse = (sq - sum * sum / n).max(0.0);
        let id = self.nodes.len();
        self.nodes.push(Node::Leaf(sum / n));
        if depth >= MAX_DEPTH || rows.len() < 2 * MIN_LEAF || sse <= 1e-12 * sq.max(1e-300) {
            return id;
        }
        let Some(best) = self.best_split(&rows, rng) else {
            return id;
        };
        // Only split when it explains something beyond rounding noise.
        if best.sse >= sse * (1.0 - 1e-9) {
            return id;
        }
        let (left, right): (Vec<usize>, Vec<usize>) = rows
            .iter()
            .partition(|&&i| goes_left(&self.features[best.feature], &best.rule, i));
        let l = self.grow(left, depth + 1, rng);
        let r = self.grow(right, depth + 1, rng);
        self.nodes[id] = Node::Split {
            feature: best.feature,
            rule: best.rule,
            left: l,
            right: r,
        };
        id
    }

    /// The best split among a random subset of the features.
    fn best_split(&self, rows: &[usize], rng: &mut StdRng) -> Option<Candidate> {
        let mut order: Vec<usize> = (0..self.features.len()).collect();
        // Partial Fisher–Yates: the first `per_split` entries become a uniform random subset.
        for i in 0..self.per_split.min(order.len()) {
            let j = rng.random_range(i..order.len());
            order.swap(i, j);
        }
        order[..self.per_split.min(order.len())]
            .iter()
            .filter_map(|&f| self.split_on(f, rows))
            .min_by(|a, b| a.sse.total_cmp(&b.sse))
    }

    fn split_on(&self, f: usize, rows: &[usize]) -> Option<Candidate> {
        match &self.features[f] {
            Feature::Numeric { x, .. } => {
                let mut pairs: Vec<(f64, f64)> = rows.iter().map(|&i| (x[i], self.y[i])).collect();
                pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
                let (at, sse) = best_prefix(&pairs)?;
                let threshold = 0.5 * (pairs[at - 1].0 + pairs[at].0);
                Some(Candidate {
                    feature: f,
                    rule: Rule::AtMost(threshold),
                    sse,
                })
            }
            Feature::Categorical { codes, n } => {
                // Ordering categories by their mean objective makes the best prefix the best
                // two-way partition (Fisher 1958 for squared error).
                let mut stats = vec![(0.0, 0usize); *n];
                for &i in rows {
                    stats[codes[i]].0 += self.y[i];
                    stats[codes[i]].1 += 1;
                }
                let mean = |c: usize| stats[c].0 / stats[c].1 as f64;
                let mut pairs: Vec<(f64, f64)> =
                    rows.iter().map(|&i| (mean(codes[i]), self.y[i])).collect();
                pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
                let (at, sse) = best_prefix(&pairs)?;
                let cut = pairs[at - 1].0;
                let left = (0..*n).map(|c| stats[c].1 > 0 && mean(c) <= cut).collect();
                Some(Candidate {
                    feature: f,
                    rule: Rule::In(left),
                    sse,
                })
            }
        }
    }

    /// Per-feature first-order variance over the tree's total variance; None for a flat tree.
    fn variance_shares(&self) -> Option<Vec<f64>> {
        let leaves = self.leaves();
        let mean: f64 = leaves.iter().map(|l| l.volume * l.value).sum();
        let total: f64 = leaves
            .iter()
            .map(|l| l.volume * (l.value - mean).powi(2))
            .sum();
        if total <= 0.0 {
            return None;
        }
        let shares = (0..self.features.len())
            .map(|f| marginal_variance(&self.features[f], f, &leaves, mean) / total)
            .collect();
        Some(shares)
    }

    /// Every leaf with its box, walking down from the root.
    fn leaves(&self) -> Vec<Leaf> {
        let root = LeafBox::whole(self.features);
        let mut out = Vec::new();
        let mut stack = vec![(0usize, root)];
        while let Some((id, b)) = stack.pop() {
            match &self.nodes[id] {
                Node::Leaf(value) => out.push(Leaf::new(*value, b, self.features)),
                Node::Split {
                    feature,
                    rule,
                    left,
                    right,
                } => {
                    let (lb, rb) = b.split(*feature, rule);
                    stack.push((*left, lb));
                    stack.push((*right, rb));
                }
            }
        }
        out
    }
}

/// The split position (size of the left part) minimising the two parts' squared error, over
/// positions between distinct keys that leave at least MIN_LEAF rows on each side.
fn best_prefix(pairs: &[(f64, f64)]) -> Option<(usize, f64)> {
    let n = pairs.len();
    let (total, total_sq) = pairs
        .iter()
        .fold((0.0, 0.0), |(s, q), p| (s + p.1, q + p.1 * p.1));
    let (mut sum, mut sq) = (0.0, 0.0);
    let mut best: Option<(usize, f64)> = None;
    for at in 1..n {
        sum += pairs[at - 1].1;
        sq += pairs[at - 1].1 * pairs[at - 1].1;
        if at < MIN_LEAF || n - at < MIN_LEAF || pairs[at - 1].0 == pairs[at].0 {
            continue;
        }
        let (nl, nr) = (at as f64, (n - at) as f64);
        let sse = (sq - sum * sum / nl) + ((total_sq - sq) - (total - sum).powi(2) / nr);
        if best.is_none_or(|b| sse < b.1) {
            best = Some((at, sse));
        }
    }
    best
}

fn goes_left(feature: &Feature, rule: &Rule, i: usize) -> bool {
    match (feature, rule) {
        (Feature::Numeric { x, .. }, Rule::AtMost(t)) => x[i] <= *t,
        (Feature::Categorical { codes, .. }, Rule::In(set)) => set[codes[i]],
        _ => false,
    }
}

/// The region of parameter space a node covers: an interval per numeric feature, a set of
/// categories per categorical one.
#[derive(Clone)]
struct LeafBox(Vec<Extent>);

#[derive(Clone)]
enum Extent {
    Interval(f64, f64),
    Categories(Vec<bool>),
}

impl LeafBox {
    fn whole(features: &[Feature]) -> LeafBox {
        LeafBox(
            features
                .iter()
                .map(|f| match f {
                    Feature::Numeric { low, high, .. } => Extent::Interval(*low, *high),
                    Feature::Categorical { n, .. } => Extent::Categories(vec![true; *n]),
                })
                .collect(),
        )
    }

    fn split(self, feature: usize, rule: &Rule) -> (LeafBox, LeafBox) {
        let (mut left, mut right) = (self.clone(), self);
        match (&mut left.0[feature], &mut right.0[feature], rule) {
            (Extent::Interval(_, lh), Extent::Interval(rl, _), Rule::AtMost(t)) => {
                *lh = lh.min(*t);
                *rl = rl.max(*t);
            }
            (Extent::Categories(l), Extent::Categories(r), Rule::In(set)) => {
                for (c, &goes) in set.iter().enumerate() {
                    l[c] &= goes;
                    r[c] &= !goes;
                }
            }
            _ => {}
        }
        (left, right)
    }
}

/// A leaf's prediction, its box, and the box's share of each feature's range.
struct Leaf {
    value: f64,
    extent: Vec<Extent>,
    fraction: Vec<f64>,
    volume: f64,
}

impl Leaf {
    fn new(value: f64, b: LeafBox, features: &[Feature]) -> Leaf {
        let fraction: Vec<f64> = b
            .0
            .iter()
            .zip(features)
            .map(|(e, f)| match (e, f) {
                (Extent::Interval(lo, hi), Feature::Numeric { low, high, .. }) if high > low => {
                    (hi - lo) / (high - low)
                }
                (Extent::Categories(set), Feature::Categorical { n, .. }) => {
                    set.iter().filter(|&&c| c).count() as f64 / *n as f64
                }
                _ => 1.0,
            })
            .collect();
        let volume = fraction.iter().product();
        Leaf {
            value,
            extent: b.0,
            fraction,
            volume,
        }
    }
}

/// Variance, over feature `f`'s range, of the tree's prediction averaged over all other features.
fn marginal_variance(feature: &Feature, f: usize, leaves: &[Leaf], mean: f64) -> f64 {
    // Each leaf contributes value × (its volume in the other features) wherever it covers x_f.
    let weight = |l: &Leaf| {
        if l.fraction[f] > 0.0 {
            l.value * l.volume / l.fraction[f]
        } else {
            0.0
        }
    };
    match feature {
        Feature::Numeric { low, high, .. } if high > low => {
            let mut cuts: Vec<f64> = leaves
                .iter()
                .flat_map(|l| match l.extent[f] {
                    Extent::Interval(a, b) => [a, b],
                    Extent::Categories(_) => [*low, *high],
                })
                .collect();
            cuts.sort_by(f64::total_cmp);
            cuts.dedup();
            cuts.windows(2)
                .map(|w| {
                    let mid = 0.5 * (w[0] + w[1]);
                    let m: f64 = leaves
                        .iter()
                        .filter(|l| match l.extent[f] {
                            Extent::Interval(a, b) => a <= mid && mid <= b,
                            _ => false,
                        })
                        .map(weight)
                        .sum();
                    (w[1] - w[0]) / (high - low) * (m - mean).powi(2)
                })
                .sum()
        }
        Feature::Categorical { n, .. } => (0..*n)
            .map(|c| {
                let m: f64 = leaves
                    .iter()
                    .filter(|l| matches!(&l.extent[f], Extent::Categories(s) if s[c]))
                    .map(weight)
                    .sum();
                (m - mean).powi(2) / *n as f64
            })
            .sum(),
        Feature::Numeric { .. } => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random sequence in [0, 1), independent of the forest's seed.
    fn sequence(seed: u64, n: usize) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random::<f64>()).collect()
    }

    fn numeric(name: &str, v: &[f64]) -> (String, Vec<ParamValue>) {
        (name.into(), v.iter().map(|&x| ParamValue::Num(x)).collect())
    }

    fn by_name<'a>(out: &'a [Importance], name: &str) -> &'a Importance {
        out.iter()
            .find(|i| i.name == name)
            .expect("parameter missing")
    }

    #[test]
    fn ranks_strong_weak_and_irrelevant_parameters() {
        let n = 120;
        let (a, b, c, noise) = (
            sequence(1, n),
            sequence(2, n),
            sequence(3, n),
            sequence(4, n),
        );
        let y: Vec<f64> = (0..n)
            .map(|i| 5.0 * a[i] + 1.5 * b[i] + 0.05 * noise[i])
            .collect();
        let cols = vec![numeric("c", &c), numeric("a", &a), numeric("b", &b)];
        let out = importance(&cols, &y);
        let names: Vec<&str> = out.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"], "{out:?}");
        let (ia, ib, ic) = (
            by_name(&out, "a").importance,
            by_name(&out, "b").importance,
            by_name(&out, "c").importance,
        );
        assert!(ia > 0.6 && ib > 0.03 && ic < 0.03, "{out:?}");
        assert!((ia + ib + ic - 1.0).abs() < 1e-9);
        assert!(by_name(&out, "a").correlation.is_some_and(|r| r > 0.8));
        assert!(
            by_name(&out, "c")
                .correlation
                .is_some_and(|r| r.abs() < 0.3)
        );
    }

    #[test]
    fn a_categorical_parameter_can_dominate() {
        let n = 80;
        let lr = sequence(5, n);
        let optimizers = ["sgd", "adam", "rmsprop"];
        let opt: Vec<usize> = sequence(6, n).iter().map(|u| (u * 3.0) as usize).collect();
        let y: Vec<f64> = (0..n)
            .map(|i| [1.0, 0.2, 0.6][opt[i]] + 0.1 * lr[i])
            .collect();
        let cols = vec![
            numeric("lr", &lr),
            (
                "optimizer".into(),
                opt.iter()
                    .map(|&o| ParamValue::Cat(optimizers[o].into()))
                    .collect(),
            ),
        ];
        let out = importance(&cols, &y);
        assert_eq!(out[0].name, "optimizer", "{out:?}");
        assert!(out[0].importance > 0.8, "{out:?}");
        assert_eq!(out[0].correlation, None);
    }

    #[test]
    fn constant_parameters_and_objectives_explain_nothing() {
        let n = 30;
        let a = sequence(7, n);
        let y: Vec<f64> = a.iter().map(|x| x * x).collect();
        let cols = vec![numeric("a", &a), numeric("fixed", &vec![3.0; n])];
        let out = importance(&cols, &y);
        assert_eq!(by_name(&out, "fixed").importance, 0.0);
        assert_eq!(by_name(&out, "fixed").correlation, None);
        assert!((by_name(&out, "a").importance - 1.0).abs() < 1e-9);

        let flat = importance(&cols, &vec![0.5; n]);
        assert!(
            flat.iter()
                .all(|i| i.importance == 0.0 && i.correlation.is_none())
        );
    }

    #[test]
    fn too_few_trials_give_nothing() {
        let cols = vec![numeric("a", &[1.0, 2.0])];
        assert!(importance(&cols, &[1.0, 2.0]).is_empty());
        // Non-finite objectives do not count as usable trials.
        let cols = vec![numeric("a", &[1.0, 2.0, 3.0])];
        assert!(importance(&cols, &[1.0, f64::NAN, 2.0]).is_empty());
    }

    #[test]
    fn results_are_deterministic() {
        let n = 50;
        let (a, b) = (sequence(8, n), sequence(9, n));
        let y: Vec<f64> = (0..n).map(|i| a[i] * b[i]).collect();
        let cols = vec![numeric("a", &a), numeric("b", &b)];
        assert_eq!(importance(&cols, &y), importance(&cols, &y));
    }

    #[test]
    fn spearman_handles_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        let r = pearson(
            &ranks(&[1.0, 2.0, 3.0, 4.0]),
            &ranks(&[10.0, 20.0, 25.0, 100.0]),
        );
        assert_eq!(r, Some(1.0));
        let r = pearson(&ranks(&[1.0, 2.0, 3.0]), &ranks(&[3.0, 2.0, 1.0]));
        assert_eq!(r, Some(-1.0));
    }
}

//! Percentiles of measured durations, and nodeguard's own Prometheus histograms summed over
//! blocks.

use std::time::Duration;

use nodeguard_integration::http::Metrics;

/// p50, p99 and max of `times` (zero when empty).
pub fn percentiles(times: &[Duration]) -> (Duration, Duration, Duration) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let at = |p: f64| {
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[rank.min(sorted.len() - 1)]
    };
    (
        at(0.50),
        at(0.99),
        sorted.last().copied().unwrap_or_default(),
    )
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Microseconds, for printing.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A Prometheus histogram: cumulative bucket counts by upper bound, sum and count.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// (upper bound in seconds, cumulative count), ascending, `+Inf` last.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of the observations, in seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: f64,
}

impl Histogram {
    /// `name`'s series whose labels include `labels`, from a scrape.
    pub fn read(metrics: &Metrics, name: &str, labels: &[(&str, &str)]) -> Histogram {
        let matches = |s: &&nodeguard_integration::http::Sample| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        };
        let mut buckets: Vec<(f64, f64)> = metrics
            .samples
            .iter()
            .filter(|s| s.name == format!("{name}_bucket"))
            .filter(matches)
            .filter_map(|s| {
                let le = s.labels.iter().find(|(k, _)| k == "le")?;
                let bound = if le.1 == "+Inf" {
                    f64::INFINITY
                } else {
                    le.1.parse().ok()?
                };
                Some((bound, s.value))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Histogram {
            buckets,
            sum: metrics.value(&format!("{name}_sum"), labels).unwrap_or(0.0),
            count: metrics
                .value(&format!("{name}_count"), labels)
                .unwrap_or(0.0),
        }
    }

    /// `self - earlier` (the observations between two scrapes of one process).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let before = |bound: f64| {
            earlier
                .buckets
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |(_, c)| *c)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|(b, c)| (*b, c - before(*b)))
                .collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    /// Adds another process's observations (same buckets).
    pub fn add(&mut self, other: &Histogram) {
        if self.buckets.is_empty() {
            self.buckets = other.buckets.iter().map(|(b, _)| (*b, 0.0)).collect();
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            mine.1 += theirs.1;
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    /// The mean observation.
    pub fn mean(&self) -> Option<Duration> {
        (self.count > 0.0).then(|| Duration::from_secs_f64(self.sum / self.count))
    }

    /// The `q` quantile, interpolated linearly inside its bucket as Prometheus'
    /// `histogram_quantile` does (so only as fine as the buckets).
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        let mut lower = (0.0, 0.0);
        for &(bound, cumulative) in &self.buckets {
            if cumulative >= rank {
                if bound.is_infinite() {
                    return Some(Duration::from_secs_f64(lower.0));
                }
                let within = (rank - lower.1) / (cumulative - lower.1).max(f64::MIN_POSITIVE);
                return Some(Duration::from_secs_f64(
                    lower.0 + (bound - lower.0) * within,
                ));
            }
            lower = (bound, cumulative);
        }
        None
    }
}

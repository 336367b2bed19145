//! Latency histograms and the summaries the reports print.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Nanosecond histogram spanning 1 ns to 60 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts, so this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap_or_else(|_| unreachable!())
}

/// Records one value, clamping to the histogram's range instead of dropping it.
pub fn record(h: &mut Histogram<u64>, ns: u64) {
    h.saturating_record(ns.max(1));
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// (percentile, microseconds) points for the percentile-distribution plot.
    pub curve: Vec<(f64, f64)>,
}

/// Percentiles the plots sample: 0, 50, 75, 90, 99, 99.9 ... up to 99.999.
pub const CURVE_PERCENTILES: [f64; 9] = [0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 99.999];

pub fn summarize(h: &Histogram<u64>) -> Option<LatencySummary> {
    if h.is_empty() {
        return None;
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    let mut curve: Vec<(f64, f64)> = CURVE_PERCENTILES
        .iter()
        .map(|p| (*p, us(h.value_at_percentile(*p))))
        .collect();
    curve.push((100.0, us(h.max())));
    Some(LatencySummary {
        count: h.len(),
        min_us: us(h.min()),
        mean_us: h.mean() / 1000.0,
        p50_us: us(h.value_at_quantile(0.50)),
        p90_us: us(h.value_at_quantile(0.90)),
        p99_us: us(h.value_at_quantile(0.99)),
        p999_us: us(h.value_at_quantile(0.999)),
        max_us: us(h.max()),
        curve,
    })
}

/// Median of the values; the mean of the two middle ones for an even count.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// Element-wise median of several summaries (one per round).
pub fn median_summary(all: &[&LatencySummary]) -> Option<LatencySummary> {
    if all.is_empty() {
        return None;
    }
    let pick = |f: &dyn Fn(&LatencySummary) -> f64| {
        median(&all.iter().map(|s| f(s)).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let npoints = all.iter().map(|s| s.curve.len()).min().unwrap_or(0);
    let curve = (0..npoints)
        .map(|i| (all[0].curve[i].0, pick(&|s| s.curve[i].1)))
        .collect();
    Some(LatencySummary {
        count: all.iter().map(|s| s.count).sum(),
        min_us: pick(&|s| s.min_us),
        mean_us: pick(&|s| s.mean_us),
        p50_us: pick(&|s| s.p50_us),
        p90_us: pick(&|s| s.p90_us),
        p99_us: pick(&|s| s.p99_us),
        p999_us: pick(&|s| s.p999_us),
        max_us: pick(&|s| s.max_us),
        curve,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_percentiles_of_uniform_values() {
        let mut h = new_histogram();
        for i in 1..=1000u64 {
            record(&mut h, i * 1000); // 1..=1000 us
        }
        let s = summarize(&h).unwrap();
        assert_eq!(s.count, 1000);
        assert!((s.p50_us - 500.0).abs() < 1.0, "{}", s.p50_us);
        assert!((s.p90_us - 900.0).abs() < 1.0, "{}", s.p90_us);
        assert!((s.p99_us - 990.0).abs() < 1.0, "{}", s.p99_us);
        assert!((s.max_us - 1000.0).abs() < 1.0, "{}", s.max_us);
        assert!((s.min_us - 1.0).abs() < 0.01);
        assert_eq!(s.curve.len(), CURVE_PERCENTILES.len() + 1);
        assert!(s.curve.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn empty_histogram_has_no_summary() {
        assert!(summarize(&new_histogram()).is_none());
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut h = new_histogram();
        record(&mut h, 0);
        record(&mut h, u64::MAX);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let a = LatencySummary {
            p50_us: 1.0,
            curve: vec![(50.0, 1.0)],
            count: 1,
            ..Default::default()
        };
        let b = LatencySummary {
            p50_us: 3.0,
            curve: vec![(50.0, 3.0)],
            count: 1,
            ..Default::default()
        };
        let c = LatencySummary {
            p50_us: 2.0,
            curve: vec![(50.0, 2.0)],
            count: 1,
            ..Default::default()
        };
        let m = median_summary(&[&a, &b, &c]).unwrap();
        assert_eq!(m.p50_us, 2.0);
        assert_eq!(m.curve, vec![(50.0, 2.0)]);
        assert_eq!(m.count, 3);
    }
}

//! The statistics of the design, on plain numbers: chi-square, Haberman's adjusted residuals,
//! the Bonferroni threshold, the coefficient of variation, the two-proportion z-test, Wilson's
//! interval and the tests on a stack of 2x2 tables (Mantel-Haenszel, Breslow-Day).

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// z* = Phi^-1(1 - alpha / (2 m)): the two-sided Bonferroni threshold for m tests.
pub fn bonferroni_threshold(alpha: f64, m: u64) -> Option<f64> {
    if m == 0 || !(alpha > 0.0 && alpha < 1.0) {
        return None;
    }
    let normal = Normal::standard();
    // inverse_sf keeps precision when alpha / 2m is tiny
    Some(-normal.inverse_cdf(alpha / (2.0 * m as f64)))
}

/// Upper tail of the chi-square distribution.
pub fn chi2_sf(x: f64, dof: u64) -> f64 {
    if dof == 0 {
        return f64::NAN;
    }
    match ChiSquared::new(dof as f64) {
        Ok(d) => d.sf(x.max(0.0)),
        Err(_) => f64::NAN,
    }
}

/// Two-sided p-value of a standard normal statistic.
pub fn normal_two_sided_p(z: f64) -> f64 {
    if !z.is_finite() {
        return if z.is_nan() { f64::NAN } else { 0.0 };
    }
    2.0 * Normal::standard().sf(z.abs())
}

/// Expected count under independence.
#[inline]
pub fn expected(row_total: f64, col_total: f64, n: f64) -> f64 {
    row_total * col_total / n
}

/// (O - E) / sqrt(E (1 - r/n) (1 - c/n)); NaN where the variance is zero (a single row or column).
#[inline]
pub fn adjusted_residual(observed: f64, row_total: f64, col_total: f64, n: f64) -> f64 {
    let e = expected(row_total, col_total, n);
    let var = e * (1.0 - row_total / n) * (1.0 - col_total / n);
    if var > 0.0 {
        (observed - e) / var.sqrt()
    } else {
        f64::NAN
    }
}

/// Neumaier-compensated sum: chi-square is a difference of two large sums.
#[derive(Default, Clone, Copy)]
pub struct Sum {
    sum: f64,
    comp: f64,
}

impl Sum {
    #[inline]
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.comp += (self.sum - t) + x;
        } else {
            self.comp += (x - t) + self.sum;
        }
        self.sum = t;
    }
    pub fn value(&self) -> f64 {
        self.sum + self.comp
    }
}

/// A sum of non-negative terms in 64.64 fixed point: exact, so it does not depend on the order
/// of the terms (the same counts give the same digits however the cells were sharded, merged or
/// spilled). Terms are rounded down to 2^-64; chi-square terms never exceed N, far below 2^63.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExactSum(i128);

impl ExactSum {
    const SCALE: f64 = 18_446_744_073_709_551_616.0; // 2^64

    #[inline]
    pub fn add(&mut self, x: f64) {
        // `as` saturates (and maps NaN to 0), so a degenerate term cannot panic
        self.0 = self.0.saturating_add((x * Self::SCALE) as i128);
    }

    pub fn merge(&mut self, other: ExactSum) {
        self.0 = self.0.saturating_add(other.0);
    }

    pub fn value(&self) -> f64 {
        self.0 as f64 / Self::SCALE
    }
}

/// Population standard deviation / mean; None for fewer than two rates or a zero mean.
/// The rates are summed in sorted order, so the result does not depend on their order.
pub fn coefficient_of_variation(rates: &[f64]) -> Option<f64> {
    if rates.len() < 2 {
        return None;
    }
    let mut sorted = rates.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let rates = &sorted[..];
    let k = rates.len() as f64;
    let mean = rates.iter().sum::<f64>() / k;
    if mean <= 0.0 {
        return None;
    }
    let var = rates.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / k;
    Some(var.sqrt() / mean)
}

/// Pooled two-proportion z-test (statsmodels `proportions_ztest` default): (z, two-sided p).
pub fn two_proportion_z(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<(f64, f64)> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (x1, n1, x2, n2) = (x1 as f64, n1 as f64, x2 as f64, n2 as f64);
    let pooled = (x1 + x2) / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 || !se.is_finite() {
        return None;
    }
    let z = (x1 / n1 - x2 / n2) / se;
    Some((z, normal_two_sided_p(z)))
}

/// Wilson's score interval for x successes in n trials at the two-sided level 1 - alpha
/// (statsmodels `proportion_confint(method="wilson")`); None where n is 0 or x > n.
pub fn wilson_interval(x: u64, n: u64, alpha: f64) -> Option<(f64, f64)> {
    if n == 0 || x > n {
        return None;
    }
    let z = -Normal::standard().inverse_cdf(alpha / 2.0);
    let (n, p) = (n as f64, x as f64 / n as f64);
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((center - half).max(0.0), (center + half).min(1.0)))
}

/// One stratum's 2x2 table [[a, b], [c, d]]: rows the two groups, columns has / has not.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Two {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub d: f64,
}

impl Two {
    fn n(&self) -> f64 {
        self.a + self.b + self.c + self.d
    }
    /// A table with a zero margin fixes its first cell: it carries no information on the
    /// odds ratio, and Breslow-Day's variance term for it is 0/0. An informative one has n >= 2,
    /// which the CMH variance (a division by n - 1) needs.
    pub fn informative(&self) -> bool {
        self.a + self.b > 0.0
            && self.c + self.d > 0.0
            && self.a + self.c > 0.0
            && self.b + self.d > 0.0
    }
}

/// Tests on a stack of 2x2 tables, each figure as statsmodels' `StratifiedTable` computes it
/// (None where that is NaN or infinite).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stratified {
    /// Mantel-Haenszel common odds ratio (`oddsratio_pooled`).
    pub odds_ratio: Option<f64>,
    /// Its interval from the Robins-Breslow-Greenland variance of the log odds ratio
    /// (`oddsratio_pooled_confint`, normal method).
    pub or_ci: Option<(f64, f64)>,
    /// Cochran-Mantel-Haenszel statistic and p-value, without continuity correction
    /// (`test_null_odds(correction=False)`; chi-square, 1 degree of freedom).
    pub cmh: Option<(f64, f64)>,
    /// Breslow-Day test of equal odds ratios, without Tarone's adjustment
    /// (`test_equal_odds(adjust=False)`; chi-square, strata - 1 degrees of freedom).
    pub breslow_day: Option<(f64, f64)>,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// The tests over the `informative` tables of the stack; the others (a zero margin) add
/// nothing to the Mantel-Haenszel sums and make statsmodels' Breslow-Day NaN, so they are left
/// out, and every figure equals statsmodels' on the informative tables. Also returns how many
/// there are. Breslow-Day needs two.
pub fn stratified(all: &[Two], alpha: f64) -> (Stratified, u64) {
    let tables: Vec<Two> = all.iter().copied().filter(Two::informative).collect();
    let mut out = Stratified::default();
    if tables.is_empty() {
        return (out, 0);
    }
    let (mut adn, mut bcn, mut dev, mut var) = (
        Sum::default(),
        Sum::default(),
        Sum::default(),
        Sum::default(),
    );
    let (mut va, mut vmid, mut vb) = (Sum::default(), Sum::default(), Sum::default());
    for t in &tables {
        let n = t.n();
        let (apb, apc, bpd, cpd) = (t.a + t.b, t.a + t.c, t.b + t.d, t.c + t.d);
        let (ad, bc, apd) = (t.a * t.d, t.b * t.c, t.a + t.d);
        adn.add(ad / n);
        bcn.add(bc / n);
        dev.add(t.a - apb * apc / n);
        var.add(apb * apc * bpd * cpd / (n * n * (n - 1.0)));
        va.add(apd * ad / (n * n));
        vmid.add(apd * bc / (n * n) + (1.0 - apd / n) * ad / n);
        vb.add((1.0 - apd / n) * bc / n);
    }
    let (adn, bcn) = (adn.value(), bcn.value());
    let r = adn / bcn;
    out.odds_ratio = finite(r);
    let lor_var =
        (va.value() / (adn * adn) + vmid.value() / (adn * bcn) + vb.value() / (bcn * bcn)) / 2.0;
    let f = -Normal::standard().inverse_cdf(alpha / 2.0);
    let (lo, hi) = (r.ln() - f * lor_var.sqrt(), r.ln() + f * lor_var.sqrt());
    out.or_ci = finite(lo.exp()).zip(finite(hi.exp()));
    let stat = dev.value().abs().powi(2) / var.value();
    out.cmh = finite(stat).map(|s| (s, chi2_sf(s, 1)));
    out.breslow_day = breslow_day(&tables, r);
    (out, tables.len() as u64)
}

/// Sum over tables of (a - E[a])^2 / Var[a] under the common odds ratio r, E[a] the root of
/// the quadratic that statsmodels picks (its linear limit when r is exactly 1).
fn breslow_day(tables: &[Two], r: f64) -> Option<(f64, f64)> {
    let mut stat = Sum::default();
    let mut k = 0u64;
    for t in tables {
        let (apb, apc, dma) = (t.a + t.b, t.a + t.c, t.d - t.a);
        let qa = 1.0 - r;
        let qb = r * (apb + apc) + dma;
        let qc = -r * apb * apc;
        let e = if qa == 0.0 {
            -qc / qb
        } else {
            (-qb + (qb * qb - 4.0 * qa * qc).sqrt()) / (2.0 * qa)
        };
        let v = 1.0 / (1.0 / e + 1.0 / (apc - e) + 1.0 / (apb - e) + 1.0 / (dma + e));
        stat.add((t.a - e).powi(2) / v);
        k += 1;
    }
    let s = finite(stat.value())?;
    (k >= 2).then(|| (s, chi2_sf(s, k - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sum_ignores_order() {
        let terms: Vec<f64> = (1..5000)
            .map(|i| 1.0 / i as f64 + (i as f64).sqrt())
            .collect();
        let (mut a, mut b) = (ExactSum::default(), ExactSum::default());
        terms.iter().for_each(|&t| a.add(t));
        terms.iter().rev().for_each(|&t| b.add(t));
        assert_eq!(a.value().to_bits(), b.value().to_bits());
        let naive: f64 = terms.iter().sum();
        assert!((a.value() - naive).abs() < 1e-9 * naive);
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn paper_threshold() {
        // Huang et al. 2025: 3,307 tests at alpha 0.05 gives 4.33
        let z = bonferroni_threshold(0.05, 3307).unwrap();
        assert!((z - 4.3269).abs() < 5e-5, "{z}");
        assert!(close(
            bonferroni_threshold(0.05, 1).unwrap(),
            1.959963984540054,
            1e-12
        ));
        assert_eq!(bonferroni_threshold(0.05, 0), None);
    }

    #[test]
    fn chi2_tail_matches_known_values() {
        // scipy.stats.chi2.sf(3.841458820694124, 1) == 0.05
        assert!(close(chi2_sf(3.841458820694124, 1), 0.05, 1e-10));
        // scipy.stats.chi2.sf(10, 4) == 0.04042768199451279
        assert!(close(chi2_sf(10.0, 4), 0.04042768199451279, 1e-10));
    }

    #[test]
    fn residual_of_a_2x2() {
        // table [[10, 20], [30, 40]]: R statsmodels Table(..., shift_zeros=False).standardized_resids[0, 0]
        let r = adjusted_residual(10.0, 30.0, 40.0, 100.0);
        assert!(close(r, -0.8908708063747481, 1e-12), "{r}");
        assert!(adjusted_residual(5.0, 5.0, 9.0, 5.0).is_nan());
    }

    #[test]
    fn cv_and_z() {
        assert!(coefficient_of_variation(&[0.2, 0.2, 0.2]).unwrap() < 1e-12);
        let cv = coefficient_of_variation(&[0.1, 0.3]).unwrap();
        assert!(close(cv, 0.5, 1e-12));
        assert_eq!(coefficient_of_variation(&[0.4]), None);
        // statsmodels proportions_ztest([30, 20], [100, 100]):
        // z 1.6329931618554518, p 0.10247043485974941
        let (z, p) = two_proportion_z(30, 100, 20, 100).unwrap();
        assert!(close(z, 1.6329931618554518, 1e-12));
        assert!(close(p, 0.10247043485974938, 1e-9));
    }

    #[test]
    fn compensated_sum() {
        let mut s = Sum::default();
        s.add(1e16);
        s.add(1.0);
        s.add(-1e16);
        assert_eq!(s.value(), 1.0);
    }
}

#[cfg(test)]
mod stratified_tests {
    use super::*;

    fn two(a: f64, b: f64, c: f64, d: f64) -> Two {
        Two { a, b, c, d }
    }

    #[test]
    fn one_stratum_reduces_to_the_two_by_two_figures() {
        let t = two(12.0, 5.0, 7.0, 19.0);
        let (s, k) = stratified(&[t], 0.05);
        assert_eq!(k, 1);
        let or = s.odds_ratio.unwrap();
        assert!((or - 12.0 * 19.0 / (5.0 * 7.0)).abs() < 1e-12);
        // CMH of one table is Pearson's chi-square times (n - 1) / n
        let n = 43.0;
        let pearson = n * (12.0f64 * 19.0 - 5.0 * 7.0).powi(2) / (17.0 * 26.0 * 19.0 * 24.0);
        assert!((s.cmh.unwrap().0 - pearson * (n - 1.0) / n).abs() < 1e-9);
        // Robins-Breslow-Greenland of one table is Woolf's: var log OR = 1/a + 1/b + 1/c + 1/d
        let se = (1.0 / 12.0 + 1.0 / 5.0 + 1.0 / 7.0 + 1.0 / 19.0f64).sqrt();
        let (lo, hi) = s.or_ci.unwrap();
        assert!((lo.ln() - (or.ln() - 1.959963984540054 * se)).abs() < 1e-9);
        assert!((hi.ln() - (or.ln() + 1.959963984540054 * se)).abs() < 1e-9);
        assert_eq!(s.breslow_day, None);
    }

    #[test]
    fn tables_without_information_are_left_out_and_equal_tables_are_homogeneous() {
        let t = two(10.0, 20.0, 5.0, 30.0);
        let (s, k) = stratified(
            &[t, two(0.0, 0.0, 4.0, 9.0), t, two(0.0, 7.0, 0.0, 3.0)],
            0.05,
        );
        assert_eq!(k, 2);
        let (bd, p) = s.breslow_day.unwrap();
        assert!(bd.abs() < 1e-9 && (p - 1.0).abs() < 1e-9);
        assert_eq!(
            stratified(&[two(0.0, 0.0, 1.0, 1.0)], 0.05),
            (Stratified::default(), 0)
        );
    }
}

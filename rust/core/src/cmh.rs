//! Stratified 2x2 tables: the Mantel-Haenszel common odds ratio with its Robins-Breslow-Greenland
//! interval, the Cochran-Mantel-Haenszel test of a common odds ratio of one, and the Breslow-Day
//! test that the odds ratios are homogeneous across strata. The definitions are statsmodels'
//! `StratifiedTable` (no continuity correction, Breslow-Day without Tarone's adjustment), so
//! that its figures are an independent check of these.

use statrs::distribution::{ContinuousCDF, Normal};

use crate::stats::chi2_sf;

/// One stratum's 2x2 table: rows are the two groups (model A, model B), columns whether the
/// feature is present: `[[a, b], [c, d]]`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stratum {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub d: f64,
}

impl Stratum {
    pub fn new(a: u64, b: u64, c: u64, d: u64) -> Self {
        Stratum {
            a: a as f64,
            b: b as f64,
            c: c as f64,
            d: d as f64,
        }
    }

    fn n(&self) -> f64 {
        self.a + self.b + self.c + self.d
    }

    /// A stratum with an empty row or column carries no information about the odds ratio: it
    /// adds nothing to either Mantel-Haenszel sum or to the CMH statistic, and would make the
    /// Breslow-Day variance 0/0.
    fn informative(&self) -> bool {
        self.a + self.b > 0.0
            && self.c + self.d > 0.0
            && self.a + self.c > 0.0
            && self.b + self.d > 0.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cmh {
    /// Strata that entered the figures (those with no empty margin).
    pub n_strata: usize,
    pub odds_ratio: Option<f64>,
    /// 95% interval of the common odds ratio (Robins, Breslow and Greenland's variance).
    pub ci: Option<(f64, f64)>,
    pub statistic: Option<f64>,
    pub p_value: Option<f64>,
    pub breslow_day: Option<f64>,
    pub breslow_day_p: Option<f64>,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// The Mantel-Haenszel figures of a set of strata; `level` is the interval's coverage (0.95).
pub fn cmh(strata: &[Stratum], level: f64) -> Cmh {
    let s: Vec<Stratum> = strata
        .iter()
        .copied()
        .filter(Stratum::informative)
        .collect();
    let mut out = Cmh {
        n_strata: s.len(),
        odds_ratio: None,
        ci: None,
        statistic: None,
        p_value: None,
        breslow_day: None,
        breslow_day_p: None,
    };
    if s.is_empty() {
        return out;
    }
    let (mut adn, mut bcn) = (0.0, 0.0);
    for t in &s {
        adn += t.a * t.d / t.n();
        bcn += t.b * t.c / t.n();
    }
    let or = adn / bcn;
    out.odds_ratio = finite(or);

    // Robins, Breslow and Greenland (1986): the variance of the log of the pooled ratio
    let (mut v1, mut v2, mut v3) = (0.0, 0.0, 0.0);
    for t in &s {
        let n = t.n();
        let (apd, bpc) = (t.a + t.d, t.b + t.c);
        let (ad, bc) = (t.a * t.d / n, t.b * t.c / n);
        v1 += apd / n * ad;
        v2 += apd / n * bc + bpc / n * ad;
        v3 += bpc / n * bc;
    }
    let var = (v1 / (adn * adn) + v2 / (adn * bcn) + v3 / (bcn * bcn)) / 2.0;
    if let (Some(or), Some(se)) = (out.odds_ratio, finite(var.sqrt())) {
        if or > 0.0 {
            let z = -Normal::standard().inverse_cdf((1.0 - level) / 2.0);
            let lor = or.ln();
            out.ci = Some(((lor - z * se).exp(), (lor + z * se).exp()));
        }
    }

    // Cochran-Mantel-Haenszel, no continuity correction
    let (mut dev, mut den) = (0.0, 0.0);
    for t in &s {
        let n = t.n();
        let (apb, apc, bpd, cpd) = (t.a + t.b, t.a + t.c, t.b + t.d, t.c + t.d);
        dev += t.a - apb * apc / n;
        if n > 1.0 {
            den += apb * apc * bpd * cpd / (n * n * (n - 1.0));
        }
    }
    if den > 0.0 {
        let stat = dev * dev / den;
        out.statistic = finite(stat);
        out.p_value = out.statistic.map(|x| chi2_sf(x, 1));
    }

    // Breslow-Day: each stratum's first cell against its expectation under the common ratio
    if let Some(r) = out.odds_ratio.filter(|&r| r > 0.0) {
        if s.len() >= 2 {
            let mut stat = 0.0;
            for t in &s {
                let (apb, apc, dma) = (t.a + t.b, t.a + t.c, t.d - t.a);
                let qa = 1.0 - r;
                let qb = r * (apb + apc) + dma;
                let qc = -r * apb * apc;
                // the root (-qb + sqrt(qb^2 - 4 qa qc)) / (2 qa), written so that it holds
                // (and keeps its digits) as qa goes to zero, at a ratio of one
                let e = -2.0 * qc / (qb + (qb * qb - 4.0 * qa * qc).sqrt());
                let v = 1.0 / (1.0 / e + 1.0 / (apc - e) + 1.0 / (apb - e) + 1.0 / (dma + e));
                stat += (t.a - e) * (t.a - e) / v;
            }
            if let Some(x) = finite(stat) {
                out.breslow_day = Some(x);
                out.breslow_day_p = Some(chi2_sf(x, (s.len() - 1) as u64));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn one_stratum_is_the_plain_odds_ratio() {
        let r = cmh(&[Stratum::new(10, 20, 30, 40)], 0.95);
        assert!(close(r.odds_ratio.unwrap(), 10.0 * 40.0 / (20.0 * 30.0)));
        // a single stratum: Woolf's interval, sqrt(1/a + 1/b + 1/c + 1/d) on the log scale
        let se: f64 = (1.0f64 / 10.0 + 1.0 / 20.0 + 1.0 / 30.0 + 1.0 / 40.0).sqrt();
        let (lo, _) = r.ci.unwrap();
        assert!(close(
            lo,
            (r.odds_ratio.unwrap().ln() - 1.959963984540054 * se).exp()
        ));
        assert_eq!(r.breslow_day, None, "homogeneity needs two strata");
    }

    #[test]
    fn uninformative_strata_change_nothing() {
        let base = [Stratum::new(10, 20, 30, 40), Stratum::new(5, 9, 7, 30)];
        let mut more = base.to_vec();
        more.push(Stratum::new(0, 12, 0, 8));
        more.push(Stratum::new(0, 0, 4, 5));
        assert_eq!(
            cmh(&base, 0.95),
            Cmh {
                n_strata: 2,
                ..cmh(&more, 0.95)
            }
        );
    }

    #[test]
    fn a_ratio_of_one_keeps_breslow_day_finite() {
        let r = cmh(
            &[Stratum::new(10, 10, 10, 10), Stratum::new(5, 5, 5, 5)],
            0.95,
        );
        assert!(close(r.odds_ratio.unwrap(), 1.0));
        assert!(close(r.breslow_day.unwrap(), 0.0));
        assert!(close(r.statistic.unwrap(), 0.0));
    }
}

//! From a merged state to the published figures. Statistics are computed on the full counts;
//! the privacy rule is applied only to what is emitted.
//!
//! This module assembles the tables of `frequencies`, `cooccurrence` and `models`, which share
//! `publish` (the privacy rule, the Arrow columns) and `stats` (the tests on plain numbers).

use rayon::prelude::*;
use serde_json::{json, Value};

use arrow_array::RecordBatch;

pub mod cooccurrence;
pub mod frequencies;
pub mod models;
pub mod pairs;
pub mod publish;
pub mod stats;
pub mod within;

use cooccurrence::{cooccurrence, invariance, published_tables, table_tests, TableResult};
use frequencies::{frequencies, mirroring, response_types};
use models::{model_comparison, models};
use pairs::{explicit_by_response_type, explicit_values, value_pairs};
use publish::{pct, string_ranks, Privacy};
use within::within_tasks;

use crate::engine::{Engine, EngineConfig, Plan, State, TableCells, AI, EXPLICIT, HUMAN, MODEL};
use crate::error::Result;

/// Everything `result()` returns: a JSON summary and named Arrow tables.
pub struct Analysis {
    pub summary: Value,
    /// (name, table); co-occurrence tables are named `tables/<A>__<B>`.
    pub tables: Vec<(String, RecordBatch)>,
}

impl Analysis {
    pub fn build(
        config: &EngineConfig,
        plan: &Plan,
        st: &State,
        cells: &TableCells,
    ) -> Result<Analysis> {
        let pv = Privacy {
            min_conversations: config.min_conversations,
            min_users: config.min_users,
        };
        let n = st.n_conversations;
        let mut tables = Vec::new();
        let mut suppressed = serde_json::Map::new();

        for (name, col) in [
            ("ai_values", AI),
            ("human_values", HUMAN),
            ("ai_values_explicit", EXPLICIT),
        ] {
            let (b, s) = frequencies(st, col, n, pv);
            suppressed.insert(name.into(), json!(s));
            tables.push((name.to_string(), b));
        }

        let (b, s) = response_types(st, pv);
        suppressed.insert("response_types".into(), json!(s));
        tables.push(("response_types".into(), b));

        let (b, s) = mirroring(st, pv);
        suppressed.insert("mirroring".into(), json!(s));
        tables.push(("mirroring".into(), b));

        let published = published_tables(plan, cells);
        // The tables, invariance and model comparison read disjoint data: all on the pool.
        let rank = string_ranks(st);
        let ((results, inv), (cmp, within)) = rayon::join(
            || {
                rayon::join(
                    || {
                        published
                            .par_iter()
                            .map(|&t| cooccurrence(config, plan, st, cells, t, pv, &rank))
                            .collect::<Result<Vec<TableResult>>>()
                    },
                    || invariance(plan, st, cells, &published, pv),
                )
            },
            || {
                rayon::join(
                    || model_comparison(plan, config.alpha, st, cells, pv),
                    || within_tasks(plan, config.alpha, st, cells, pv),
                )
            },
        );
        let (results, inv, cmp, within) = (results?, inv?, cmp?, within?);
        let mut suppressed_cells = serde_json::Map::new();
        for r in &results {
            suppressed_cells.insert(r.name.clone(), json!(r.suppressed_cells));
        }
        suppressed.insert("table_cells".into(), Value::Object(suppressed_cells));

        tables.push(("invariance".into(), inv));
        let (b, s) = models(st, pv);
        suppressed.insert("models".into(), json!(s));
        tables.push(("models".into(), b));
        tables.push(("model_comparison".into(), cmp));
        tables.push(("table_tests".into(), table_tests(&results)));
        let mut within_info = Value::Null;
        if let Some((b, info)) = within {
            tables.push(("model_comparison_within_tasks".into(), b));
            within_info = info;
        }
        let pairs_table = plan
            .tables
            .iter()
            .position(|&ab| ab == (HUMAN, AI))
            .map(|t| plan.table_name(t))
            .and_then(|name| results.iter().find(|r| r.name == name));
        tables.push(("value_pairs".into(), value_pairs(pairs_table, pv)));
        tables.push((
            "explicit_by_response_type".into(),
            explicit_by_response_type(st, pv),
        ));
        tables.push(("explicit_values".into(), explicit_values(st, pv)));
        let table_names: Vec<String> = results.iter().map(|r| r.name.clone()).collect();
        for r in results {
            tables.push((format!("tables/{}", r.name), r.batch));
        }

        let mean = |c: usize| (n > 0).then(|| st.sum_len[c] as f64 / n as f64);
        let rejected: u64 = st.rejects.values().sum();
        let summary = json!({
            "n_rows": st.n_rows,
            "n_conversations": n,
            "n_not_subjective": st.n_not_subjective,
            "n_rejected": rejected,
            "rejected_by_reason": st.rejects,
            "n_with_ai_values": st.with_any[AI],
            "pct_with_ai_values": pct(st.with_any[AI], n),
            "n_with_human_values": st.with_any[HUMAN],
            "pct_with_human_values": pct(st.with_any[HUMAN], n),
            "mean_ai_values": mean(AI),
            "mean_human_values": mean(HUMAN),
            "mean_ai_values_explicit": mean(EXPLICIT),
            "n_distinct": {
                "ai_values": st.keys[AI].len(),
                "human_values": st.keys[HUMAN].len(),
                "ai_values_explicit": st.keys[EXPLICIT].len(),
                "models": st.keys[MODEL].len(),
            },
            "thresholds": {
                "min_conversations": config.min_conversations,
                "min_users": config.min_users,
                "alpha": config.alpha,
                "n_tests": config.n_tests,
            },
            "suppressed": suppressed,
            "tables": table_names,
            "model_comparison_within_tasks": within_info,
        });
        Ok(Analysis { summary, tables })
    }
}

impl Engine {
    /// The published figures, with suppression applied.
    pub fn analysis(&self) -> Result<Analysis> {
        Analysis::build(self.config(), self.plan(), self.state(), &self.cells())
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::{Engine, EngineConfig};
    use crate::testing::{all_text, batch, conversation, floats, strings, table, Row};

    fn engine(min_conversations: u64, min_users: u32, tables: Option<&[(&str, &str)]>) -> Engine {
        Engine::new(EngineConfig {
            min_conversations,
            min_users,
            tables: tables.map(|t| {
                t.iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect()
            }),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn chi_square_of_a_two_by_two_table_matches_the_hand_computation() {
        // task x model: [[10, 20], [30, 15]]
        let mut rows = Vec::new();
        for (task, model, n) in [
            ("a", "m1", 10),
            ("a", "m2", 20),
            ("b", "m1", 30),
            ("b", "m2", 15),
        ] {
            for _ in 0..n {
                rows.push(Row {
                    task: Some(task),
                    ..conversation(rows.len(), model, &[], "no values")
                });
            }
        }
        let mut e = engine(1, 1, Some(&[("task", "model")]));
        e.update(&batch(&rows)).unwrap();
        let a = e.analysis().unwrap();
        let tests = table(&a, "table_tests");
        // N (ad - bc)^2 / ((a+b)(c+d)(a+c)(b+d)) = 75 * 450^2 / (30 * 45 * 40 * 35)
        let chi2 = 75.0 * 450.0f64.powi(2) / (30.0 * 45.0 * 40.0 * 35.0);
        assert!((floats(tests, "chi2")[0].unwrap() - chi2).abs() < 1e-9);
        // one degree of freedom: p = erfc(sqrt(chi2 / 2)), 0.0045863920802535 by hand
        assert!((floats(tests, "p_value")[0].unwrap() - 0.004_586_392_080_253_5).abs() < 1e-12);
        // in a 2x2 table every adjusted residual is +-sqrt(chi2); (a, m1): 10 seen, 16 expected
        let cells = table(&a, "tables/task__model");
        assert_eq!(strings(cells, "row"), ["a", "a", "b", "b"]);
        assert_eq!(strings(cells, "col"), ["m1", "m2", "m1", "m2"]);
        let res = floats(cells, "adjusted_residual");
        for (r, sign) in res.iter().zip([-1.0, 1.0, 1.0, -1.0]) {
            assert!((r.unwrap() - sign * chi2.sqrt()).abs() < 1e-9, "{res:?}");
        }
        assert!((floats(cells, "expected")[0].unwrap() - 16.0).abs() < 1e-12);
    }

    #[test]
    fn a_suppressed_value_or_cell_never_appears_in_any_table() {
        let mut rows = Vec::new();
        for i in 0..12 {
            rows.push(Row {
                user_id: Some(["u1", "u2", "u3"][i % 3]),
                task: Some(if i < 11 {
                    "common task"
                } else {
                    "rare-marker-task"
                }),
                human_values: &["honesty"],
                ..conversation(i, "m1", &["honesty"], "strong support")
            });
        }
        // one conversation holds the rare value, the rare model and the rare response type
        rows.push(Row {
            task: Some("common task"),
            ..conversation(
                12,
                "rare-marker-model",
                &["rare-marker-value"],
                "mild resistance",
            )
        });
        let mut e = engine(3, 2, None);
        e.update(&batch(&rows)).unwrap();
        let a = e.analysis().unwrap();
        let text = all_text(&a);
        assert!(
            !text.contains("rare-marker"),
            "a suppressed string was published"
        );
        // the frequent ones are there: the check above can see strings
        assert!(text.contains("honesty") && text.contains("common task"));
        let cells = table(&a, "tables/ai_values__task");
        assert_eq!(strings(cells, "row"), ["honesty"]);
        assert_eq!(strings(cells, "col"), ["common task"]);
        let suppressed = &a.summary["suppressed"];
        // honesty x rare task and rare value x common task
        assert_eq!(suppressed["table_cells"]["ai_values__task"], 2);
        assert_eq!(suppressed["ai_values"], 1);
        assert_eq!(suppressed["models"], 1);
        assert_eq!(suppressed["response_types"], 1);
    }

    #[test]
    fn model_differences_are_significant_under_the_bonferroni_threshold() {
        // per model 40 conversations: (strong support, mild support, no values)
        let mut rows = Vec::new();
        for (model, counts) in [("m1", [30, 6, 4]), ("m2", [10, 5, 25])] {
            for (rt, n) in ["strong support", "mild support", "no values"]
                .into_iter()
                .zip(counts)
            {
                for _ in 0..n {
                    rows.push(conversation(rows.len(), model, &[], rt));
                }
            }
        }
        let mut e = engine(3, 2, None);
        e.update(&batch(&rows)).unwrap();
        let a = e.analysis().unwrap();
        let cmp = table(&a, "model_comparison");
        // most frequent first: strong support (40), no values (29), mild support (11)
        assert_eq!(
            strings(cmp, "value"),
            ["strong support", "no values", "mild support"]
        );
        // pooled two-proportion z by hand: (p1 - p2) / sqrt(p (1 - p) (1/40 + 1/40))
        let z: Vec<f64> = floats(cmp, "z").into_iter().map(Option::unwrap).collect();
        for (got, want) in z
            .iter()
            .zip([4.47213595499958, -4.884051123325139, 0.32465650237178256])
        {
            assert!((got - want).abs() < 1e-9, "{z:?}");
        }
        // three comparisons: z* = Phi^-1(1 - 0.05 / (2 * 3)) = 2.3939797998185104
        for th in floats(cmp, "threshold") {
            assert!((th.unwrap() - 2.3939797998185104).abs() < 1e-9);
        }
        let sig = cmp
            .column_by_name("significant")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::BooleanArray>()
            .unwrap()
            .iter()
            .collect::<Vec<_>>();
        assert_eq!(sig, [Some(true), Some(true), Some(false)]);
    }
}

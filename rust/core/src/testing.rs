//! Small hand-made feature batches for the unit tests: each row spelled out, so that a test's
//! expected counts can be read off the rows.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};

use crate::report::Analysis;

/// One conversation's features (None: a null cell).
#[derive(Clone, Copy, Default)]
pub struct Row<'a> {
    pub conversation_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub model: Option<&'a str>,
    pub task: Option<&'a str>,
    pub ai_values: &'a [&'a str],
    pub human_values: &'a [&'a str],
    pub response_type: Option<&'a str>,
}

fn list(rows: impl Iterator<Item = &'static [&'static str]>) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for r in rows {
        for v in r {
            b.values().append_value(v);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

fn text(v: Vec<Option<&str>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

/// The rows as a batch with every column the engine reads.
pub fn batch(rows: &[Row<'static>]) -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "conversation_id",
            text(rows.iter().map(|r| r.conversation_id).collect()),
        ),
        ("user_id", text(rows.iter().map(|r| r.user_id).collect())),
        ("model", text(rows.iter().map(|r| r.model).collect())),
        ("task", text(rows.iter().map(|r| r.task).collect())),
        ("ai_values", list(rows.iter().map(|r| r.ai_values))),
        ("human_values", list(rows.iter().map(|r| r.human_values))),
        (
            "response_type",
            text(rows.iter().map(|r| r.response_type).collect()),
        ),
    ])
    .expect("columns of equal length")
}

/// A conversation of its own user (ids made from `i`), with the given features.
pub fn conversation(
    i: usize,
    model: &'static str,
    ai_values: &'static [&'static str],
    response_type: &'static str,
) -> Row<'static> {
    Row {
        conversation_id: Some(leak(format!("c{i}"))),
        user_id: Some(leak(format!("u{i}"))),
        model: Some(model),
        ai_values,
        response_type: Some(response_type),
        ..Row::default()
    }
}

/// Test strings live for the whole test run.
pub fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The named table of an analysis.
pub fn table<'a>(a: &'a Analysis, name: &str) -> &'a RecordBatch {
    &a.tables
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no table {name}"))
        .1
}

/// Column `name` of a batch as strings.
pub fn strings(b: &RecordBatch, name: &str) -> Vec<String> {
    let c = b.column_by_name(name).expect("column");
    let c = c
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("a string column");
    (0..c.len()).map(|i| c.value(i).to_string()).collect()
}

/// Column `name` of a batch as f64 (None where null).
pub fn floats(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    let c = b.column_by_name(name).expect("column");
    let c = c
        .as_any()
        .downcast_ref::<arrow_array::Float64Array>()
        .expect("a float column");
    (0..c.len())
        .map(|i| c.is_valid(i).then(|| c.value(i)))
        .collect()
}

/// Every string anywhere in an analysis: the summary's JSON and every cell of every table.
pub fn all_text(a: &Analysis) -> String {
    let mut out = a.summary.to_string();
    for (name, b) in &a.tables {
        out += name;
        for c in b.columns() {
            out += &format!("{c:?}");
        }
    }
    out
}

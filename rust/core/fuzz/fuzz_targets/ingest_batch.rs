//! Engine::update on arbitrary record batches: every column in any encoding or a wrong type,
//! nulls anywhere, empty and huge strings, sliced (offset) arrays. Errors are fine; panics are not.
#![no_main]

use std::sync::Arc;

use arbitrary::Arbitrary;
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Int32Builder, LargeListBuilder, LargeStringBuilder, ListBuilder,
    StringBuilder, StringDictionaryBuilder, StringViewBuilder,
};
use arrow_array::types::Int8Type;
use arrow_array::{ArrayRef, RecordBatch};
use libfuzzer_sys::fuzz_target;
use valuescope_core::{Engine, EngineConfig};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Enc {
    Plain,
    Large,
    View,
    Dict,
    Binary,
    Int,
    Missing,
}

#[derive(Arbitrary, Debug)]
struct Row {
    conversation_id: Option<String>,
    user_id: Option<String>,
    subjective: Option<bool>,
    model: Option<String>,
    task: Option<String>,
    response_type: Option<String>,
    rt_pick: u8,
    ai_values: Option<Vec<Option<String>>>,
    human_values: Option<Vec<Option<String>>>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    rows: Vec<Row>,
    scalar_enc: [Enc; 5],
    list_enc: [(Enc, bool); 2],
    slice: (u8, u8),
    min_users: u8,
    custom_table: bool,
}

const TYPES: [&str; 7] = [
    "strong support",
    "Mild Support",
    "neutral acknowledgment",
    "reframing",
    "mild resistance",
    " strong  resistance ",
    "no values",
];

fn scalar(enc: Enc, vals: &[Option<&str>]) -> Option<ArrayRef> {
    Some(match enc {
        Enc::Plain => Arc::new(vals.iter().copied().collect::<arrow_array::StringArray>()),
        Enc::Large => {
            let mut b = LargeStringBuilder::new();
            vals.iter().for_each(|v| b.append_option(*v));
            Arc::new(b.finish())
        }
        Enc::View => {
            let mut b = StringViewBuilder::new();
            vals.iter().for_each(|v| b.append_option(*v));
            Arc::new(b.finish())
        }
        Enc::Dict => {
            let mut b = StringDictionaryBuilder::<Int8Type>::new();
            for v in vals {
                // Int8 keys overflow past 128 distinct strings: then a null
                match v {
                    Some(s) if b.append(s).is_ok() => {}
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Enc::Binary => {
            let mut b = BinaryBuilder::new();
            vals.iter()
                .for_each(|v| b.append_option(v.map(str::as_bytes)));
            Arc::new(b.finish())
        }
        Enc::Int => {
            let mut b = Int32Builder::new();
            vals.iter()
                .for_each(|v| b.append_option(v.map(|s| s.len() as i32)));
            Arc::new(b.finish())
        }
        Enc::Missing => return None,
    })
}

fn list(enc: Enc, large: bool, vals: &[Option<Vec<Option<String>>>]) -> Option<ArrayRef> {
    macro_rules! fill {
        ($b:expr) => {{
            let mut b = $b;
            for row in vals {
                match row {
                    None => b.append(false),
                    Some(items) => {
                        for it in items {
                            b.values().append_option(it.as_deref());
                        }
                        b.append(true);
                    }
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Some(match (enc, large) {
        (Enc::Missing, _) => return None,
        (Enc::Int | Enc::Binary, _) => {
            let flat: Vec<Option<&str>> = vals
                .iter()
                .map(|r| {
                    r.as_ref()
                        .and_then(|v| v.first())
                        .and_then(|s| s.as_deref())
                })
                .collect();
            return scalar(enc, &flat);
        }
        (Enc::Large | Enc::View, true) => fill!(LargeListBuilder::new(LargeStringBuilder::new())),
        (Enc::View, false) => fill!(ListBuilder::new(StringViewBuilder::new())),
        (_, false) => fill!(ListBuilder::new(StringBuilder::new())),
        (_, true) => fill!(LargeListBuilder::new(StringBuilder::new())),
    })
}

fuzz_target!(|input: Input| {
    let rows = &input.rows;
    let rt: Vec<Option<String>> = rows
        .iter()
        .map(|r| match r.rt_pick % 3 {
            0 => r.response_type.clone(),
            _ => Some(TYPES[r.rt_pick as usize % TYPES.len()].to_string()),
        })
        .collect();
    let s = |f: &dyn Fn(&Row) -> Option<String>| -> Vec<Option<String>> {
        rows.iter().map(f).collect()
    };
    let cols: [(&str, Vec<Option<String>>); 5] = [
        ("conversation_id", s(&|r| r.conversation_id.clone())),
        ("user_id", s(&|r| r.user_id.clone())),
        ("model", s(&|r| r.model.clone())),
        ("task", s(&|r| r.task.clone())),
        ("response_type", rt),
    ];
    let mut fields: Vec<(&str, ArrayRef)> = Vec::new();
    for ((name, vals), enc) in cols.iter().zip(input.scalar_enc) {
        let refs: Vec<Option<&str>> = vals.iter().map(|v| v.as_deref()).collect();
        if let Some(a) = scalar(enc, &refs) {
            fields.push((name, a));
        }
    }
    let mut subj = BooleanBuilder::new();
    rows.iter().for_each(|r| subj.append_option(r.subjective));
    fields.push(("subjective", Arc::new(subj.finish())));
    let ai: Vec<_> = rows.iter().map(|r| r.ai_values.clone()).collect();
    let human: Vec<_> = rows.iter().map(|r| r.human_values.clone()).collect();
    if let Some(a) = list(input.list_enc[0].0, input.list_enc[0].1, &ai) {
        fields.push(("ai_values", a));
    }
    if let Some(a) = list(input.list_enc[1].0, input.list_enc[1].1, &human) {
        fields.push(("human_values", a));
    }
    let Ok(batch) = RecordBatch::try_from_iter(fields) else {
        return;
    };
    let n = batch.num_rows();
    let off = if n == 0 {
        0
    } else {
        input.slice.0 as usize % (n + 1)
    };
    let len = (input.slice.1 as usize).min(n - off);
    let batch = batch.slice(off, len);
    let config = EngineConfig {
        min_conversations: 1,
        min_users: 1 + input.min_users as u32 % 4,
        tables: input
            .custom_table
            .then(|| vec![("task".to_string(), "human_values".to_string())]),
        ..Default::default()
    };
    // A high min_users byte also runs the batch through an engine that spills every table to
    // disk at once: a differential check that spilling never changes a result.
    let spill = input.min_users >= 128;
    let mut engine = Engine::new(config.clone()).expect("valid settings");
    if engine.update(&batch).is_ok() {
        let a = engine.analysis().expect("in-memory analysis");
        if spill {
            let mut disk = Engine::new(config).expect("valid settings");
            disk.set_memory_limit(&std::env::temp_dir(), 1)
                .expect("spill directory");
            disk.update(&batch).expect("the same batch");
            let b = disk.analysis().expect("spilled analysis");
            assert_eq!(a.summary, b.summary);
            assert_eq!(a.tables, b.tables);
        }
        let again =
            Engine::from_bytes(&engine.to_bytes().expect("encodes")).expect("own bytes decode");
        let _ = again.analysis();
    }
});

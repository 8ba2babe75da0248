//! The engine end to end on hand-made batches, without Python.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use valuescope_core::{Engine, EngineConfig, EngineError};

fn list(rows: &[&[&str]]) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for r in rows {
        for v in *r {
            b.values().append_value(v);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

fn strings(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

/// Four conversations from three users; one row with an unknown response type.
fn batch() -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "conversation_id",
            strings(&[Some("a"), Some("b"), Some("c"), Some("d"), Some("e")]),
        ),
        (
            "user_id",
            strings(&[Some("u1"), Some("u1"), Some("u2"), None, Some("u3")]),
        ),
        (
            "model",
            strings(&[Some("m1"), Some("m2"), Some("m1"), Some("m2"), None]),
        ),
        (
            "ai_values",
            list(&[
                &["Honesty", "honesty ", "clarity"],
                &["honesty"],
                &["clarity"],
                &[],
                &["x"],
            ]),
        ),
        (
            "human_values",
            list(&[&["honesty"], &[], &["efficiency"], &["honesty"], &[]]),
        ),
        (
            "response_type",
            strings(&[
                Some("strong support"),
                Some("Mild Support"),
                Some("reframing"),
                Some("strong support"),
                Some("wild enthusiasm"),
            ]),
        ),
    ])
    .unwrap()
}

fn open() -> EngineConfig {
    EngineConfig {
        min_conversations: 1,
        min_users: 1,
        ..Default::default()
    }
}

fn rows(b: &RecordBatch) -> Vec<Vec<String>> {
    let n = b.num_rows();
    (0..n)
        .map(|i| {
            b.columns()
                .iter()
                .map(|c| {
                    if arrow_array::Array::is_valid(c.as_ref(), i) {
                        format!("{:?}", c.slice(i, 1))
                    } else {
                        String::new()
                    }
                })
                .collect()
        })
        .collect()
}

fn table<'a>(a: &'a valuescope_core::Analysis, name: &str) -> &'a RecordBatch {
    &a.tables.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn counts_each_value_once_per_conversation() {
    let mut e = Engine::new(open()).unwrap();
    let rejects = e.update(&batch()).unwrap();
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].row, 4);
    let a = e.analysis().unwrap();
    assert_eq!(a.summary["n_conversations"], 4);
    assert_eq!(a.summary["n_rejected"], 1);
    let ai = table(&a, "ai_values");
    let values = ai.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    let counts = ai
        .column(1)
        .as_any()
        .downcast_ref::<arrow_array::UInt64Array>()
        .unwrap();
    // honesty in a and b (twice in a, counted once); clarity in a and c; "x" was rejected
    assert_eq!(values.value(0), "clarity");
    assert_eq!(counts.value(0), 2);
    assert_eq!(values.value(1), "honesty");
    assert_eq!(counts.value(1), 2);
    assert_eq!(ai.num_rows(), 2);
}

#[test]
fn thresholds_suppress_rows_and_cells() {
    let mut cfg = open();
    cfg.min_users = 2;
    let mut e = Engine::new(cfg).unwrap();
    e.update(&batch()).unwrap();
    let a = e.analysis().unwrap();
    // honesty: conversations a, b, both user u1 -> one user -> suppressed; clarity: u1, u2
    let ai = table(&a, "ai_values");
    assert_eq!(ai.num_rows(), 1);
    assert_eq!(a.summary["suppressed"]["ai_values"], 1);
    // (as a human value, honesty has two users: a's u1 and d, its own user, so it stays)
    for name in [
        "ai_values",
        "tables/ai_values__response_type",
        "tables/ai_values__model",
    ] {
        let dump = format!("{:?}", table(&a, name));
        assert!(!dump.contains("honesty"), "suppressed value leaked: {dump}");
    }
    assert_eq!(table(&a, "human_values").num_rows(), 1);
}

#[test]
fn merge_equals_one_pass_and_bytes_round_trip() {
    let b = batch();
    let mut one = Engine::new(open()).unwrap();
    one.update(&b).unwrap();
    let mut left = Engine::new(open()).unwrap();
    let mut right = Engine::new(open()).unwrap();
    left.update(&b.slice(0, 2)).unwrap();
    right.update(&b.slice(2, 3)).unwrap();
    right.merge(&left).unwrap();
    let back = Engine::from_bytes(&right.to_bytes().unwrap()).unwrap();
    for (name, t) in &one.analysis().unwrap().tables {
        assert_eq!(
            rows(t),
            rows(table(&back.analysis().unwrap(), name)),
            "{name}"
        );
    }
}

#[test]
fn damaged_bytes_are_errors_not_panics() {
    let mut e = Engine::new(open()).unwrap();
    e.update(&batch()).unwrap();
    let good = e.to_bytes().unwrap();
    for cut in 0..good.len() {
        assert!(matches!(
            Engine::from_bytes(&good[..cut]),
            Err(EngineError::Corrupt(_))
        ));
    }
    let mut bad = good.clone();
    bad[20] ^= 0x10;
    assert!(Engine::from_bytes(&bad).is_err());
}

#[test]
fn missing_and_mistyped_columns_name_the_column() {
    let b = batch();
    let no_rt = b.project(&[0, 1, 2, 3, 4]).unwrap();
    let err = Engine::new(open()).unwrap().update(&no_rt).unwrap_err();
    assert_eq!(err, EngineError::MissingColumn("response_type".into()));
    let swapped = RecordBatch::try_from_iter([
        ("conversation_id", b.column(0).clone()),
        ("ai_values", b.column(2).clone()),
        ("human_values", b.column(4).clone()),
        ("response_type", b.column(5).clone()),
    ])
    .unwrap();
    let err = Engine::new(open()).unwrap().update(&swapped).unwrap_err();
    assert!(err.to_string().contains("'ai_values'"), "{err}");
}

#[test]
fn bad_settings_are_refused() {
    for cfg in [
        EngineConfig {
            min_users: 0,
            ..Default::default()
        },
        EngineConfig {
            alpha: 1.5,
            ..Default::default()
        },
        EngineConfig {
            tables: Some(vec![("ai_values".into(), "ai_values".into())]),
            ..Default::default()
        },
    ] {
        assert!(matches!(Engine::new(cfg), Err(EngineError::Config(_))));
    }
}

/// Many rows over a long-tailed vocabulary: enough distinct cells to spill many times.
fn random_batch(seed: u64, n: usize) -> RecordBatch {
    batch_over(seed, n, 1)
}

/// As `random_batch`, with value vocabularies `wide` times larger.
fn batch_over(seed: u64, n: usize, wide: u64) -> RecordBatch {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let rts = ["strong support", "mild support", "reframing", "no values"];
    let (mut ids, mut users, mut models, mut tasks, mut rt) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut ai, mut human): (Vec<Vec<String>>, Vec<Vec<String>>) = (vec![], vec![]);
    for i in 0..n {
        ids.push(format!("c{seed}-{i}"));
        users.push(format!("u{}", next(40)));
        models.push(format!("m{}", next(3)));
        tasks.push(format!("t{}", next(25)));
        rt.push(rts[next(4) as usize].to_string());
        ai.push(
            (0..1 + next(4))
                .map(|_| format!("v{}", next(60 * wide) * next(60 * wide) / (7 * wide)))
                .collect(),
        );
        human.push(
            (0..next(3))
                .map(|_| format!("h{}", next(50 * wide)))
                .collect(),
        );
    }
    let s = |v: &Vec<String>| -> ArrayRef { Arc::new(StringArray::from_iter_values(v)) };
    let l = |v: &Vec<Vec<String>>| {
        let refs: Vec<Vec<&str>> = v
            .iter()
            .map(|r| r.iter().map(|x| x.as_str()).collect())
            .collect();
        let slices: Vec<&[&str]> = refs.iter().map(|r| r.as_slice()).collect();
        list(&slices)
    };
    RecordBatch::try_from_iter([
        ("conversation_id", s(&ids)),
        ("user_id", s(&users)),
        ("model", s(&models)),
        ("task", s(&tasks)),
        ("ai_values", l(&ai)),
        ("human_values", l(&human)),
        ("response_type", s(&rt)),
    ])
    .unwrap()
}

fn low_thresholds() -> EngineConfig {
    EngineConfig {
        min_conversations: 3,
        min_users: 3,
        ..EngineConfig::default()
    }
}

fn same_results(a: &Engine, b: &Engine) {
    let (x, y) = (a.analysis().unwrap(), b.analysis().unwrap());
    assert_eq!(x.summary, y.summary);
    assert_eq!(x.tables.len(), y.tables.len());
    for ((na, ta), (nb, tb)) in x.tables.iter().zip(&y.tables) {
        assert_eq!(na, nb);
        assert_eq!(ta, tb, "{na} differs");
    }
}

#[test]
fn spilled_tables_give_the_same_results() {
    let dir = std::env::temp_dir();
    let mut mem = Engine::new(low_thresholds()).unwrap();
    let mut disk = Engine::new(low_thresholds()).unwrap();
    disk.set_memory_limit(&dir, 100_000).unwrap();
    for seed in 0..8 {
        // the last batch is small: it stays in memory, beside cells of the same tables on disk
        let b = random_batch(seed, if seed == 7 { 200 } else { 1500 });
        mem.update(&b).unwrap();
        disk.update(&b).unwrap();
    }
    let (bytes, spills) = disk.spilled();
    assert!(
        bytes > 0 && spills >= 3,
        "expected several spills, got {spills}"
    );
    // some cells are still in memory, the rest on disk: results must combine both
    assert!(disk.table_bytes() > 0 && disk.table_bytes() <= 100_000);
    assert!(mem.table_bytes() > 4 * disk.table_bytes());
    same_results(&mem, &disk);

    // a spilled engine merges, clones and serialises with all of its cells
    let mut merged = Engine::new(low_thresholds()).unwrap();
    merged.merge(&disk).unwrap();
    same_results(&mem, &merged);
    same_results(&mem, &disk.try_clone().unwrap());
    let back = Engine::from_bytes(&disk.to_bytes().unwrap()).unwrap();
    same_results(&mem, &back);
    assert_eq!(
        back.to_bytes().unwrap().len(),
        mem.to_bytes().unwrap().len()
    );
}

#[test]
fn large_tables_counted_part_by_part_match_one_pass() {
    // One batch counts every cell as it comes (the tables start empty); fed in pieces, a
    // table past the cache-sized threshold has its later batches sorted by part and counted
    // on several threads.
    let all = batch_over(3, 60_000, 8);
    let mut one = Engine::new(low_thresholds()).unwrap();
    one.update(&all).unwrap();
    let mut pieces = Engine::new(low_thresholds()).unwrap();
    for lo in (0..60_000).step_by(15_000) {
        pieces.update(&all.slice(lo, 15_000)).unwrap();
    }
    let biggest = pieces.state().tables.iter().map(|t| t.len()).max().unwrap();
    assert!(
        biggest > 100_000,
        "tables too small to test: {biggest} cells"
    );
    same_results(&one, &pieces);
}

#[test]
fn spill_directory_is_private_and_removed() {
    let base = std::env::temp_dir().join(format!("vs-spill-test-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let mut e = Engine::new(low_thresholds()).unwrap();
    e.set_memory_limit(&base, 1).unwrap();
    e.update(&random_batch(9, 2000)).unwrap();
    let dirs: Vec<_> = std::fs::read_dir(&base).unwrap().collect();
    assert_eq!(dirs.len(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = dirs[0].as_ref().unwrap().metadata().unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    }
    drop(e);
    assert_eq!(std::fs::read_dir(&base).unwrap().count(), 0);
    std::fs::remove_dir(&base).unwrap();
}

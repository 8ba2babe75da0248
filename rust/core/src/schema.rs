//! The feature schema and the facts every stage shares: the columns, which of them hold value
//! lists, the seven response types and the privacy defaults. Everything else (the engine, the
//! report, the synthetic corpus, the Python package through the bindings) reads them from here.

/// What a feature column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// A string per conversation (or null).
    Text,
    /// A boolean per conversation (or null).
    Flag,
    /// A list of value strings per conversation.
    ValueList,
}

impl ColumnKind {
    /// The name the bindings and the docs use: Arrow's spelling of the logical type.
    pub fn arrow_name(self) -> &'static str {
        match self {
            ColumnKind::Text => "string",
            ColumnKind::Flag => "bool",
            ColumnKind::ValueList => "list<string>",
        }
    }
}

/// One column of the feature schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnKind,
    /// A file without this column cannot be analysed.
    pub required: bool,
}

const fn col(name: &'static str, kind: ColumnKind, required: bool) -> Column {
    Column {
        name,
        kind,
        required,
    }
}

/// The feature schema (DESIGN.md), in the order files are written.
pub const FEATURE_COLUMNS: [Column; 10] = [
    col("conversation_id", ColumnKind::Text, true),
    col("user_id", ColumnKind::Text, false),
    col("model", ColumnKind::Text, false),
    col("subjective", ColumnKind::Flag, false),
    col("task", ColumnKind::Text, false),
    col("task_cluster", ColumnKind::Text, false),
    col("ai_values", ColumnKind::ValueList, true),
    col("ai_values_explicit", ColumnKind::ValueList, false),
    col("human_values", ColumnKind::ValueList, true),
    col("response_type", ColumnKind::Text, true),
];

/// Response types, exactly as the design spells them; their order is the output order.
pub const RESPONSE_TYPES: [&str; 7] = [
    "strong support",
    "mild support",
    "neutral acknowledgment",
    "reframing",
    "mild resistance",
    "strong resistance",
    "no values",
];

/// Clio-style thresholds: a published figure describes at least this many conversations...
pub const DEFAULT_MIN_CONVERSATIONS: u64 = 15;
/// ...from at least this many distinct users.
pub const DEFAULT_MIN_USERS: u32 = 10;
/// Family-wise error rate of the Bonferroni-corrected tests.
pub const DEFAULT_ALPHA: f64 = 0.05;

/// The schema's column of this name, if it is one.
pub fn column(name: &str) -> Option<&'static Column> {
    FEATURE_COLUMNS.iter().find(|c| c.name == name)
}

/// Whether a column holds value lists (`Some(true)`), one string per row (`Some(false)`), or is
/// not a schema column that can be crossed in a table (`None`: ids, flags, unknown names).
pub fn expects_list(name: &str) -> Option<bool> {
    match column(name)?.kind {
        ColumnKind::ValueList => Some(true),
        ColumnKind::Text if name != "conversation_id" && name != "user_id" => Some(false),
        _ => None,
    }
}

/// Whether a column holds value lists.
pub fn is_value_list(name: &str) -> bool {
    expects_list(name) == Some(true)
}

/// The columns a file must have.
pub fn required_columns() -> impl Iterator<Item = &'static str> {
    FEATURE_COLUMNS
        .iter()
        .filter(|c| c.required)
        .map(|c| c.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_or_scalar_rule_matches_the_kinds() {
        for c in FEATURE_COLUMNS {
            let want = match (c.kind, c.name) {
                (ColumnKind::ValueList, _) => Some(true),
                (ColumnKind::Text, "conversation_id" | "user_id") => None,
                (ColumnKind::Text, _) => Some(false),
                (ColumnKind::Flag, _) => None,
            };
            assert_eq!(expects_list(c.name), want, "{}", c.name);
        }
        assert_eq!(expects_list("not a column"), None);
        assert!(is_value_list("ai_values_explicit"));
        assert!(!is_value_list("task"));
    }

    #[test]
    fn required_columns_are_the_design_minimum() {
        let req: Vec<_> = required_columns().collect();
        assert_eq!(
            req,
            [
                "conversation_id",
                "ai_values",
                "human_values",
                "response_type"
            ]
        );
    }

    #[test]
    fn names_are_unique() {
        for (i, a) in FEATURE_COLUMNS.iter().enumerate() {
            for b in &FEATURE_COLUMNS[i + 1..] {
                assert_ne!(a.name, b.name);
            }
        }
    }
}

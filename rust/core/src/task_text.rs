//! Free-text tasks for the synthetic corpus, written the way an LLM extractor writes them, from
//! templates with slots: `"{lead} debug a {lang} {artifact} that {fails}"`.
//!
//! The templates are data (`valuescope/data/task_texts.json`, passed in the synth spec); this
//! module compiles them and expands one per conversation. A template holds literal words and
//! `{slot}` references; a slot is a list of phrases (an empty phrase makes it optional), looked up
//! first among the category's own slots, then among the shared ones. The number of distinct
//! texts a category can produce is the sum over its templates of the product of their slot
//! sizes, so a few templates with five or six slots of a dozen phrases give millions: a
//! paper-sized corpus draws nearly one distinct text per conversation.

use std::collections::HashMap;

use rand_chacha::rand_core::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

/// A template that cannot be compiled: the message says which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

fn bad(msg: impl Into<String>) -> TemplateError {
    TemplateError(msg.into())
}

/// Templates of one task category (its name is that of a synth cluster).
#[derive(Debug, Clone, Deserialize)]
pub struct TaskTextCategory {
    pub name: String,
    pub templates: Vec<String>,
    #[serde(default)]
    pub slots: HashMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TaskTextSpec {
    /// Slots every category may use (lead-ins such as "help me", manners such as "step by step").
    #[serde(default)]
    pub shared: HashMap<String, Vec<String>>,
    pub categories: Vec<TaskTextCategory>,
    /// Texts longer than this many words are drawn again (up to a few times), so that long
    /// phrases meeting in one template do not make run-on tasks.
    #[serde(default)]
    pub max_words: Option<usize>,
    /// Texts shorter than this many words are drawn again, likewise.
    #[serde(default)]
    pub min_words: Option<usize>,
}

/// Draws per text before a too-long one is kept anyway.
const MAX_TRIES: usize = 16;

#[derive(Debug, Clone)]
enum Part {
    Lit(String),
    Slot(u32),
}

/// Compiled templates: per category, its templates as parts over one table of slot lists.
#[derive(Debug, Clone)]
pub struct TaskTexts {
    slots: Vec<Vec<String>>,
    templates: Vec<Vec<Vec<Part>>>,
    min_words: usize,
    max_words: usize,
}

fn parse(
    template: &str,
    own: &HashMap<String, Vec<String>>,
    shared: &HashMap<String, Vec<String>>,
    slots: &mut Vec<Vec<String>>,
    slot_ids: &mut HashMap<(bool, String, usize), u32>,
    category: usize,
) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(Part::Lit(rest[..open].to_string()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| bad(format!("unclosed slot in task template {template:?}")))?;
        let name = &rest[open + 1..open + close];
        let (is_own, list) = match own.get(name) {
            Some(l) => (true, l),
            None => (
                false,
                shared.get(name).ok_or_else(|| {
                    bad(format!("task template {template:?}: unknown slot {name:?}"))
                })?,
            ),
        };
        if list.is_empty() {
            return Err(bad(format!("task slot {name:?} has no phrases")));
        }
        // shared slots are one table entry for all categories; own slots one per category
        let key = (is_own, name.to_string(), if is_own { category } else { 0 });
        let id = *slot_ids.entry(key).or_insert_with(|| {
            slots.push(list.clone());
            (slots.len() - 1) as u32
        });
        parts.push(Part::Slot(id));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_string()));
    }
    Ok(parts)
}

impl TaskTexts {
    /// Compiles the templates for the synth clusters `clusters` (every cluster needs a category of
    /// the same name, with at least one template).
    pub fn new(spec: &TaskTextSpec, clusters: &[String]) -> Result<TaskTexts, TemplateError> {
        let mut slots = Vec::new();
        let mut slot_ids = HashMap::new();
        let mut templates = Vec::with_capacity(clusters.len());
        for (ci, cluster) in clusters.iter().enumerate() {
            let cat = spec
                .categories
                .iter()
                .find(|c| &c.name == cluster)
                .ok_or_else(|| bad(format!("no task templates for cluster {cluster:?}")))?;
            if cat.templates.is_empty() {
                return Err(bad(format!("no task templates for cluster {cluster:?}")));
            }
            let parsed = cat
                .templates
                .iter()
                .map(|t| parse(t, &cat.slots, &spec.shared, &mut slots, &mut slot_ids, ci))
                .collect::<Result<Vec<_>, _>>()?;
            templates.push(parsed);
        }
        Ok(TaskTexts {
            slots,
            templates,
            min_words: spec.min_words.unwrap_or(0),
            max_words: spec.max_words.unwrap_or(usize::MAX),
        })
    }

    /// How many texts category `c` can produce (with repeats where phrases coincide).
    pub fn variety(&self, c: usize) -> f64 {
        self.templates[c]
            .iter()
            .map(|parts| {
                parts
                    .iter()
                    .map(|p| match p {
                        Part::Lit(_) => 1.0,
                        Part::Slot(s) => self.slots[*s as usize].len() as f64,
                    })
                    .product::<f64>()
            })
            .sum()
    }

    /// Appends one text of category `c` to `out`: a template, then a phrase per slot, each drawn
    /// uniformly; runs of spaces left by empty phrases are collapsed. A text outside the word
    /// limits is drawn again.
    pub fn write(&self, c: usize, rng: &mut ChaCha8Rng, out: &mut Vec<u8>) {
        let start = out.len();
        for _ in 0..MAX_TRIES {
            out.truncate(start);
            self.write_once(c, rng, out);
            let words = 1 + out[start..].iter().filter(|&&b| b == b' ').count();
            if (self.min_words..=self.max_words).contains(&words) {
                return;
            }
        }
    }

    fn write_once(&self, c: usize, rng: &mut ChaCha8Rng, out: &mut Vec<u8>) {
        let tpls = &self.templates[c];
        let t = &tpls[pick(rng, tpls.len())];
        let start = out.len();
        for part in t {
            let s = match part {
                Part::Lit(s) => s.as_str(),
                Part::Slot(id) => {
                    let list = &self.slots[*id as usize];
                    list[pick(rng, list.len())].as_str()
                }
            };
            for &b in s.as_bytes() {
                let last_space = out.len() == start || out.last() == Some(&b' ');
                if b == b' ' && last_space {
                    continue;
                }
                out.push(b);
            }
        }
        while out.len() > start && out.last() == Some(&b' ') {
            out.pop();
        }
    }
}

#[inline]
fn pick(rng: &mut ChaCha8Rng, n: usize) -> usize {
    ((rng.next_u64() as u128 * n as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn spec() -> TaskTextSpec {
        serde_json::from_value(serde_json::json!({
            "shared": {"lead": ["", "help me"]},
            "categories": [
                {"name": "x", "templates": ["{lead} fix a {thing}", "{thing} review"],
                 "slots": {"thing": ["bug", "build script"]}},
                {"name": "y", "templates": ["{lead} plan a {trip}"],
                 "slots": {"trip": ["hike"]}}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn expands_every_combination_and_no_other_text() {
        let t = TaskTexts::new(&spec(), &["x".into(), "y".into()]).unwrap();
        assert_eq!(t.variety(0), 6.0);
        assert_eq!(t.variety(1), 2.0);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let mut buf = Vec::new();
            t.write(0, &mut rng, &mut buf);
            seen.insert(String::from_utf8(buf).unwrap());
        }
        let want: std::collections::BTreeSet<String> = [
            "fix a bug",
            "fix a build script",
            "help me fix a bug",
            "help me fix a build script",
            "bug review",
            "build script review",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn unknown_slots_and_missing_categories_are_errors() {
        let mut s = spec();
        s.categories[1].templates = vec!["{nope}".into()];
        assert!(TaskTexts::new(&s, &["x".into(), "y".into()]).is_err());
        assert!(TaskTexts::new(&spec(), &["x".into(), "z".into()]).is_err());
    }
}

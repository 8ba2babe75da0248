//! Synthetic corpus of extracted features, in the feature schema, calibrated on published rates.
//!
//! The calibration itself (which values, which rates, which planted associations) is data: a
//! [`SynthSpec`] built by the Python package from the published `values_frequencies.csv`. This
//! module only turns a spec into exact sampling probabilities and draws rows fast.
//!
//! Sampling model, per conversation:
//! 1. model ~ model shares; response type ~ that model's mix; task cluster ~ cluster shares (independent
//!    of the response type); task ~ uniform within the cluster; user ~ a skewed law (few heavy users).
//! 2. AI values = the union of three independent Bernoulli sets: a background set over every value,
//!    one extra set for the task cluster, one for the response type (the planted context
//!    associations). A model may carry its own task-cluster mix (its users' tasks) and multipliers
//!    of some values' inclusion probability (a difference that holds within every context). Each set is drawn as a Poisson number of alias-table draws with rate
//!    `-ln(1 - q)` per value, so a value is present with probability exactly `q` and values are
//!    independent, in O(values per row) instead of O(vocabulary). The background rates are solved
//!    so that each value's overall share of conversations equals its published `pct_convos`.
//! 3. Human values only after the AI values, so they never disturb the AI shares: present with a
//!    rate that gives the target share overall (never under "no values"); a count; triggered values
//!    (a human value that appears when the AI set holds given values, e.g. deception with honesty);
//!    mirroring decided per response type with a probability solved so that the share of mirrored
//!    conversations hits its target exactly (a mirrored conversation takes one human value from the
//!    AI set; a conversation that is not mirrored never draws a human value that is in the AI set).
//!
//! Rows are generated in fixed chunks of [`CHUNK_ROWS`], each with its own ChaCha8 stream derived
//! from the seed and the chunk index, so a row's content depends only on (spec, seed, n, row): not on
//! the batch size nor the number of threads.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, DictionaryArray, Int32Array, ListArray, RecordBatch, RecordBatchReader,
    StringArray,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Deserialize;

use crate::schema::RESPONSE_TYPES;
use crate::task_text::{TaskTextSpec, TaskTexts};
const NO_VALUES: usize = 6;

/// Rows per independently seeded chunk: the unit of determinism and of parallel work.
pub const CHUNK_ROWS: usize = 8192;

/// Planted rates are capped below 1 so that every context keeps some variation.
const MAX_RATE: f64 = 0.95;

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid synth spec: {0}")]
    Spec(String),
}

fn bad(msg: impl Into<String>) -> SynthError {
    SynthError::Spec(msg.into())
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub share: f64,
    /// Weights of the seven response types, in [`RESPONSE_TYPES`] order.
    pub response_types: Vec<f64>,
    /// Weights of the task clusters among this model's users, in `clusters` order; None: the
    /// clusters' shares. A different mix makes the model's raw rates differ where its
    /// within-task rates do not.
    #[serde(default)]
    pub task_clusters: Option<Vec<f64>>,
    /// AI value -> factor on its inclusion probability in this model's conversations, in every
    /// context alike. Ordered, so that the draws do not depend on hashing.
    #[serde(default)]
    pub value_multipliers: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClusterSpec {
    pub name: String,
    pub share: f64,
    /// Task texts of the cluster (at least one).
    pub tasks: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Context {
    TaskCluster,
    ResponseType,
}

/// An AI value concentrated in one context: `share` of its conversations come from this context
/// (over and above its background rate there).
#[derive(Debug, Clone, Deserialize)]
pub struct ContextPlant {
    pub context: Context,
    pub category: String,
    pub value: String,
    pub share: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HumanValueSpec {
    pub name: String,
    /// Relative weight among human values (the target share of conversations works well).
    pub weight: f64,
    /// Response types it may be drawn in; None: all that carry human values.
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
}

/// A human value that joins the conversation with `probability` when the AI set holds one of
/// `ai_values` and the response type is one of `response_types`.
#[derive(Debug, Clone, Deserialize)]
pub struct TriggerSpec {
    pub human_value: String,
    pub ai_values: Vec<String>,
    pub response_types: Vec<String>,
    pub probability: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserSpec {
    /// Mean conversations per user: the number of users is n / this.
    pub conversations_per_user: f64,
    /// User index = floor(n_users * U^skew): 1 is uniform, larger concentrates on a few users.
    pub skew: f64,
    /// Pet values of the heaviest users (user i has pets[i]): frequent, but from one user.
    #[serde(default)]
    pub pets: Vec<String>,
    #[serde(default)]
    pub pet_rate: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SynthSpec {
    pub ai_values: Vec<String>,
    /// Published share of conversations (percent, 0-100), one per AI value.
    pub ai_pct_convos: Vec<f64>,
    pub models: Vec<ModelSpec>,
    pub clusters: Vec<ClusterSpec>,
    #[serde(default)]
    pub plants: Vec<ContextPlant>,
    pub human_values: Vec<HumanValueSpec>,
    /// Target share of conversations with at least one human value (0-1).
    pub human_rate: f64,
    /// P(count = 1), P(count = 2), ... for conversations with human values.
    pub human_counts: Vec<f64>,
    #[serde(default)]
    pub triggers: Vec<TriggerSpec>,
    /// Target mirroring share per response type (0-1), in [`RESPONSE_TYPES`] order.
    pub mirroring: Vec<f64>,
    /// Probability that an expressed AI value is also stated explicitly.
    pub explicit_rate: f64,
    /// The same per response type, in [`RESPONSE_TYPES`] order; None: `explicit_rate` throughout.
    #[serde(default)]
    pub explicit_rates: Option<Vec<f64>>,
    pub users: UserSpec,
    /// Share of rows whose `subjective` verdict is null (unknown); the rest are true.
    #[serde(default)]
    pub subjective_null_rate: f64,
    /// Templates for free-text tasks. With them, `task` holds one generated text per conversation,
    /// `task_cluster` is null (the taxonomy has to find the clusters) and the planted category is
    /// the extra column [`TRUE_TASK_CLUSTER`], the ground truth, for the caller to set aside.
    #[serde(default)]
    pub task_texts: Option<TaskTextSpec>,
}

/// The ground-truth column of a corpus with generated task texts.
pub const TRUE_TASK_CLUSTER: &str = "true_task_cluster";

/// Task texts draw from their own random stream, so turning them on leaves every other column of a
/// row as it was.
const TEXT_STREAM_SALT: u64 = 0x7461_736b_7465_7874;

// ---------------------------------------------------------------------------------------------
// Samplers

#[inline]
fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Walker/Vose alias table: O(1) draws from a fixed discrete law.
#[derive(Debug, Clone)]
struct Alias {
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl Alias {
    fn new(weights: &[f64]) -> Result<Alias, SynthError> {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        if n == 0 || !total.is_finite() || total <= 0.0 || weights.iter().any(|&w| w < 0.0) {
            return Err(bad("weights must be non-negative with a positive sum"));
        }
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut alias = vec![0u32; n];
        let mut prob = vec![1.0; n];
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            prob[s] = scaled[s];
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // leftovers are 1 up to rounding
        Ok(Alias { prob, alias })
    }

    #[inline]
    fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        // One 64-bit draw gives both the slot (high half of u * n) and the coin (the low half,
        // uniform within the slot).
        let n = self.prob.len() as u128;
        let m = rng.next_u64() as u128 * n;
        let i = (m >> 64) as usize;
        let coin = (m as u64 >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        if coin < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

/// Independent Bernoulli inclusion of many items, each with its own small probability, drawn as
/// a Poisson number of alias draws: item i is present with probability exactly `rates[i]`.
#[derive(Debug, Clone)]
struct BernoulliSet {
    ids: Vec<u32>,
    alias: Option<Alias>,
    /// Cumulative Poisson probabilities of the number of draws.
    cdf: Vec<f64>,
    /// Total Poisson rate: P(set is empty) = exp(-lambda).
    lambda: f64,
}

impl BernoulliSet {
    fn new(items: &[(u32, f64)]) -> Result<BernoulliSet, SynthError> {
        let items: Vec<(u32, f64)> = items.iter().copied().filter(|&(_, r)| r > 0.0).collect();
        let mus: Vec<f64> = items
            .iter()
            .map(|&(_, r)| -(1.0 - r.min(MAX_RATE)).ln())
            .collect();
        let lambda: f64 = mus.iter().sum();
        if items.is_empty() {
            return Ok(BernoulliSet {
                ids: vec![],
                alias: None,
                cdf: vec![1.0],
                lambda: 0.0,
            });
        }
        let mut cdf = Vec::new();
        let (mut p, mut acc, mut k) = ((-lambda).exp(), 0.0, 0u32);
        while acc < 1.0 - 1e-15 && k < 1000 {
            acc += p;
            cdf.push(acc);
            k += 1;
            p *= lambda / k as f64;
        }
        Ok(BernoulliSet {
            ids: items.iter().map(|&(i, _)| i).collect(),
            alias: Some(Alias::new(&mus)?),
            cdf,
            lambda,
        })
    }

    #[inline]
    fn sample(&self, rng: &mut ChaCha8Rng, out: &mut Vec<u32>) {
        let Some(alias) = &self.alias else { return };
        let u = uniform(rng);
        let k = self
            .cdf
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.cdf.len());
        for _ in 0..k {
            let id = self.ids[alias.sample(rng)];
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The compiled generator

struct Trigger {
    human: u32,
    ai: Vec<u32>,
    rt_mask: u8,
    probability: f64,
}

/// One model's factor on one AI value, with the value's inclusion probabilities in each context,
/// so that the factor applies to the exact probability of the row's context.
struct Multiplier {
    value: u32,
    factor: f64,
    background: f64,
    cluster: Vec<f64>,
    rt: [f64; 7],
}

impl Multiplier {
    /// Adds or removes the value so that P(present) = min(1, factor * P(present | context)).
    #[inline]
    fn apply(&self, rng: &mut ChaCha8Rng, c: usize, rt: usize, ai: &mut Vec<u32>) {
        let absent = (1.0 - self.background) * (1.0 - self.cluster[c]) * (1.0 - self.rt[rt]);
        let p0 = 1.0 - absent;
        let u = uniform(rng);
        match ai.iter().position(|&a| a == self.value) {
            Some(i) if self.factor < 1.0 && u >= self.factor => {
                ai.remove(i);
            }
            None if self.factor > 1.0 && absent > 0.0 && u < (self.factor - 1.0) * p0 / absent => {
                ai.push(self.value);
            }
            _ => {}
        }
    }
}

/// A spec turned into samplers. Cheap to share between threads.
pub struct Synth {
    /// Every value string (AI values first, then human-only values and pets): the list children.
    names: Vec<String>,
    models: Vec<String>,
    clusters: Vec<String>,
    tasks: Vec<String>,
    cluster_tasks: Vec<(u32, u32)>,
    model_alias: Alias,
    rt_alias: Vec<Alias>,
    /// Per model: its users' task-cluster law.
    cluster_alias: Vec<Alias>,
    /// Per model: its value multipliers.
    multipliers: Vec<Vec<Multiplier>>,
    background: BernoulliSet,
    cluster_sets: Vec<BernoulliSet>,
    rt_sets: Vec<BernoulliSet>,
    human_p: f64,
    count_alias: Alias,
    human_alias: Vec<Option<(Alias, Vec<u32>)>>,
    /// Weight of each value when a mirrored conversation picks its human value from the AI set.
    mirror_weight: Vec<f64>,
    mirror_p: [f64; 7],
    triggers: Vec<Trigger>,
    explicit_rate: [f64; 7],
    skew: f64,
    conversations_per_user: f64,
    pets: Vec<u32>,
    pet_rate: f64,
    subjective_null_rate: f64,
    /// Background inclusion probability of each AI value (solved from the plants), for inspection.
    pub background_rates: Vec<f64>,
    task_texts: Option<TaskTexts>,
}

fn rt_index(name: &str) -> Result<usize, SynthError> {
    RESPONSE_TYPES
        .iter()
        .position(|r| *r == name)
        .ok_or_else(|| bad(format!("unknown response type {name:?}")))
}

fn check_prob(what: &str, p: f64) -> Result<(), SynthError> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(bad(format!("{what} must be within 0 and 1")))
    }
}

impl Synth {
    pub fn new(spec: &SynthSpec) -> Result<Synth, SynthError> {
        let n_ai = spec.ai_values.len();
        if n_ai == 0 || spec.ai_pct_convos.len() != n_ai {
            return Err(bad(
                "ai_values and ai_pct_convos must be non-empty and equally long",
            ));
        }
        let mut names: Vec<String> = Vec::new();
        let mut index: HashMap<String, u32> = HashMap::new();
        fn intern(index: &mut HashMap<String, u32>, s: &str, names: &mut Vec<String>) -> u32 {
            *index.entry(s.to_string()).or_insert_with(|| {
                names.push(s.to_string());
                (names.len() - 1) as u32
            })
        }
        for v in &spec.ai_values {
            intern(&mut index, v, &mut names);
        }
        if names.len() != n_ai {
            return Err(bad("ai_values must be distinct"));
        }
        let p: Vec<f64> = spec.ai_pct_convos.iter().map(|x| x / 100.0).collect();
        if p.iter().any(|&x| !(0.0..1.0).contains(&x)) {
            return Err(bad("ai_pct_convos must be within 0 and 100"));
        }

        // models and the overall response-type law
        if spec.models.is_empty() {
            return Err(bad("at least one model"));
        }
        let model_alias = Alias::new(&spec.models.iter().map(|m| m.share).collect::<Vec<_>>())?;
        let share_total: f64 = spec.models.iter().map(|m| m.share).sum();
        let mut rt_share = [0.0f64; 7];
        let mut rt_alias = Vec::new();
        for m in &spec.models {
            if m.response_types.len() != 7 {
                return Err(bad("each model needs seven response-type weights"));
            }
            let t: f64 = m.response_types.iter().sum();
            for (r, w) in m.response_types.iter().enumerate() {
                rt_share[r] += m.share / share_total * w / t;
            }
            rt_alias.push(Alias::new(&m.response_types)?);
        }

        // clusters and tasks
        if spec.clusters.is_empty() {
            return Err(bad("at least one task cluster"));
        }
        let shares: Vec<f64> = spec.clusters.iter().map(|c| c.share).collect();
        // P(cluster | model), and P(cluster) over the models' shares
        let mut cluster_given_model: Vec<Vec<f64>> = Vec::new();
        let mut cluster_alias = Vec::new();
        let mut cluster_p = vec![0.0f64; spec.clusters.len()];
        for m in &spec.models {
            let w = m.task_clusters.as_ref().unwrap_or(&shares);
            if w.len() != spec.clusters.len() {
                return Err(bad(format!(
                    "model {:?} needs one task-cluster weight per cluster",
                    m.name
                )));
            }
            cluster_alias.push(Alias::new(w)?);
            let t: f64 = w.iter().sum();
            let given: Vec<f64> = w.iter().map(|x| x / t).collect();
            for (c, g) in given.iter().enumerate() {
                cluster_p[c] += m.share / share_total * g;
            }
            cluster_given_model.push(given);
        }
        let mut tasks = Vec::new();
        let mut cluster_tasks = Vec::new();
        for c in &spec.clusters {
            if c.tasks.is_empty() {
                return Err(bad("each task cluster needs at least one task"));
            }
            cluster_tasks.push((tasks.len() as u32, c.tasks.len() as u32));
            tasks.extend(c.tasks.iter().cloned());
        }

        // planted context rates: q = share * p / P(context); the background solves the rest
        let mut cluster_items: Vec<Vec<(u32, f64)>> = vec![Vec::new(); spec.clusters.len()];
        let mut rt_items: Vec<Vec<(u32, f64)>> = vec![Vec::new(); 7];
        let mut mass_cluster = vec![0.0f64; n_ai];
        let mut mass_rt = vec![0.0f64; n_ai];
        for plant in &spec.plants {
            let v = *index
                .get(&plant.value)
                .filter(|&&v| (v as usize) < n_ai)
                .ok_or_else(|| {
                    bad(format!(
                        "planted value {:?} is not an AI value",
                        plant.value
                    ))
                })?;
            check_prob("plant share", plant.share)?;
            let (pi, items, mass) = match plant.context {
                Context::TaskCluster => {
                    let c = spec
                        .clusters
                        .iter()
                        .position(|c| c.name == plant.category)
                        .ok_or_else(|| bad(format!("unknown task cluster {:?}", plant.category)))?;
                    (cluster_p[c], &mut cluster_items[c], &mut mass_cluster)
                }
                Context::ResponseType => {
                    let r = rt_index(&plant.category)?;
                    (rt_share[r], &mut rt_items[r], &mut mass_rt)
                }
            };
            let vi = v as usize;
            let q = (plant.share * p[vi] / pi.max(1e-12)).min(MAX_RATE);
            items.push((v, q));
            mass[vi] += pi * q;
        }
        let mut background_rates = vec![0.0; n_ai];
        for v in 0..n_ai {
            let kept = (1.0 - mass_cluster[v]) * (1.0 - mass_rt[v]);
            if kept < 1.0 - p[v] - 1e-12 {
                return Err(bad(format!(
                    "plants of {:?} claim more than all its conversations",
                    spec.ai_values[v]
                )));
            }
            background_rates[v] = (1.0 - (1.0 - p[v]) / kept).max(0.0);
        }
        let background = BernoulliSet::new(
            &background_rates
                .iter()
                .enumerate()
                .map(|(i, &r)| (i as u32, r))
                .collect::<Vec<_>>(),
        )?;
        let mut multipliers = Vec::new();
        for m in &spec.models {
            let mut list = Vec::new();
            for (value, &factor) in &m.value_multipliers {
                let v = *index
                    .get(value)
                    .filter(|&&v| (v as usize) < n_ai)
                    .ok_or_else(|| {
                        bad(format!(
                            "value multiplier {value:?} of model {:?} is not an AI value",
                            m.name
                        ))
                    })?;
                if !factor.is_finite() || factor < 0.0 {
                    return Err(bad("value multipliers must be non-negative"));
                }
                let rate_in = |items: &[(u32, f64)]| {
                    items
                        .iter()
                        .filter(|&&(i, _)| i == v)
                        .fold(0.0, |acc: f64, &(_, q)| 1.0 - (1.0 - acc) * (1.0 - q))
                };
                let mut rt = [0.0; 7];
                for (r, items) in rt_items.iter().enumerate() {
                    rt[r] = rate_in(items);
                }
                list.push(Multiplier {
                    value: v,
                    factor,
                    background: background_rates[v as usize],
                    cluster: cluster_items.iter().map(|it| rate_in(it)).collect(),
                    rt,
                });
            }
            multipliers.push(list);
        }
        let cluster_sets = cluster_items
            .iter()
            .map(|it| BernoulliSet::new(it))
            .collect::<Result<Vec<_>, _>>()?;
        let rt_sets = rt_items
            .iter()
            .map(|it| BernoulliSet::new(it))
            .collect::<Result<Vec<_>, _>>()?;

        // human values
        check_prob("human_rate", spec.human_rate)?;
        let with_types = 1.0 - rt_share[NO_VALUES];
        let human_p = spec.human_rate / with_types.max(1e-12);
        if human_p > 1.0 + 1e-9 {
            return Err(bad(
                "human_rate exceeds the share of conversations that are not 'no values'",
            ));
        }
        let count_alias = Alias::new(&spec.human_counts)?;
        let mut human_ids = Vec::new();
        let mut human_masks = Vec::new();
        for h in &spec.human_values {
            human_ids.push(intern(&mut index, &h.name, &mut names));
            let mask = match &h.response_types {
                None => 0x7f,
                Some(list) => list
                    .iter()
                    .try_fold(0u8, |m, r| Ok::<u8, SynthError>(m | 1 << rt_index(r)?))?,
            };
            human_masks.push(mask);
        }
        let mut human_alias = Vec::new();
        for r in 0..7 {
            let members: Vec<usize> = (0..spec.human_values.len())
                .filter(|&i| {
                    r != NO_VALUES
                        && human_masks[i] & (1 << r) != 0
                        && spec.human_values[i].weight > 0.0
                })
                .collect();
            if members.is_empty() {
                human_alias.push(None);
                continue;
            }
            let w: Vec<f64> = members
                .iter()
                .map(|&i| spec.human_values[i].weight)
                .collect();
            let ids: Vec<u32> = members.iter().map(|&i| human_ids[i]).collect();
            human_alias.push(Some((Alias::new(&w)?, ids)));
        }
        if spec.human_rate > 0.0 && human_alias.iter().all(Option::is_none) {
            return Err(bad("human_rate > 0 needs human values"));
        }
        let min_w = spec
            .human_values
            .iter()
            .map(|h| h.weight)
            .filter(|&w| w > 0.0)
            .fold(f64::INFINITY, f64::min);
        let floor = if min_w.is_finite() { min_w * 0.5 } else { 1.0 };

        let mut triggers = Vec::new();
        for t in &spec.triggers {
            check_prob("trigger probability", t.probability)?;
            let human = intern(&mut index, &t.human_value, &mut names);
            let ai = t
                .ai_values
                .iter()
                .map(|a| {
                    index
                        .get(a.as_str())
                        .copied()
                        .ok_or_else(|| bad(format!("trigger AI value {a:?} is unknown")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let rt_mask = t
                .response_types
                .iter()
                .try_fold(0u8, |m, r| Ok::<u8, SynthError>(m | 1 << rt_index(r)?))?;
            triggers.push(Trigger {
                human,
                ai,
                rt_mask,
                probability: t.probability,
            });
        }

        // users and pets
        let u = &spec.users;
        let valid = |x: f64| x.is_finite() && x >= 1.0;
        if !valid(u.conversations_per_user) || !valid(u.skew) {
            return Err(bad("users need conversations_per_user >= 1 and skew >= 1"));
        }
        check_prob("pet_rate", u.pet_rate)?;
        let pets: Vec<u32> = u
            .pets
            .iter()
            .map(|s| intern(&mut index, s, &mut names))
            .collect();

        let mut mirror_weight = vec![floor; names.len()];
        for (h, &id) in spec.human_values.iter().zip(&human_ids) {
            mirror_weight[id as usize] = h.weight.max(floor);
        }

        // Mirroring needs a non-empty AI set; P(empty | rt) is exact for the Poisson sets.
        if spec.mirroring.len() != 7 {
            return Err(bad("mirroring needs seven rates"));
        }
        // The cluster depends on the model, and so does the response type: average over the
        // models given the response type.
        let e_cluster_model: Vec<f64> = cluster_given_model
            .iter()
            .map(|given| {
                given
                    .iter()
                    .zip(&cluster_sets)
                    .map(|(g, s)| g * (-s.lambda).exp())
                    .sum()
            })
            .collect();
        let mut mirror_p = [0.0; 7];
        for r in 0..7 {
            check_prob("mirroring", spec.mirroring[r])?;
            let (mut num, mut den) = (0.0, 0.0);
            for (m, e) in spec.models.iter().zip(&e_cluster_model) {
                let t: f64 = m.response_types.iter().sum();
                let w = m.share * m.response_types[r] / t;
                num += w * e;
                den += w;
            }
            let e_cluster = if den > 0.0 { num / den } else { 1.0 };
            let nonempty =
                1.0 - (-background.lambda).exp() * e_cluster * (-rt_sets[r].lambda).exp();
            mirror_p[r] = (spec.mirroring[r] / nonempty.max(1e-12)).min(1.0);
        }
        check_prob("explicit_rate", spec.explicit_rate)?;
        let mut explicit_rate = [spec.explicit_rate; 7];
        if let Some(rates) = &spec.explicit_rates {
            if rates.len() != 7 {
                return Err(bad("explicit_rates needs seven rates"));
            }
            for (r, &x) in rates.iter().enumerate() {
                check_prob("explicit_rates", x)?;
                explicit_rate[r] = x;
            }
        }
        check_prob("subjective_null_rate", spec.subjective_null_rate)?;
        let cluster_names: Vec<String> = spec.clusters.iter().map(|c| c.name.clone()).collect();
        let task_texts = spec
            .task_texts
            .as_ref()
            .map(|t| TaskTexts::new(t, &cluster_names))
            .transpose()
            .map_err(|e| bad(e.to_string()))?;

        Ok(Synth {
            names,
            models: spec.models.iter().map(|m| m.name.clone()).collect(),
            clusters: spec.clusters.iter().map(|c| c.name.clone()).collect(),
            tasks,
            cluster_tasks,
            model_alias,
            rt_alias,
            cluster_alias,
            multipliers,
            background,
            cluster_sets,
            rt_sets,
            human_p: human_p.min(1.0),
            count_alias,
            human_alias,
            mirror_weight,
            mirror_p,
            triggers,
            explicit_rate,
            skew: u.skew,
            conversations_per_user: u.conversations_per_user,
            pets,
            pet_rate: u.pet_rate,
            subjective_null_rate: spec.subjective_null_rate,
            background_rates,
            task_texts,
        })
    }

    pub fn from_json(json: &str) -> Result<Synth, SynthError> {
        let spec: SynthSpec = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        Synth::new(&spec)
    }

    /// How many distinct texts each task category can produce (None without task texts).
    pub fn task_variety(&self) -> Option<Vec<f64>> {
        let t = self.task_texts.as_ref()?;
        Some((0..self.clusters.len()).map(|c| t.variety(c)).collect())
    }

    /// The Arrow schema of the rows: dictionary-encoded or plain strings. With task texts, `task`
    /// is always plain (nearly every text is distinct) and [`TRUE_TASK_CLUSTER`] comes last.
    pub fn schema(&self, dictionary: bool) -> SchemaRef {
        let s = if dictionary {
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        } else {
            DataType::Utf8
        };
        let list = DataType::List(Arc::new(Field::new("item", s.clone(), true)));
        let texts = self.task_texts.is_some();
        let mut fields = vec![
            Field::new("conversation_id", DataType::Utf8, false),
            Field::new("user_id", DataType::Utf8, true),
            Field::new("model", s.clone(), true),
            Field::new("subjective", DataType::Boolean, true),
            Field::new("task", if texts { DataType::Utf8 } else { s.clone() }, true),
            Field::new("task_cluster", s.clone(), true),
            Field::new("ai_values", list.clone(), true),
            Field::new("ai_values_explicit", list.clone(), true),
            Field::new("human_values", list.clone(), true),
            Field::new("response_type", s.clone(), true),
        ];
        if texts {
            fields.push(Field::new(TRUE_TASK_CLUSTER, s, false));
        }
        Arc::new(Schema::new(fields))
    }

    fn n_users(&self, n: u64) -> u64 {
        ((n as f64 / self.conversations_per_user).ceil() as u64).max(1)
    }

    fn gen_chunk(&self, seed: u64, n: u64, chunk: u64, lo: usize, hi: usize, out: &mut Cols) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(chunk);
        let mut text_rng = ChaCha8Rng::seed_from_u64(seed ^ TEXT_STREAM_SALT);
        text_rng.set_stream(chunk);
        let n_users = self.n_users(n);
        let mut ai: Vec<u32> = Vec::with_capacity(16);
        let mut human: Vec<u32> = Vec::with_capacity(8);
        let mut weights: Vec<f64> = Vec::with_capacity(16);
        for i in 0..hi {
            let row = chunk * CHUNK_ROWS as u64 + i as u64;
            let m = self.model_alias.sample(&mut rng);
            let rt = self.rt_alias[m].sample(&mut rng);
            let c = self.cluster_alias[m].sample(&mut rng);
            let (t0, tn) = self.cluster_tasks[c];
            let task = t0 + ((rng.next_u64() as u128 * tn as u128) >> 64) as u32;
            let user =
                ((n_users as f64 * uniform(&mut rng).powf(self.skew)) as u64).min(n_users - 1);
            let subjective = if uniform(&mut rng) < self.subjective_null_rate {
                2
            } else {
                1
            };

            ai.clear();
            self.background.sample(&mut rng, &mut ai);
            self.cluster_sets[c].sample(&mut rng, &mut ai);
            self.rt_sets[rt].sample(&mut rng, &mut ai);
            for mult in &self.multipliers[m] {
                mult.apply(&mut rng, c, rt, &mut ai);
            }
            if (user as usize) < self.pets.len() && uniform(&mut rng) < self.pet_rate {
                let pet = self.pets[user as usize];
                if !ai.contains(&pet) {
                    ai.push(pet);
                }
            }
            let explicit_bits: u32 = ai.iter().enumerate().fold(0, |b, (j, _)| {
                b | (((uniform(&mut rng) < self.explicit_rate[rt]) as u32) << j.min(31))
            });

            human.clear();
            if rt != NO_VALUES && uniform(&mut rng) < self.human_p {
                self.draw_human(&mut rng, rt, &ai, &mut human, &mut weights);
            }
            if let Some(t) = &self.task_texts {
                if i >= lo {
                    t.write(c, &mut text_rng, &mut out.text_bytes);
                    out.text_off.push(out.text_bytes.len() as i32);
                } else {
                    let mut skip = Vec::new();
                    t.write(c, &mut text_rng, &mut skip);
                }
            }
            if i < lo {
                continue;
            }
            out.push_row(
                row,
                user,
                m,
                rt,
                c,
                task,
                subjective,
                &ai,
                explicit_bits,
                &human,
            );
        }
    }

    fn draw_human(
        &self,
        rng: &mut ChaCha8Rng,
        rt: usize,
        ai: &[u32],
        human: &mut Vec<u32>,
        weights: &mut Vec<f64>,
    ) {
        let k = self.count_alias.sample(rng) + 1;
        let mirrored = uniform(rng) < self.mirror_p[rt];
        for t in &self.triggers {
            if t.rt_mask & (1 << rt) != 0
                && t.ai.iter().any(|a| ai.contains(a))
                && uniform(rng) < t.probability
                && (mirrored || !ai.contains(&t.human))
                && !human.contains(&t.human)
            {
                human.push(t.human);
            }
        }
        if mirrored && !ai.is_empty() && !human.iter().any(|h| ai.contains(h)) {
            weights.clear();
            weights.extend(ai.iter().map(|&a| self.mirror_weight[a as usize]));
            let total: f64 = weights.iter().sum();
            let mut x = uniform(rng) * total;
            let mut pick = ai[ai.len() - 1];
            for (j, w) in weights.iter().enumerate() {
                if x < *w {
                    pick = ai[j];
                    break;
                }
                x -= w;
            }
            human.push(pick);
        }
        let Some((alias, ids)) = &self.human_alias[rt] else {
            return;
        };
        let mut tries = 0;
        while human.len() < k && tries < 64 {
            tries += 1;
            let h = ids[alias.sample(rng)];
            if human.contains(&h) || (!mirrored && ai.contains(&h)) {
                continue;
            }
            human.push(h);
        }
    }

    /// Rows [lo, hi) of a corpus of n rows, as one record batch.
    pub fn batch(&self, seed: u64, n: u64, lo: u64, hi: u64, dictionary: bool) -> RecordBatch {
        let hi = hi.min(n);
        let lo = lo.min(hi);
        let c = CHUNK_ROWS as u64;
        let first = lo / c;
        let last = hi.div_ceil(c);
        let parts: Vec<Cols> = (first..last)
            .into_par_iter()
            .map(|chunk| {
                let start = chunk * c;
                let a = (lo.max(start) - start) as usize;
                let b = (hi.min(start + c) - start) as usize;
                let mut cols = Cols::with_capacity(b - a);
                self.gen_chunk(seed, n, chunk, a, b, &mut cols);
                cols
            })
            .collect();
        let mut all = Cols::with_capacity((hi - lo) as usize);
        for p in &parts {
            all.extend(p);
        }
        self.to_batch(&all, dictionary)
    }

    fn to_batch(&self, c: &Cols, dictionary: bool) -> RecordBatch {
        let scalar = |codes: &[u32], names: &[String]| -> ArrayRef {
            if dictionary {
                let keys = Int32Array::from_iter_values(codes.iter().map(|&k| k as i32));
                let values = Arc::new(StringArray::from_iter_values(names));
                Arc::new(
                    DictionaryArray::<Int32Type>::try_new(keys, values).expect("keys in range"),
                )
            } else {
                Arc::new(StringArray::from_iter_values(
                    codes.iter().map(|&k| &names[k as usize]),
                ))
            }
        };
        let names_arr: ArrayRef = Arc::new(StringArray::from_iter_values(&self.names));
        let list = |offsets: &[i32], codes: &[u32]| -> ArrayRef {
            let child: ArrayRef = if dictionary {
                let keys = Int32Array::from_iter_values(codes.iter().map(|&k| k as i32));
                Arc::new(
                    DictionaryArray::<Int32Type>::try_new(keys, names_arr.clone())
                        .expect("keys in range"),
                )
            } else {
                Arc::new(StringArray::from_iter_values(
                    codes.iter().map(|&k| &self.names[k as usize]),
                ))
            };
            let field = Arc::new(Field::new("item", child.data_type().clone(), true));
            let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets.to_vec()));
            Arc::new(ListArray::try_new(field, offsets, child, None).expect("valid offsets"))
        };
        let text = |offsets: &[i32], bytes: &[u8]| -> ArrayRef {
            let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets.to_vec()));
            Arc::new(StringArray::try_new(offsets, Buffer::from(bytes), None).expect("ascii ids"))
        };
        let rt_names: Vec<String> = RESPONSE_TYPES.iter().map(|s| s.to_string()).collect();
        let subjective = BooleanArray::new(
            BooleanBuffer::from_iter(c.subjective.iter().map(|&s| s == 1)),
            Some(NullBuffer::from_iter(c.subjective.iter().map(|&s| s != 2))),
        );
        let texts = self.task_texts.is_some();
        let (task, cluster) = if texts {
            let nulls = NullBuffer::new_null(c.cluster.len());
            let cluster: ArrayRef = if dictionary {
                let keys =
                    Int32Array::new(ScalarBuffer::from(vec![0; c.cluster.len()]), Some(nulls));
                let values = Arc::new(StringArray::from_iter_values(&self.clusters));
                Arc::new(
                    DictionaryArray::<Int32Type>::try_new(keys, values).expect("keys in range"),
                )
            } else {
                let empty = OffsetBuffer::new(ScalarBuffer::from(vec![0i32; c.cluster.len() + 1]));
                Arc::new(
                    StringArray::try_new(empty, Buffer::from(Vec::<u8>::new()), Some(nulls))
                        .expect("nulls"),
                )
            };
            let offsets = OffsetBuffer::new(ScalarBuffer::from(c.text_off.clone()));
            let task = StringArray::try_new(offsets, Buffer::from(c.text_bytes.as_slice()), None)
                .expect("templates are UTF-8");
            (Arc::new(task) as ArrayRef, cluster)
        } else {
            (
                scalar(&c.task, &self.tasks),
                scalar(&c.cluster, &self.clusters),
            )
        };
        let mut columns: Vec<ArrayRef> = vec![
            text(&c.conv_off, &c.conv_bytes),
            text(&c.user_off, &c.user_bytes),
            scalar(&c.model, &self.models),
            Arc::new(subjective),
            task,
            cluster,
            list(&c.ai_off, &c.ai),
            list(&c.ex_off, &c.ex),
            list(&c.hu_off, &c.hu),
            scalar(&c.rt, &rt_names),
        ];
        if texts {
            columns.push(scalar(&c.cluster, &self.clusters));
        }
        RecordBatch::try_new(self.schema(dictionary), columns).expect("columns match the schema")
    }

    /// Streams a corpus of n rows in batches, generated one batch ahead on a background thread.
    pub fn stream(
        self: Arc<Self>,
        seed: u64,
        n: u64,
        batch_size: usize,
        dictionary: bool,
    ) -> SynthStream {
        let (tx, rx) = sync_channel(1);
        let bs = batch_size.max(1) as u64;
        let schema = self.schema(dictionary);
        let handle = std::thread::spawn(move || {
            let mut lo = 0;
            while lo < n {
                let hi = (lo + bs).min(n);
                if tx.send(self.batch(seed, n, lo, hi, dictionary)).is_err() {
                    return; // the reader was dropped
                }
                lo = hi;
            }
        });
        SynthStream {
            schema,
            rx: Some(rx),
            handle: Some(handle),
        }
    }
}

/// A `RecordBatchReader` over a synthetic corpus.
pub struct SynthStream {
    schema: SchemaRef,
    rx: Option<Receiver<RecordBatch>>,
    handle: Option<JoinHandle<()>>,
}

impl Iterator for SynthStream {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.rx.as_ref()?.recv().ok();
        if batch.is_none() {
            self.rx = None;
            if let Some(h) = self.handle.take() {
                if h.join().is_err() {
                    return Some(Err(ArrowError::ComputeError(
                        "synthetic generator failed".into(),
                    )));
                }
            }
        }
        batch.map(Ok)
    }
}

impl RecordBatchReader for SynthStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Drop for SynthStream {
    fn drop(&mut self) {
        // Closing the channel stops the producer at its next send.
        self.rx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Column buffers for a run of rows.
#[derive(Default)]
struct Cols {
    conv_off: Vec<i32>,
    conv_bytes: Vec<u8>,
    user_off: Vec<i32>,
    user_bytes: Vec<u8>,
    model: Vec<u32>,
    rt: Vec<u32>,
    cluster: Vec<u32>,
    task: Vec<u32>,
    subjective: Vec<u8>,
    ai_off: Vec<i32>,
    ai: Vec<u32>,
    ex_off: Vec<i32>,
    ex: Vec<u32>,
    hu_off: Vec<i32>,
    hu: Vec<u32>,
    /// Generated task texts (only with task templates).
    text_off: Vec<i32>,
    text_bytes: Vec<u8>,
}

fn push_id(bytes: &mut Vec<u8>, prefix: u8, x: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut v = x;
    let mut len = 0;
    while v > 0 || len == 0 {
        digits[19 - len] = b'0' + (v % 10) as u8;
        v /= 10;
        len += 1;
    }
    let len = len.max(width);
    bytes.push(prefix);
    bytes.extend_from_slice(&digits[20 - len..]);
}

impl Cols {
    fn with_capacity(rows: usize) -> Cols {
        let mut c = Cols {
            conv_off: Vec::with_capacity(rows + 1),
            conv_bytes: Vec::with_capacity(rows * 11),
            user_off: Vec::with_capacity(rows + 1),
            user_bytes: Vec::with_capacity(rows * 9),
            model: Vec::with_capacity(rows),
            rt: Vec::with_capacity(rows),
            cluster: Vec::with_capacity(rows),
            task: Vec::with_capacity(rows),
            subjective: Vec::with_capacity(rows),
            ai_off: Vec::with_capacity(rows + 1),
            ai: Vec::with_capacity(rows * 5),
            ex_off: Vec::with_capacity(rows + 1),
            ex: Vec::with_capacity(rows),
            hu_off: Vec::with_capacity(rows + 1),
            hu: Vec::with_capacity(rows),
            text_off: Vec::new(),
            text_bytes: Vec::new(),
        };
        for off in [
            &mut c.conv_off,
            &mut c.user_off,
            &mut c.ai_off,
            &mut c.ex_off,
            &mut c.hu_off,
            &mut c.text_off,
        ] {
            off.push(0);
        }
        c
    }

    #[allow(clippy::too_many_arguments)]
    fn push_row(
        &mut self,
        row: u64,
        user: u64,
        model: usize,
        rt: usize,
        cluster: usize,
        task: u32,
        subjective: u8,
        ai: &[u32],
        explicit_bits: u32,
        human: &[u32],
    ) {
        push_id(&mut self.conv_bytes, b'c', row, 9);
        self.conv_off.push(self.conv_bytes.len() as i32);
        push_id(&mut self.user_bytes, b'u', user, 7);
        self.user_off.push(self.user_bytes.len() as i32);
        self.model.push(model as u32);
        self.rt.push(rt as u32);
        self.cluster.push(cluster as u32);
        self.task.push(task);
        self.subjective.push(subjective);
        self.ai.extend_from_slice(ai);
        self.ai_off.push(self.ai.len() as i32);
        for (j, &a) in ai.iter().enumerate() {
            if j < 32 && explicit_bits & (1 << j) != 0 {
                self.ex.push(a);
            }
        }
        self.ex_off.push(self.ex.len() as i32);
        self.hu.extend_from_slice(human);
        self.hu_off.push(self.hu.len() as i32);
    }

    fn extend(&mut self, o: &Cols) {
        fn offsets(dst: &mut Vec<i32>, src: &[i32]) {
            let base = *dst.last().expect("starts with 0");
            dst.extend(src[1..].iter().map(|x| x + base));
        }
        offsets(&mut self.conv_off, &o.conv_off);
        self.conv_bytes.extend_from_slice(&o.conv_bytes);
        offsets(&mut self.user_off, &o.user_off);
        self.user_bytes.extend_from_slice(&o.user_bytes);
        self.model.extend_from_slice(&o.model);
        self.rt.extend_from_slice(&o.rt);
        self.cluster.extend_from_slice(&o.cluster);
        self.task.extend_from_slice(&o.task);
        self.subjective.extend_from_slice(&o.subjective);
        offsets(&mut self.ai_off, &o.ai_off);
        self.ai.extend_from_slice(&o.ai);
        offsets(&mut self.ex_off, &o.ex_off);
        self.ex.extend_from_slice(&o.ex);
        offsets(&mut self.hu_off, &o.hu_off);
        self.hu.extend_from_slice(&o.hu);
        offsets(&mut self.text_off, &o.text_off);
        self.text_bytes.extend_from_slice(&o.text_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::Array;

    fn spec() -> SynthSpec {
        let ai_values: Vec<String> = (0..40).map(|i| format!("value {i}")).collect();
        let ai_pct_convos: Vec<f64> = (0..40).map(|i| 30.0 / (1.0 + i as f64)).collect();
        serde_json::from_value(serde_json::json!({
            "ai_values": ai_values,
            "ai_pct_convos": ai_pct_convos,
            "models": [
                {"name": "a", "share": 0.7, "response_types": [30, 15, 10, 7, 2, 3, 33]},
                {"name": "b", "share": 0.3, "response_types": [40, 10, 5, 5, 5, 10, 25]}
            ],
            "clusters": [
                {"name": "x", "share": 0.8, "tasks": ["x1", "x2"]},
                {"name": "y", "share": 0.2, "tasks": ["y1"]}
            ],
            "plants": [
                {"context": "task_cluster", "category": "y", "value": "value 20", "share": 0.6},
                {"context": "response_type", "category": "strong resistance", "value": "value 30", "share": 0.5}
            ],
            "human_values": [
                {"name": "value 0", "weight": 3.0},
                {"name": "only human", "weight": 2.0},
                {"name": "value 5", "weight": 1.0}
            ],
            "human_rate": 0.45,
            "human_counts": [0.62, 0.29, 0.07, 0.02],
            "triggers": [],
            "mirroring": [0.2, 0.15, 0.1, 0.15, 0.05, 0.012, 0.0],
            "explicit_rate": 0.2,
            "users": {"conversations_per_user": 5, "skew": 3, "pets": ["pet"], "pet_rate": 0.5},
            "subjective_null_rate": 0.01
        }))
        .unwrap()
    }

    #[test]
    fn alias_matches_weights() {
        let a = Alias::new(&[1.0, 2.0, 7.0]).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0u32; 3];
        for _ in 0..200_000 {
            counts[a.sample(&mut rng)] += 1;
        }
        for (c, p) in counts.iter().zip([0.1, 0.2, 0.7]) {
            assert!((*c as f64 / 200_000.0 - p).abs() < 0.005, "{counts:?}");
        }
    }

    #[test]
    fn bernoulli_set_hits_each_rate() {
        let rates = [(0, 0.3), (1, 0.05), (2, 0.6), (3, 0.001)];
        let s = BernoulliSet::new(&rates).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut seen = [0u32; 4];
        let mut empty = 0u32;
        let mut out = Vec::new();
        let n = 400_000;
        for _ in 0..n {
            out.clear();
            s.sample(&mut rng, &mut out);
            empty += out.is_empty() as u32;
            for &i in &out {
                seen[i as usize] += 1;
            }
        }
        for (i, &(_, r)) in rates.iter().enumerate() {
            let got = seen[i] as f64 / n as f64;
            assert!(
                (got - r).abs() < 4.0 * (r * (1.0 - r) / n as f64).sqrt() + 1e-4,
                "{i}: {got} vs {r}"
            );
        }
        let want_empty: f64 = rates.iter().map(|(_, r)| 1.0 - r).product();
        assert!((empty as f64 / n as f64 - want_empty).abs() < 0.003);
    }

    #[test]
    fn rows_do_not_depend_on_batch_boundaries() {
        let s = Synth::new(&spec()).unwrap();
        let whole = s.batch(42, 30_000, 0, 30_000, false);
        let a = s.batch(42, 30_000, 0, 12_345, false);
        let b = s.batch(42, 30_000, 12_345, 30_000, false);
        assert_eq!(whole.slice(0, 12_345), a);
        assert_eq!(whole.slice(12_345, 30_000 - 12_345), b);
        let other_seed = s.batch(43, 30_000, 0, 30_000, false);
        assert_ne!(whole, other_seed);
    }

    #[test]
    fn task_texts_change_only_the_task_columns() {
        let plain = Synth::new(&spec()).unwrap();
        let mut with = spec();
        with.task_texts = Some(
            serde_json::from_value(serde_json::json!({
                "shared": {"lead": ["", "help me", "please"]},
                "categories": [
                    {"name": "x", "templates": ["{lead} fix the {n} bug"],
                     "slots": {"n": ["1", "2", "3", "4", "5", "6", "7"]}},
                    {"name": "y", "templates": ["{lead} plan a {n} day trip"],
                     "slots": {"n": ["1", "2", "3"]}}
                ]
            }))
            .unwrap(),
        );
        let texts = Synth::new(&with).unwrap();
        let a = plain.batch(9, 20_000, 0, 20_000, false);
        let b = texts.batch(9, 20_000, 0, 20_000, false);
        for name in [
            "conversation_id",
            "user_id",
            "model",
            "ai_values",
            "response_type",
        ] {
            assert_eq!(a.column_by_name(name), b.column_by_name(name), "{name}");
        }
        assert_eq!(
            b.column_by_name("task_cluster").unwrap().null_count(),
            20_000
        );
        // the ground truth is the planted cluster, and each text comes from its templates
        let truth = b.column_by_name(TRUE_TASK_CLUSTER).unwrap();
        assert_eq!(truth, a.column_by_name("task_cluster").unwrap());
        let truth = truth.as_string::<i32>();
        let task = b.column_by_name("task").unwrap().as_string::<i32>();
        for i in 0..task.len() {
            let (t, c) = (task.value(i), truth.value(i));
            let ok = match c {
                "x" => t.ends_with(" bug") && t.contains("fix the"),
                _ => t.ends_with(" day trip") && t.contains("plan a"),
            };
            assert!(ok && !t.starts_with(' ') && !t.contains("  "), "{c}: {t:?}");
        }
        // rows still do not depend on batch boundaries
        let part = texts.batch(9, 20_000, 8_000, 20_000, true);
        let whole = texts.batch(9, 20_000, 0, 20_000, true);
        assert_eq!(whole.slice(8_000, 12_000), part);
        assert_eq!(texts.task_variety().unwrap(), vec![21.0, 9.0]);
    }

    /// Counts of (model, cluster) rows and of rows holding `value`, from a batch.
    fn counts_by_model_cluster(
        b: &RecordBatch,
        value: &str,
    ) -> HashMap<(String, String), (u64, u64)> {
        let model = b.column_by_name("model").unwrap().as_string::<i32>();
        let cluster = b.column_by_name("task_cluster").unwrap().as_string::<i32>();
        let ai = b.column_by_name("ai_values").unwrap().as_list::<i32>();
        let mut out: HashMap<(String, String), (u64, u64)> = HashMap::new();
        for i in 0..b.num_rows() {
            let values = ai.value(i);
            let values = values.as_string::<i32>();
            let has = (0..values.len()).any(|j| values.value(j) == value);
            let e = out
                .entry((model.value(i).to_string(), cluster.value(i).to_string()))
                .or_default();
            e.0 += 1;
            e.1 += has as u64;
        }
        out
    }

    #[test]
    fn old_specs_parse_without_the_new_fields() {
        let s = spec();
        assert!(s.models.iter().all(|m| m.task_clusters.is_none()));
        assert!(s.models.iter().all(|m| m.value_multipliers.is_empty()));
        assert!(s.explicit_rates.is_none());
    }

    #[test]
    fn a_model_keeps_its_own_task_mix_and_value_factor() {
        let mut sp = spec();
        // model b: its users are mostly in cluster y; model a states "value 3" half as often,
        // in every cluster
        sp.models[1].task_clusters = Some(vec![0.1, 0.9]);
        sp.models[0].value_multipliers.insert("value 3".into(), 0.5);
        sp.models[1]
            .value_multipliers
            .insert("value 20".into(), 2.0);
        let s = Synth::new(&sp).unwrap();
        let n = 200_000u64;
        let b = s.batch(3, n, 0, n, false);
        let c = counts_by_model_cluster(&b, "value 3");
        let get = |m: &str, k: &str| c.get(&(m.to_string(), k.to_string())).copied().unwrap();
        let (bx, by) = (get("b", "x").0 as f64, get("b", "y").0 as f64);
        let share_y = by / (bx + by);
        assert!((share_y - 0.9).abs() < 0.01, "{share_y}");
        let (ax, ay) = (get("a", "x").0 as f64, get("a", "y").0 as f64);
        assert!((ay / (ax + ay) - 0.2).abs() < 0.01);
        // "value 3" has no plants: its rate is p in b and p / 2 in a, in both clusters
        let p = sp.ai_pct_convos[3] / 100.0;
        for k in ["x", "y"] {
            let (na, ha) = get("a", k);
            let (nb, hb) = get("b", k);
            let (ra, rb) = (ha as f64 / na as f64, hb as f64 / nb as f64);
            let se = |q: f64, n: u64| (q * (1.0 - q) / n as f64).sqrt();
            assert!((ra - p / 2.0).abs() < 4.5 * se(p / 2.0, na), "{k}: {ra}");
            assert!((rb - p).abs() < 4.5 * se(p, nb), "{k}: {rb}");
        }
        // a factor above 1 on a planted value doubles its rate in each context
        let c = counts_by_model_cluster(&b, "value 20");
        for k in ["x", "y"] {
            let (na, ha) = c[&("a".to_string(), k.to_string())];
            let (nb, hb) = c[&("b".to_string(), k.to_string())];
            let ratio = (hb as f64 / nb as f64) / (ha as f64 / na as f64);
            assert!((ratio - 2.0).abs() < 0.35, "{k}: {ratio}");
        }
    }

    #[test]
    fn explicit_rates_follow_the_response_type() {
        let mut sp = spec();
        let rates = vec![0.1, 0.1, 0.1, 0.3, 0.4, 0.5, 0.1];
        sp.explicit_rates = Some(rates.clone());
        let s = Synth::new(&sp).unwrap();
        let n = 100_000u64;
        let b = s.batch(8, n, 0, n, false);
        let rt = b
            .column_by_name("response_type")
            .unwrap()
            .as_string::<i32>();
        let ai = b.column_by_name("ai_values").unwrap().as_list::<i32>();
        let ex = b
            .column_by_name("ai_values_explicit")
            .unwrap()
            .as_list::<i32>();
        let mut tally = [(0u64, 0u64); 7];
        for i in 0..b.num_rows() {
            let r = rt_index(rt.value(i)).unwrap();
            tally[r].0 += ai.value_length(i) as u64;
            tally[r].1 += ex.value_length(i) as u64;
        }
        for (r, &(n_ai, n_ex)) in tally.iter().enumerate() {
            let got = n_ex as f64 / n_ai as f64;
            let se = (rates[r] * (1.0 - rates[r]) / n_ai as f64).sqrt();
            assert!((got - rates[r]).abs() < 4.5 * se, "{r}: {got}");
        }
        let mut bad_spec = spec();
        bad_spec.explicit_rates = Some(vec![0.1; 6]);
        assert!(Synth::new(&bad_spec).is_err());
        let mut bad_spec = spec();
        bad_spec.models[0].task_clusters = Some(vec![1.0]);
        assert!(Synth::new(&bad_spec).is_err());
        let mut bad_spec = spec();
        bad_spec.models[0]
            .value_multipliers
            .insert("only human".into(), 2.0);
        assert!(Synth::new(&bad_spec).is_err());
    }

    #[test]
    fn calibrated_shares_are_hit() {
        let s = Synth::new(&spec()).unwrap();
        let n = 200_000u64;
        let b = s.batch(5, n, 0, n, true);
        let ai = b.column_by_name("ai_values").unwrap().as_list::<i32>();
        let keys = ai.values().as_dictionary::<Int32Type>().keys().clone();
        let mut counts = vec![0u64; s.names.len()];
        for k in keys.values() {
            counts[*k as usize] += 1;
        }
        let p = spec().ai_pct_convos;
        for v in [0usize, 1, 4, 20, 30] {
            let want = p[v] / 100.0;
            let got = counts[v] as f64 / n as f64;
            let se = (want * (1.0 - want) / n as f64).sqrt();
            assert!((got - want).abs() < 4.5 * se, "value {v}: {got} vs {want}");
        }
        let hu = b.column_by_name("human_values").unwrap().as_list::<i32>();
        let with = (0..hu.len()).filter(|&i| hu.value_length(i) > 0).count() as f64 / n as f64;
        assert!((with - 0.45).abs() < 0.005, "{with}");
    }
}

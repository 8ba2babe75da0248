//! Arrow record batches -> State. Column access is resolved once per batch; the row loop only
//! looks up interned ids.

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BooleanArray, LargeStringArray, RecordBatch, StringArray, StringViewArray,
};
use arrow_buffer::NullBuffer;
use arrow_schema::DataType;
use hashbrown::HashMap;
use rayon::prelude::*;
use smallvec::SmallVec;

use super::cells::{Cells, Scatter};
use super::plan::StratumColumns;
use super::plan::{Plan, Reject, AI, EXPLICIT, HUMAN, MODEL, RT};
use super::state::{pack, ModelStats, State, EMPTY};
use super::strata::{ModelStrata, NO_STRATUM};
use super::users::{conversation_user_hash, update, user_hash, Counter, UserId};
use crate::error::{EngineError, Result};
use crate::schema::{expects_list, required_columns};

const UNSET: u32 = u32::MAX - 1;

/// A dictionary's keys, read in place (a converted copy would cost a pass and an allocation
/// per column per batch).
pub(crate) struct Keys<'a> {
    keys: KeySlice<'a>,
    /// The last valid index: a key past it (possible only in a null slot of data that was not
    /// validated) is clamped, never used to read out of bounds.
    last: u64,
}

enum KeySlice<'a> {
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
}

impl<'a> Keys<'a> {
    fn new(arr: &'a dyn Array, n_values: usize) -> Option<Self> {
        use arrow_array::types::*;
        let keys = match arr.data_type() {
            DataType::Dictionary(k, _) => match k.as_ref() {
                DataType::Int8 => KeySlice::I8(arr.as_dictionary::<Int8Type>().keys().values()),
                DataType::Int16 => KeySlice::I16(arr.as_dictionary::<Int16Type>().keys().values()),
                DataType::Int32 => KeySlice::I32(arr.as_dictionary::<Int32Type>().keys().values()),
                DataType::Int64 => KeySlice::I64(arr.as_dictionary::<Int64Type>().keys().values()),
                DataType::UInt8 => KeySlice::U8(arr.as_dictionary::<UInt8Type>().keys().values()),
                DataType::UInt16 => {
                    KeySlice::U16(arr.as_dictionary::<UInt16Type>().keys().values())
                }
                DataType::UInt32 => {
                    KeySlice::U32(arr.as_dictionary::<UInt32Type>().keys().values())
                }
                DataType::UInt64 => {
                    KeySlice::U64(arr.as_dictionary::<UInt64Type>().keys().values())
                }
                _ => return None,
            },
            _ => return None,
        };
        Some(Keys {
            keys,
            last: n_values.saturating_sub(1) as u64,
        })
    }

    /// The dictionary index at row i (negative keys read as huge, so they clamp too).
    #[inline]
    fn get(&self, i: usize) -> usize {
        let k = match self.keys {
            KeySlice::I8(v) => v[i] as u64,
            KeySlice::I16(v) => v[i] as u64,
            KeySlice::I32(v) => v[i] as u64,
            KeySlice::I64(v) => v[i] as u64,
            KeySlice::U8(v) => v[i] as u64,
            KeySlice::U16(v) => v[i] as u64,
            KeySlice::U32(v) => v[i] as u64,
            KeySlice::U64(v) => v[i],
        };
        k.min(self.last) as usize
    }
}

/// A string column in any of Arrow's encodings.
pub(crate) enum Strs<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
    Dict {
        keys: Keys<'a>,
        nulls: Option<NullBuffer>,
        values: Box<Strs<'a>>,
        slot: usize,
    },
}

impl<'a> Strs<'a> {
    fn new(column: &str, arr: &'a ArrayRef, slots: &mut Vec<usize>) -> Result<Self> {
        Self::from_array(column, arr.as_ref(), slots)
    }

    fn from_array(column: &str, arr: &'a dyn Array, slots: &mut Vec<usize>) -> Result<Self> {
        match arr.data_type() {
            DataType::Utf8 => Ok(Strs::Utf8(arr.as_string::<i32>())),
            DataType::LargeUtf8 => Ok(Strs::Large(arr.as_string::<i64>())),
            DataType::Utf8View => Ok(Strs::View(arr.as_string_view())),
            DataType::Dictionary(_, value)
                if matches!(
                    value.as_ref(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) =>
            {
                let dict = arr
                    .as_any_dictionary_opt()
                    .ok_or_else(|| wrong(column, "a string", arr.data_type()))?;
                let n_values = dict.values().len();
                let keys = Keys::new(arr, n_values)
                    .ok_or_else(|| wrong(column, "a string", arr.data_type()))?;
                let values = Strs::from_array(column, dict.values().as_ref(), slots)?;
                let nulls = if n_values == 0 {
                    // an empty dictionary can only back null keys
                    Some(NullBuffer::new_null(arr.len()))
                } else {
                    dict.keys().logical_nulls()
                };
                slots.push(n_values);
                Ok(Strs::Dict {
                    keys,
                    nulls,
                    values: Box::new(values),
                    slot: slots.len() - 1,
                })
            }
            other => Err(wrong(column, "a string", other)),
        }
    }

    /// The raw string at row i, None if null.
    #[inline]
    fn raw(&self, i: usize) -> Option<&'a str> {
        match self {
            Strs::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            Strs::Large(a) => a.is_valid(i).then(|| a.value(i)),
            Strs::View(a) => a.is_valid(i).then(|| a.value(i)),
            Strs::Dict {
                keys,
                nulls,
                values,
                ..
            } => {
                if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                    None
                } else {
                    values.raw(keys.get(i))
                }
            }
        }
    }

    /// The dictionary cache slot and keys, when this is a dictionary of plain strings.
    fn dict_keys(&self) -> Option<(usize, &Keys<'a>, Option<&NullBuffer>)> {
        match self {
            Strs::Dict {
                keys,
                nulls,
                values,
                slot,
            } if !matches!(**values, Strs::Dict { .. }) => Some((*slot, keys, nulls.as_ref())),
            _ => None,
        }
    }
}

/// How rows' strings become interned ids: by interning as they come (`Ctx`, one thread), or by
/// looking up dictionaries resolved beforehand (`Frozen`, any number of threads).
pub(crate) trait Lookup {
    /// The interned id of the normalised string at row i; None if null or empty.
    fn id(&mut self, s: &Strs<'_>, i: usize) -> Option<u32>;
    fn response_type(&mut self, id: u32) -> Option<u8>;
}

impl Lookup for Ctx<'_> {
    #[inline]
    fn id(&mut self, s: &Strs<'_>, i: usize) -> Option<u32> {
        let id = match s {
            Strs::Dict {
                keys,
                nulls,
                values,
                slot,
            } => {
                if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                    return None;
                }
                let k = keys.get(i);
                let cached = self.dict[*slot][k];
                if cached != UNSET {
                    cached
                } else {
                    let id = match values.raw(k) {
                        Some(s) => self.state.resolve_raw(s, &mut self.scratch),
                        None => EMPTY,
                    };
                    self.dict[*slot][k] = id;
                    id
                }
            }
            plain => match plain.raw(i) {
                Some(s) => self.state.resolve_raw(s, &mut self.scratch),
                None => return None,
            },
        };
        (id != EMPTY).then_some(id)
    }

    fn response_type(&mut self, id: u32) -> Option<u8> {
        self.state.response_type_of(id)
    }
}

/// Read-only lookups for a batch whose tracked columns are all dictionaries, every entry of
/// which has been resolved (`Ctx::resolve_dictionaries`).
pub(crate) struct Frozen<'s> {
    state: &'s State,
    dict: &'s [Vec<u32>],
    /// The response types looked up so far, by id: a batch has a handful, and a scan of them
    /// costs less than the hash lookup every row would otherwise make.
    rts: SmallVec<[(u32, Option<u8>); RT_MEMO]>,
}

/// Response-type ids `Frozen` remembers (the schema has seven response types).
const RT_MEMO: usize = 8;

impl Lookup for Frozen<'_> {
    #[inline]
    fn id(&mut self, s: &Strs<'_>, i: usize) -> Option<u32> {
        // only dictionaries reach here (BatchView::frozen_ok)
        let (slot, keys, nulls) = s.dict_keys()?;
        if nulls.is_some_and(|n| n.is_null(i)) {
            return None;
        }
        let id = self.dict[slot][keys.get(i)];
        (id != EMPTY && id != UNSET).then_some(id)
    }

    #[inline]
    fn response_type(&mut self, id: u32) -> Option<u8> {
        if let Some(&(_, rt)) = self.rts.iter().find(|&&(i, _)| i == id) {
            return rt;
        }
        let rt = self.state.known_response_type(id);
        if self.rts.len() < RT_MEMO {
            self.rts.push((id, rt));
        }
        rt
    }
}

pub(crate) enum Offsets<'a> {
    I32(&'a [i32]),
    I64(&'a [i64]),
}

/// A tracked column: absent (all null), one string per row, or a list of strings per row.
pub(crate) enum Col<'a> {
    Missing,
    Scalar(Strs<'a>),
    List {
        offsets: Offsets<'a>,
        nulls: Option<&'a NullBuffer>,
        child: Strs<'a>,
    },
}

impl<'a> Col<'a> {
    #[inline]
    fn collect(&self, i: usize, ctx: &mut impl Lookup, out: &mut SmallVec<[u32; 8]>) {
        out.clear();
        match self {
            Col::Missing => {}
            Col::Scalar(s) => out.extend(ctx.id(s, i)),
            Col::List {
                offsets,
                nulls,
                child,
            } => {
                if nulls.is_some_and(|n| n.is_null(i)) {
                    return;
                }
                let (lo, hi) = match offsets {
                    Offsets::I32(o) => (o[i] as usize, o[i + 1] as usize),
                    Offsets::I64(o) => (o[i] as usize, o[i + 1] as usize),
                };
                for j in lo..hi {
                    out.extend(ctx.id(child, j));
                }
                // a value counts once per conversation
                if out.len() > 1 {
                    out.sort_unstable();
                    out.dedup();
                }
            }
        }
    }

    /// The column's strings, if it holds any.
    fn strs(&self) -> Option<&Strs<'a>> {
        match self {
            Col::Missing => None,
            Col::Scalar(s) => Some(s),
            Col::List { child, .. } => Some(child),
        }
    }
}

fn wrong(column: &str, expected: &'static str, found: &DataType) -> EngineError {
    EngineError::WrongType {
        column: column.into(),
        expected,
        found: found.to_string(),
    }
}

/// Column accessors for one batch, shared read-only by the worker threads.
pub(crate) struct BatchView<'a> {
    pub rows: usize,
    conversation_id: Strs<'a>,
    user_id: Option<Strs<'a>>,
    subjective: Option<&'a BooleanArray>,
    cols: Vec<Col<'a>>,
    /// Sizes of the dictionary caches each worker needs.
    pub dict_slots: Vec<usize>,
}

impl<'a> BatchView<'a> {
    pub fn new(batch: &'a RecordBatch, plan: &Plan) -> Result<Self> {
        let schema = batch.schema_ref();
        let get = |name: &str| schema.index_of(name).ok().map(|i| batch.column(i));
        for name in required_columns() {
            if get(name).is_none() {
                return Err(EngineError::MissingColumn(name.into()));
            }
        }
        let mut slots = Vec::new();
        let conversation_id = Strs::new(
            "conversation_id",
            get("conversation_id").expect("checked above"),
            &mut slots,
        )?;
        let user_id = match get("user_id") {
            Some(a) if a.data_type() != &DataType::Null => {
                Some(Strs::new("user_id", a, &mut slots)?)
            }
            _ => None,
        };
        let subjective = match get("subjective") {
            None => None,
            Some(a) if a.data_type() == &DataType::Null => None,
            Some(a) => Some(
                a.as_boolean_opt()
                    .ok_or_else(|| wrong("subjective", "a boolean", a.data_type()))?,
            ),
        };
        let mut cols = Vec::with_capacity(plan.columns.len());
        for name in &plan.columns {
            let col = match get(name) {
                None => {
                    if plan.required_extra.contains(name) {
                        return Err(EngineError::MissingColumn(name.clone()));
                    }
                    Col::Missing
                }
                Some(a) if a.data_type() == &DataType::Null => Col::Missing,
                Some(a) => column(name, a, &mut slots)?,
            };
            cols.push(col);
        }
        Ok(BatchView {
            rows: batch.num_rows(),
            conversation_id,
            user_id,
            subjective,
            cols,
            dict_slots: slots,
        })
    }

    /// Whether every tracked column is absent or a dictionary of plain strings, so that the
    /// rows can be resolved read-only once the dictionaries are (see `resolve`).
    fn frozen_ok(&self) -> bool {
        self.cols
            .iter()
            .all(|c| c.strs().is_none_or(|s| s.dict_keys().is_some()))
    }
}

fn column<'a>(name: &str, arr: &'a ArrayRef, slots: &mut Vec<usize>) -> Result<Col<'a>> {
    let want_list = expects_list(name);
    let list = match arr.data_type() {
        DataType::List(_) => {
            let l = arr.as_list::<i32>();
            Some((Offsets::I32(l.value_offsets()), l.nulls(), l.values()))
        }
        DataType::LargeList(_) => {
            let l = arr.as_list::<i64>();
            Some((Offsets::I64(l.value_offsets()), l.nulls(), l.values()))
        }
        _ => None,
    };
    match (list, want_list) {
        (Some(_), Some(false)) => Err(wrong(name, "a string", arr.data_type())),
        (None, Some(true)) => Err(wrong(name, "a list of strings", arr.data_type())),
        // what pyarrow infers for lists that are all empty or all null: no values, as if absent
        (Some((_, _, values)), _) if values.data_type() == &DataType::Null => Ok(Col::Missing),
        (Some((offsets, nulls, values)), _) => {
            let child = Strs::from_array(name, values.as_ref(), slots)
                .map_err(|_| wrong(name, "a list of strings", arr.data_type()))?;
            Ok(Col::List {
                offsets,
                nulls,
                child,
            })
        }
        (None, _) => Ok(Col::Scalar(Strs::new(name, arr, slots)?)),
    }
}

/// Mutable context for resolving one batch's strings.
pub(crate) struct Ctx<'s> {
    pub state: &'s mut State,
    dict: Vec<Vec<u32>>,
    scratch: String,
}

impl<'s> Ctx<'s> {
    pub(crate) fn new(state: &'s mut State, view: &BatchView<'_>) -> Self {
        Ctx {
            state,
            dict: view.dict_slots.iter().map(|&n| vec![UNSET; n]).collect(),
            scratch: String::new(),
        }
    }

    /// Interns every entry of the tracked columns' dictionaries, and learns which of the
    /// response-type column's are response types, so that rows can be resolved read-only.
    fn resolve_dictionaries(&mut self, view: &BatchView<'_>) {
        for (c, col) in view.cols.iter().enumerate() {
            let Some(Strs::Dict { values, slot, .. }) = col.strs() else {
                continue;
            };
            for k in 0..self.dict[*slot].len() {
                let id = match values.raw(k) {
                    Some(s) => self.state.resolve_raw(s, &mut self.scratch),
                    None => EMPTY,
                };
                self.dict[*slot][k] = id;
                if c == RT && id != EMPTY {
                    self.state.response_type_of(id);
                }
            }
        }
    }
}

/// One batch's analysed rows as interned ids, column by column (offsets + ids per column),
/// with each row's user hash and response type. Counting reads only this, so that every table
/// can be counted on its own thread with no shared mutable state.
#[derive(Clone, Default)]
pub(crate) struct Resolved {
    pub users: Vec<UserId>,
    pub rts: Vec<u8>,
    offsets: Vec<Vec<u32>>,
    ids: Vec<Vec<u32>>,
}

impl Resolved {
    pub(crate) fn reset(&mut self, n_columns: usize) {
        self.users.clear();
        self.rts.clear();
        self.offsets.resize_with(n_columns, Vec::new);
        self.ids.resize_with(n_columns, Vec::new);
        for (o, ids) in self.offsets.iter_mut().zip(self.ids.iter_mut()) {
            o.clear();
            o.push(0);
            ids.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Column c, for reading many rows (its buffers found once, not per row).
    #[inline]
    pub fn column(&self, c: usize) -> ResolvedColumn<'_> {
        ResolvedColumn {
            offsets: &self.offsets[c],
            ids: &self.ids[c],
        }
    }

    /// The keys of every analysed row in column c, in row order.
    #[inline]
    pub fn rows(&self, c: usize) -> impl Iterator<Item = &[u32]> + '_ {
        let ids = &self.ids[c];
        self.offsets[c]
            .windows(2)
            .map(move |w| &ids[w[0] as usize..w[1] as usize])
    }
}

/// One column of a `Resolved`.
#[derive(Clone, Copy)]
pub(crate) struct ResolvedColumn<'r> {
    offsets: &'r [u32],
    ids: &'r [u32],
}

impl<'r> ResolvedColumn<'r> {
    /// The keys of analysed row r: sorted, distinct.
    #[inline]
    pub fn row(&self, r: usize) -> &'r [u32] {
        &self.ids[self.offsets[r] as usize..self.offsets[r + 1] as usize]
    }
}

/// Row-level totals of a range of rows, added to the state once the range is resolved.
#[derive(Default)]
pub(crate) struct Totals {
    n_rows: u64,
    n_conversations: u64,
    n_not_subjective: u64,
    with_any: Vec<u64>,
    sum_len: Vec<u64>,
    pub rejects: Vec<Reject>,
}

impl Totals {
    pub(crate) fn add_to(self, st: &mut State) -> Vec<Reject> {
        st.n_rows += self.n_rows;
        st.n_conversations += self.n_conversations;
        st.n_not_subjective += self.n_not_subjective;
        for (a, b) in st.with_any.iter_mut().zip(&self.with_any) {
            *a += b;
        }
        for (a, b) in st.sum_len.iter_mut().zip(&self.sum_len) {
            *a += b;
        }
        for r in &self.rejects {
            *st.rejects.entry(r.reason.to_string()).or_insert(0) += 1;
        }
        self.rejects
    }

    fn reject(&mut self, row: usize, conversation_id: Option<&str>, reason: &'static str) {
        self.rejects.push(Reject {
            row: row as u64,
            conversation_id: conversation_id.map(str::to_owned),
            reason,
        });
    }
}

/// Below this many rows a batch is resolved on one thread.
const PARALLEL_RESOLVE_MIN_ROWS: usize = 16_384;

/// Validates and resolves every row of the batch into `out` (one `Resolved` per range of rows),
/// updating the row-level totals; returns the rejected rows in row order.
///
/// Interning needs the one shared interner, so rows are resolved in parallel only when every
/// tracked column is dictionary-encoded (as `valuescope analyze` reads Parquet): the
/// dictionaries are interned first, on this thread, and the rows then only look them up.
pub(crate) fn resolve(
    state: &mut State,
    view: &BatchView<'_>,
    out: &mut Vec<Resolved>,
) -> Vec<Reject> {
    let n_columns = view.cols.len();
    let mut ctx = Ctx::new(state, view);
    let threads = rayon::current_num_threads();
    if view.rows < PARALLEL_RESOLVE_MIN_ROWS || threads < 2 || !view.frozen_ok() {
        out.resize_with(1, Resolved::default);
        out[0].reset(n_columns);
        let mut totals = Totals::default();
        resolve_rows(view, &mut ctx, &mut out[0], &mut totals, 0, view.rows);
        return totals.add_to(state);
    }
    ctx.resolve_dictionaries(view);
    let Ctx { dict, .. } = ctx;
    // a few ranges per thread, so that an uneven range does not hold the others up
    let pieces = (threads * 2).min(view.rows.div_ceil(PARALLEL_RESOLVE_MIN_ROWS / 4));
    let step = view.rows.div_ceil(pieces);
    out.resize_with(pieces, Resolved::default);
    let frozen: &State = state;
    let totals: Vec<Totals> = out
        .par_iter_mut()
        .enumerate()
        .map(|(p, res)| {
            res.reset(n_columns);
            let mut totals = Totals::default();
            let mut look = Frozen {
                state: frozen,
                dict: &dict,
                rts: SmallVec::new(),
            };
            let (lo, hi) = (p * step, ((p + 1) * step).min(view.rows));
            resolve_columns(view, &mut look, res, &mut totals, lo, hi);
            totals
        })
        .collect();
    let mut rejects = Vec::new();
    for t in totals {
        rejects.extend(t.add_to(state));
    }
    rejects
}

/// The checks every row passes before its values count, shared by both ways of resolving:
/// a null id or a missing or unknown response type rejects it, `subjective == false` skips it.
/// For a kept row: its response type (id and index) and its user.
#[inline]
fn admit_row(
    view: &BatchView<'_>,
    look: &mut impl Lookup,
    i: usize,
    totals: &mut Totals,
    ids: &mut SmallVec<[u32; 8]>,
) -> Option<(u32, u8, UserId)> {
    totals.n_rows += 1;
    let Some(conversation) = view.conversation_id.raw(i) else {
        totals.reject(i, None, Reject::NULL_ID);
        return None;
    };
    if view
        .subjective
        .is_some_and(|s| s.is_valid(i) && !s.value(i))
    {
        totals.n_not_subjective += 1;
        return None;
    }
    view.cols[RT].collect(i, look, ids);
    let Some(&rt_id) = ids.first() else {
        totals.reject(i, Some(conversation), Reject::NULL_RESPONSE_TYPE);
        return None;
    };
    let Some(rt) = look.response_type(rt_id) else {
        totals.reject(i, Some(conversation), Reject::UNKNOWN_RESPONSE_TYPE);
        return None;
    };
    let user = match view.user_id.as_ref().and_then(|u| u.raw(i)) {
        Some(u) => user_hash(u.as_bytes()),
        None => conversation_user_hash(conversation.as_bytes()),
    };
    totals.n_conversations += 1;
    Some((rt_id, rt, user))
}

/// Validates and resolves rows lo..hi of the batch into `out` (appending).
fn resolve_rows(
    view: &BatchView<'_>,
    ctx: &mut impl Lookup,
    out: &mut Resolved,
    totals: &mut Totals,
    lo: usize,
    hi: usize,
) {
    totals.with_any.resize(view.cols.len(), 0);
    totals.sum_len.resize(view.cols.len(), 0);
    let mut ids: SmallVec<[u32; 8]> = SmallVec::new();
    for i in lo..hi {
        let Some((rt_id, rt, user)) = admit_row(view, ctx, i, totals, &mut ids) else {
            continue;
        };
        for (c, col) in view.cols.iter().enumerate() {
            if c != RT {
                col.collect(i, ctx, &mut ids);
            } else {
                ids.clear();
                ids.push(rt_id);
            }
            if !ids.is_empty() {
                totals.with_any[c] += 1;
                totals.sum_len[c] += ids.len() as u64;
            }
            out.ids[c].extend_from_slice(&ids);
            out.offsets[c].push(out.ids[c].len() as u32);
        }
        out.users.push(user);
        out.rts.push(rt);
    }
}

/// A dictionary key type: its value as an index (negative keys read as huge, so they clamp).
trait KeyInt: Copy {
    fn index(self) -> u64;
}

macro_rules! key_int {
    ($($t:ty),*) => {$(
        impl KeyInt for $t {
            #[inline]
            fn index(self) -> u64 {
                self as u64
            }
        }
    )*};
}
key_int!(i8, i16, i32, i64, u8, u16, u32, u64);

/// Calls `$f(slice, $args...)` with the dictionary keys as their own integer type, so that the
/// loops inside are compiled once per key type instead of matching on it for every value.
macro_rules! with_keys {
    ($keys:expr, $f:ident($($arg:expr),*)) => {
        match $keys {
            KeySlice::I8(k) => $f(k, $($arg),*),
            KeySlice::I16(k) => $f(k, $($arg),*),
            KeySlice::I32(k) => $f(k, $($arg),*),
            KeySlice::I64(k) => $f(k, $($arg),*),
            KeySlice::U8(k) => $f(k, $($arg),*),
            KeySlice::U16(k) => $f(k, $($arg),*),
            KeySlice::U32(k) => $f(k, $($arg),*),
            KeySlice::U64(k) => $f(k, $($arg),*),
        }
    };
}

/// Where one column's ids go, and its totals.
struct ColumnOut<'o> {
    ids: &'o mut Vec<u32>,
    offsets: &'o mut Vec<u32>,
    with_any: &'o mut u64,
    sum_len: &'o mut u64,
}

impl ColumnOut<'_> {
    /// Closes the current row: its ids are those appended since `start`, made distinct.
    /// Called for every row of every list column: a call's own cost counts.
    #[inline(always)]
    fn end_row(&mut self, start: usize) {
        let row = &mut self.ids[start..];
        let mut len = row.len();
        if len > 1 {
            // a value counts once per conversation
            row.sort_unstable();
            let mut w = 1;
            for r in 1..len {
                if row[r] != row[w - 1] {
                    row[w] = row[r];
                    w += 1;
                }
            }
            len = w;
            self.ids.truncate(start + len);
        }
        if len > 0 {
            *self.with_any += 1;
            *self.sum_len += len as u64;
        }
        self.offsets.push(self.ids.len() as u32);
    }
}

#[inline]
fn cached<K: KeyInt>(keys: &[K], last: u64, cache: &[u32], i: usize) -> Option<u32> {
    let id = cache[keys[i].index().min(last) as usize];
    (id != EMPTY && id != UNSET).then_some(id)
}

fn scalar_ids<K: KeyInt>(
    keys: &[K],
    last: u64,
    nulls: Option<&NullBuffer>,
    cache: &[u32],
    rows: &[u32],
    out: &mut ColumnOut<'_>,
) {
    // at most one id per row: nothing to sort or make distinct
    let (mut with_any, ids, offsets) = (0, &mut *out.ids, &mut *out.offsets);
    for &i in rows {
        let i = i as usize;
        if !nulls.is_some_and(|n| n.is_null(i)) {
            if let Some(id) = cached(keys, last, cache, i) {
                ids.push(id);
                with_any += 1;
            }
        }
        offsets.push(ids.len() as u32);
    }
    *out.with_any += with_any;
    *out.sum_len += with_any;
}

struct ListOf<'a, 'b> {
    offsets: &'b Offsets<'a>,
    nulls: Option<&'a NullBuffer>,
    child_nulls: Option<&'b NullBuffer>,
}

fn list_ids<K: KeyInt>(
    keys: &[K],
    last: u64,
    list: &ListOf<'_, '_>,
    cache: &[u32],
    rows: &[u32],
    out: &mut ColumnOut<'_>,
) {
    for &i in rows {
        let i = i as usize;
        let start = out.ids.len();
        if !list.nulls.is_some_and(|n| n.is_null(i)) {
            let (lo, hi) = match list.offsets {
                Offsets::I32(o) => (o[i] as usize, o[i + 1] as usize),
                Offsets::I64(o) => (o[i] as usize, o[i + 1] as usize),
            };
            for j in lo..hi {
                if !list.child_nulls.is_some_and(|n| n.is_null(j)) {
                    out.ids.extend(cached(keys, last, cache, j));
                }
            }
        }
        out.end_row(start);
    }
}

/// As `resolve_rows` with a `Frozen` lookup, a column at a time: the rows are checked first,
/// then each column's ids are looked up for the kept rows in one loop per column, compiled for
/// its key type.
fn resolve_columns(
    view: &BatchView<'_>,
    look: &mut Frozen<'_>,
    out: &mut Resolved,
    totals: &mut Totals,
    lo: usize,
    hi: usize,
) {
    let n_columns = view.cols.len();
    totals.with_any.resize(n_columns, 0);
    totals.sum_len.resize(n_columns, 0);
    let mut kept: Vec<u32> = Vec::with_capacity(hi - lo);
    let mut rt_ids: Vec<u32> = Vec::with_capacity(hi - lo);
    let mut ids: SmallVec<[u32; 8]> = SmallVec::new();
    for i in lo..hi {
        let Some((rt_id, rt, user)) = admit_row(view, look, i, totals, &mut ids) else {
            continue;
        };
        kept.push(i as u32);
        rt_ids.push(rt_id);
        out.users.push(user);
        out.rts.push(rt);
    }
    for (c, col) in view.cols.iter().enumerate() {
        let (with_any, sum_len) = (&mut totals.with_any[c], &mut totals.sum_len[c]);
        let mut o = ColumnOut {
            ids: &mut out.ids[c],
            offsets: &mut out.offsets[c],
            with_any,
            sum_len,
        };
        if c == RT {
            for &id in &rt_ids {
                o.ids.push(id);
                o.offsets.push(o.ids.len() as u32);
            }
            *o.with_any += rt_ids.len() as u64;
            *o.sum_len += rt_ids.len() as u64;
            continue;
        }
        match col {
            Col::Missing => kept.iter().for_each(|_| o.end_row(o.ids.len())),
            Col::Scalar(s) => {
                let (slot, keys, nulls) = s.dict_keys().expect("checked by frozen_ok");
                let cache = &look.dict[slot];
                with_keys!(
                    &keys.keys,
                    scalar_ids(keys.last, nulls, cache, &kept, &mut o)
                );
            }
            Col::List {
                offsets,
                nulls,
                child,
            } => {
                let (slot, keys, child_nulls) = child.dict_keys().expect("checked by frozen_ok");
                let list = ListOf {
                    offsets,
                    nulls: *nulls,
                    child_nulls,
                };
                let cache = &look.dict[slot];
                with_keys!(&keys.keys, list_ids(keys.last, &list, cache, &kept, &mut o));
            }
        }
    }
}

/// Conversations and users per key of column c.
pub(crate) fn count_keys(map: &mut HashMap<u32, Counter>, all: &[Resolved], c: usize, cap: u32) {
    for res in all {
        for (keys, &user) in res.rows(c).zip(&res.users) {
            for &k in keys {
                update(map, k, |c| c.add(user, cap));
            }
        }
    }
}

/// Cells of the table crossing columns a and b; with `MIX`, each cell also counts its
/// conversations by response type (a constant, so that each kind of table gets a loop of its
/// own).
pub(crate) fn count_table<const MIX: bool>(
    cells: &mut Cells,
    scatter: &mut Scatter,
    all: &[Resolved],
    (a, b): (usize, usize),
    skip_if: Option<usize>,
    cap: u32,
) {
    let sort = cells.wants_sorting();
    if sort {
        scatter.clear();
    }
    for res in all {
        let skip = skip_if.map(|c| res.column(c));
        let rows = res
            .rows(a)
            .zip(res.rows(b))
            .zip(res.users.iter().zip(&res.rts));
        for (r, ((xs, ys), (&user, &rt))) in rows.enumerate() {
            if skip.is_some_and(|s| !s.row(r).is_empty()) {
                continue;
            }
            for &x in xs {
                for &y in ys {
                    if sort {
                        scatter.push(pack(x, y), user, rt);
                    } else {
                        cells.add(pack(x, y), user, cap, MIX.then_some(rt));
                    }
                }
            }
        }
    }
    if sort {
        cells.apply(scatter, cap, MIX);
    }
}

/// Response types, mirroring and per-model totals.
pub(crate) struct Misc<'a> {
    pub rt_all: &'a mut [Counter],
    pub rt_with_human: &'a mut [Counter],
    pub rt_mirrored: &'a mut [Counter],
    pub rt_explicit: &'a mut [Counter],
    pub models: &'a mut HashMap<u32, ModelStats>,
}

pub(crate) fn count_misc(m: Misc<'_>, all: &[Resolved], cap: u32) {
    for res in all {
        let (explicit, ai_col, human_col, model_col) = (
            res.column(EXPLICIT),
            res.column(AI),
            res.column(HUMAN),
            res.column(MODEL),
        );
        for (r, (&user, &rt)) in res.users.iter().zip(&res.rts).enumerate() {
            let rt = rt as usize;
            m.rt_all[rt].add(user, cap);
            if !explicit.row(r).is_empty() {
                m.rt_explicit[rt].add(user, cap);
            }
            let (ai, human) = (ai_col.row(r), human_col.row(r));
            if !human.is_empty() {
                m.rt_with_human[rt].add(user, cap);
                if sorted_intersect(ai, human) {
                    m.rt_mirrored[rt].add(user, cap);
                }
            }
            if let Some(&model) = model_col.row(r).first() {
                update(m.models, model, |ms| {
                    if !ai.is_empty() {
                        ms.with_ai.add(user, cap);
                    }
                    if !human.is_empty() {
                        ms.with_human.add(user, cap);
                    }
                    ms.sum_ai += ai.len() as u64;
                    ms.sum_human += human.len() as u64;
                });
            }
        }
    }
}

/// Counts the model strata of a batch. Conversations without a model are in no comparison.
pub(crate) fn count_model_strata(
    by_cluster: &mut ModelStrata,
    by_task: &mut ModelStrata,
    all: &[Resolved],
    cols: StratumColumns,
) {
    for res in all {
        let (ai_col, cluster_col) = (res.column(AI), cols.cluster.map(|c| res.column(c)));
        let task_col = cols.task.map(|c| res.column(c));
        for (r, (models, &rt)) in res.rows(MODEL).zip(&res.rts).enumerate() {
            let Some(&model) = models.first() else {
                continue;
            };
            let ai = ai_col.row(r);
            let cluster = cluster_col.and_then(|c| c.row(r).first().copied());
            by_cluster.add(model, cluster.unwrap_or(NO_STRATUM), rt, ai);
            if cluster.is_none() {
                if let Some(c) = task_col {
                    let task = c.row(r).first().copied().unwrap_or(NO_STRATUM);
                    by_task.add(model, task, rt, ai);
                }
            }
        }
    }
}

fn sorted_intersect(a: &[u32], b: &[u32]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use crate::engine::plan::{Reject, AI, HUMAN, MODEL};
    use crate::engine::{Engine, EngineConfig};
    use crate::testing::{batch, Row};

    /// Distinct users are counted exactly up to `min_users` (then the count saturates).
    fn engine() -> Engine {
        Engine::new(EngineConfig {
            min_conversations: 1,
            min_users: 10,
            ..Default::default()
        })
        .unwrap()
    }

    /// Counts of each key of a tracked column: (normalised string, conversations), sorted.
    fn counts(e: &Engine, col: usize) -> Vec<(String, u64)> {
        let st = e.state();
        let mut v: Vec<(String, u64)> = st.keys[col]
            .iter()
            .map(|(&k, c)| (st.string(k).to_string(), c.n))
            .collect();
        v.sort();
        v
    }

    fn owned(v: &[(&str, u64)]) -> Vec<(String, u64)> {
        v.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    }

    #[test]
    fn a_small_batch_counts_each_value_once_per_conversation() {
        let rows = [
            Row {
                conversation_id: Some("a"),
                user_id: Some("u1"),
                model: Some("m1"),
                ai_values: &["Honesty", "honesty ", "clarity"],
                human_values: &["honesty"],
                response_type: Some("strong support"),
                ..Row::default()
            },
            Row {
                conversation_id: Some("b"),
                user_id: Some("u1"),
                model: Some("m2"),
                ai_values: &["HONESTY"],
                response_type: Some("Mild  Support"),
                ..Row::default()
            },
            Row {
                conversation_id: Some("c"),
                user_id: Some("u2"),
                model: Some("m1"),
                ai_values: &["clarity", ""],
                human_values: &["efficiency", "  "],
                response_type: Some("reframing"),
                ..Row::default()
            },
        ];
        let mut e = engine();
        assert!(e.update(&batch(&rows)).unwrap().is_empty());
        // by hand: honesty in a and b (a twice, spelled two ways), clarity in a and c
        assert_eq!(counts(&e, AI), owned(&[("clarity", 2), ("honesty", 2)]));
        assert_eq!(
            counts(&e, HUMAN),
            owned(&[("efficiency", 1), ("honesty", 1)])
        );
        assert_eq!(counts(&e, MODEL), owned(&[("m1", 2), ("m2", 1)]));
        let st = e.state();
        assert_eq!((st.n_rows, st.n_conversations), (3, 3));
        // honesty: conversations a and b, both of user u1; clarity: users u1 and u2
        let users = |v: &str| {
            let id = st.strings.iter().position(|s| s == v).unwrap() as u32;
            st.keys[AI][&id].users(10)
        };
        assert_eq!((users("honesty"), users("clarity")), (1, 2));
        // AI values per conversation after dropping repeats and blanks: 2 + 1 + 1; human: 1 + 1
        assert_eq!((st.sum_len[AI], st.sum_len[HUMAN]), (4, 2));
        assert_eq!((st.with_any[AI], st.with_any[HUMAN]), (3, 2));
        // response types in the design's order: strong support, mild support, ..., reframing
        let rt: Vec<u64> = st.rt_all.iter().map(|c| c.n).collect();
        assert_eq!(rt, [1, 1, 0, 1, 0, 0, 0]);
        // a row with human values is mirrored when an AI value is one of them: a (honesty)
        let mirrored: u64 = st.rt_mirrored.iter().map(|c| c.n).sum();
        assert_eq!(mirrored, 1);
    }

    #[test]
    fn bad_rows_are_rejected_with_their_reason_and_nothing_else_is_lost() {
        let ok = |id| Row {
            conversation_id: Some(id),
            user_id: Some("u"),
            ai_values: &["honesty"],
            response_type: Some("neutral acknowledgment"),
            ..Row::default()
        };
        let rows = [
            ok("a"),
            Row {
                conversation_id: None,
                ..ok("")
            },
            Row {
                response_type: None,
                ..ok("c")
            },
            Row {
                response_type: Some("  "),
                ..ok("d")
            },
            Row {
                response_type: Some("wild enthusiasm"),
                ..ok("e")
            },
            ok("f"),
        ];
        let mut e = engine();
        let rejects = e.update(&batch(&rows)).unwrap();
        let got: Vec<(u64, Option<&str>, &str)> = rejects
            .iter()
            .map(|r| (r.row, r.conversation_id.as_deref(), r.reason))
            .collect();
        assert_eq!(
            got,
            [
                (1, None, Reject::NULL_ID),
                (2, Some("c"), Reject::NULL_RESPONSE_TYPE),
                (3, Some("d"), Reject::NULL_RESPONSE_TYPE),
                (4, Some("e"), Reject::UNKNOWN_RESPONSE_TYPE),
            ]
        );
        let st = e.state();
        // every row is either counted or rejected
        assert_eq!(st.n_rows, 6);
        assert_eq!(st.n_conversations + rejects.len() as u64, 6);
        assert_eq!(counts(&e, AI), owned(&[("honesty", 2)]));
        assert_eq!(st.rejects.values().sum::<u64>(), 4);
    }

    #[test]
    fn a_missing_or_mistyped_column_fails_the_batch_before_counting() {
        let good = batch(&[Row {
            conversation_id: Some("a"),
            ai_values: &["x"],
            response_type: Some("no values"),
            ..Row::default()
        }]);
        let mut e = engine();
        let without = good.project(&[0, 1, 2, 3, 5, 6]).unwrap(); // no ai_values
        let err = e.update(&without).unwrap_err().to_string();
        assert!(err.contains("'ai_values'"), "{err}");
        let swapped = arrow_array::RecordBatch::try_from_iter([
            ("conversation_id", good.column(0).clone()),
            ("ai_values", good.column(6).clone()), // a string where a list belongs
            ("human_values", good.column(5).clone()),
            ("response_type", good.column(6).clone()),
        ])
        .unwrap();
        let err = e.update(&swapped).unwrap_err().to_string();
        assert!(
            err.contains("'ai_values'") && err.contains("expected"),
            "{err}"
        );
        assert_eq!(e.n_rows(), 0);
    }
}

//! External aggregation for the co-occurrence tables, so that memory stays flat on any input.
//!
//! Table cells are the one part of the state that keeps growing with the input: every new pair
//! of a long-tail value with a task or another value is a new cell, and each must be kept
//! exactly (chi-square needs every count; the privacy rule needs every cell's users). When the
//! tables outgrow a memory budget their cells are appended to per-partition run files and the
//! maps are emptied. Reading merges one partition's runs at a time with `Counter::merge`, the
//! same exact merge that combines shards, so results equal an in-memory pass and memory stays
//! at the budget plus one partition.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashMap;

use super::cells::{Cells, Margins, PARTS};
use super::mix::Mix;
use super::state::unpack;
use super::users::{Counter, UserId};
use crate::error::{EngineError, Result};

/// Part buffers are flushed to their files at this size, bounding the memory a spill takes.
const FLUSH_AT: usize = 1 << 16;

fn damaged() -> EngineError {
    EngineError::Io("a spill file is damaged".into())
}

fn io_err(what: &str, e: io::Error) -> EngineError {
    EngineError::Io(format!("{what}: {e}"))
}

/// The spill directory and its run files; the directory is removed when this is dropped.
#[derive(Debug)]
pub struct Spill {
    dir: PathBuf,
    /// Bytes of table memory above which the engine spills.
    pub limit: usize,
    /// Per table: whether any cell has been written.
    written: Vec<bool>,
    /// Bytes written so far, for progress and benchmarks.
    pub bytes: u64,
    /// Times the tables were spilled.
    pub spills: u64,
    /// Per table: row totals, column totals and grand total of the cells written, summed as
    /// they are written, so that a table's margins need no pass over its files.
    sums: Vec<Margins>,
}

impl Spill {
    /// A fresh private directory under `base` for `n_tables` tables.
    pub fn new(base: &Path, limit: usize, n_tables: usize) -> Result<Spill> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "valuescope-spill-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = base.join(name);
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&dir)
            .map_err(|e| io_err("cannot create the spill directory", e))?;
        Ok(Spill {
            dir,
            limit,
            written: vec![false; n_tables],
            sums: vec![Margins::default(); n_tables],
            bytes: 0,
            spills: 0,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether table `t` has cells on disk.
    pub fn has(&self, t: usize) -> bool {
        self.written.get(t).copied().unwrap_or(false)
    }

    pub fn any(&self) -> bool {
        self.written.iter().any(|&w| w)
    }

    fn path(&self, t: usize, p: usize) -> PathBuf {
        self.dir.join(format!("t{t}-p{p}.cells"))
    }

    fn append(&mut self, t: usize, p: usize, buf: &mut Vec<u8>) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts
            .open(self.path(t, p))
            .map_err(|e| io_err("cannot write a spill file", e))?;
        f.write_all(buf)
            .map_err(|e| io_err("cannot write a spill file", e))?;
        self.bytes += buf.len() as u64;
        buf.clear();
        Ok(())
    }

    /// Appends every cell of table `t` to its partitions' run files.
    ///
    /// Record: key u64, conversations u64, id count u8, mix kind u8, ids u32 each, then the
    /// response-type mix: nothing (kind 0), its packed word (1) or its seven counts (2), u64
    /// each; all little endian. No ids with conversations means saturated, as in memory.
    pub fn write(&mut self, t: usize, cells: &Cells) -> Result<()> {
        let mut b: Vec<u8> = Vec::new();
        let mut sums = std::mem::take(&mut self.sums[t]);
        for p in 0..PARTS {
            for (&k, c) in cells.part(p) {
                let (a, col) = unpack(k);
                *sums.0.entry(a).or_insert(0) += c.n;
                *sums.1.entry(col).or_insert(0) += c.n;
                sums.2 += c.n;
                b.extend_from_slice(&k.to_le_bytes());
                b.extend_from_slice(&c.n.to_le_bytes());
                let ids = c.ids();
                b.push(ids.len() as u8);
                let mix = c.mix();
                let packed = mix.packed_word();
                b.push(match packed {
                    _ if mix.is_empty() => 0,
                    Some(_) => 1,
                    None => 2,
                });
                for &u in ids {
                    b.extend_from_slice(&u.to_le_bytes());
                }
                match packed {
                    _ if mix.is_empty() => {}
                    Some(w) => b.extend_from_slice(&w.to_le_bytes()),
                    None => mix
                        .counts()
                        .iter()
                        .for_each(|n| b.extend_from_slice(&n.to_le_bytes())),
                }
                if b.len() >= FLUSH_AT {
                    self.append(t, p, &mut b)?;
                }
            }
            self.append(t, p, &mut b)?;
        }
        self.sums[t] = sums;
        self.written[t] = true;
        Ok(())
    }

    /// Row totals, column totals and grand total of every cell of table `t` on disk.
    pub fn margins(&self, t: usize) -> &Margins {
        &self.sums[t]
    }

    /// Merges partition `p` of table `t` from disk into `into`.
    pub fn read(
        &self,
        t: usize,
        p: usize,
        cap: u32,
        into: &mut HashMap<u64, Counter>,
    ) -> Result<()> {
        self.records(t, p, |key, n, ids, mix| {
            let c = Counter::from_parts(n, ids, mix, cap).ok_or_else(damaged)?;
            Counter::merge_into(into, key, c, cap);
            Ok(())
        })
    }

    /// Calls `f(key, conversations, ids, mix)` for each record of partition `p` of table `t`,
    /// as written: a key spilled several times comes several times.
    pub fn records(
        &self,
        t: usize,
        p: usize,
        mut f: impl FnMut(u64, u64, &[UserId], Mix) -> Result<()>,
    ) -> Result<()> {
        if !self.has(t) {
            return Ok(());
        }
        let mut file = match File::open(self.path(t, p)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("cannot read a spill file", e)),
        };
        // Records are parsed straight from a chunk buffer: reading them field by field costs
        // more than the merge they feed. A record cut by the chunk's end waits for the next.
        let mut buf: Vec<u8> = Vec::with_capacity(2 * READ_CHUNK);
        let mut ids: Vec<UserId> = Vec::new();
        loop {
            let kept = buf.len();
            buf.resize(kept + READ_CHUNK, 0);
            let got = read_full(&mut file, &mut buf[kept..])
                .map_err(|e| io_err("cannot read a spill file", e))?;
            buf.truncate(kept + got);
            if got == 0 {
                // the end of the file may only fall between records
                return if buf.is_empty() {
                    Ok(())
                } else {
                    Err(damaged())
                };
            }
            let mut at = 0;
            while let Some(rec) = buf.get(at..).and_then(whole_record) {
                let key = u64::from_le_bytes(rec[..8].try_into().expect("8 bytes"));
                let n = u64::from_le_bytes(rec[8..16].try_into().expect("8 bytes"));
                let ids_end = HEAD + 4 * rec[16] as usize;
                ids.clear();
                ids.extend(
                    rec[HEAD..ids_end]
                        .chunks_exact(4)
                        .map(|b| UserId::from_le_bytes(b.try_into().expect("4 bytes"))),
                );
                let word = |i: usize| {
                    let at = ids_end + 8 * i;
                    u64::from_le_bytes(rec[at..at + 8].try_into().expect("8 bytes"))
                };
                let mix = match rec[HEAD - 1] {
                    0 => Mix::default(),
                    1 => Mix::from_word(word(0)).ok_or_else(damaged)?,
                    _ => Mix::from_counts(std::array::from_fn(word)),
                };
                f(key, n, &ids, mix)?;
                at += rec.len();
            }
            buf.drain(..at);
        }
    }
}

/// Bytes read from a spill file at a time. Unit tests use a tiny odd size, so that chunk ends
/// fall inside heads and inside ids of the records they read.
#[cfg(not(test))]
const READ_CHUNK: usize = 1 << 18;
#[cfg(test)]
const READ_CHUNK: usize = 61;

/// Bytes of a record's head: key, conversations, id count, mix kind.
const HEAD: usize = 18;

/// The record at the start of `b` if all of it is there: an 18-byte head whose last two
/// bytes say how many 4-byte ids and 8-byte mix words follow. A record of a mix kind no writer
/// uses is never whole, so that its file ends damaged.
#[inline]
fn whole_record(b: &[u8]) -> Option<&[u8]> {
    let words = match *b.get(HEAD - 1)? {
        0 => 0,
        1 => 1,
        2 => 7,
        _ => return None,
    };
    b.get(..HEAD + 4 * *b.get(16)? as usize + 8 * words)
}

/// Fills `buf` unless the file ends first; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl Drop for Spill {
    fn drop(&mut self) {
        // Run files hold user hashes and string ids; nothing of them should outlive the engine.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cells::part_of;

    #[test]
    fn records_round_trip_and_merge() {
        let base = std::env::temp_dir();
        let mut spill = Spill::new(&base, 0, 1).unwrap();
        let mut a = Cells::default();
        for k in 0..500u64 {
            let c = a.counter(k * 7919);
            for u in 0..(k % 12) as u32 {
                c.add(u, 10);
            }
            // cells with no mix, a packed one and a wide one
            match k % 3 {
                0 => c.add(99, 10),
                1 => c.add_rt(99, 10, (k % 7) as u8),
                _ => (0..600).for_each(|_| c.add_rt(99, 10, 4)),
            }
        }
        spill.write(0, &a).unwrap();
        spill.write(0, &a).unwrap();
        let mut back: HashMap<u64, Counter> = HashMap::new();
        for p in 0..PARTS {
            spill.read(0, p, 10, &mut back).unwrap();
        }
        assert_eq!(back.len(), a.len());
        for (k, c) in a.iter() {
            let mut twice = c.clone();
            twice.merge(c, 10);
            assert_eq!(&back[k], &twice);
        }
        // a file cut inside a record's ids is an error, not a short read or a panic
        let f = spill.path(0, part_of(0));
        let whole = std::fs::read(&f).unwrap();
        std::fs::write(&f, &whole[..whole.len() - 1]).unwrap();
        assert!(spill.read(0, part_of(0), 10, &mut HashMap::new()).is_err());
    }

    #[test]
    fn a_file_cut_inside_a_record_header_is_damaged() {
        let mut spill = Spill::new(&std::env::temp_dir(), 0, 1).unwrap();
        let mut c = Counter::default();
        (0..10).for_each(|u| c.add(u, 10)); // saturated, no mix: a record of its head alone
        let mut one = Cells::default();
        *one.counter(5) = c;
        spill.write(0, &one).unwrap();
        let f = spill.path(0, part_of(5));
        let whole = std::fs::read(&f).unwrap();
        assert_eq!(whole.len(), HEAD);
        for cut in 1..HEAD {
            std::fs::write(&f, &whole[..cut]).unwrap();
            let r = spill.read(0, part_of(5), 10, &mut HashMap::new());
            assert!(r.is_err(), "a file of {cut} bytes read as complete");
        }
    }
}

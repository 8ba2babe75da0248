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
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashMap;

use crate::cells::Cells;
pub use crate::cells::{map_bytes, part_of, PARTS};
use crate::error::{EngineError, Result};
use crate::users::{Counter, UserId};

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
    /// Record: key u64, conversations u64, id count u8, ids u32 each (little endian); no ids
    /// with conversations means saturated, as in memory.
    pub fn write(&mut self, t: usize, cells: &Cells) -> Result<()> {
        let mut b: Vec<u8> = Vec::new();
        for p in 0..PARTS {
            for (&k, c) in cells.part(p) {
                b.extend_from_slice(&k.to_le_bytes());
                b.extend_from_slice(&c.n.to_le_bytes());
                let ids = c.ids();
                b.push(ids.len() as u8);
                for &u in ids {
                    b.extend_from_slice(&u.to_le_bytes());
                }
                if b.len() >= FLUSH_AT {
                    self.append(t, p, &mut b)?;
                }
            }
            self.append(t, p, &mut b)?;
        }
        self.written[t] = true;
        Ok(())
    }

    /// Merges partition `p` of table `t` from disk into `into`.
    pub fn read(
        &self,
        t: usize,
        p: usize,
        cap: u32,
        into: &mut HashMap<u64, Counter>,
    ) -> Result<()> {
        self.records(t, p, |key, n, ids| {
            let c = Counter::from_parts(n, ids, cap).ok_or_else(damaged)?;
            into.entry(key).or_default().merge(&c, cap);
            Ok(())
        })
    }

    /// Calls `f(key, conversations, ids)` for each record of partition `p` of table `t`, as
    /// written: a key spilled several times comes several times.
    pub fn records(
        &self,
        t: usize,
        p: usize,
        mut f: impl FnMut(u64, u64, &[UserId]) -> Result<()>,
    ) -> Result<()> {
        if !self.has(t) {
            return Ok(());
        }
        let file = match File::open(self.path(t, p)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("cannot read a spill file", e)),
        };
        let mut r = BufReader::with_capacity(1 << 16, file);
        let mut head = [0u8; 17];
        let mut ids: Vec<UserId> = Vec::new();
        loop {
            // the end of the file may only fall between records
            match r.read(&mut head[..1]) {
                Ok(0) => return Ok(()),
                Ok(_) => r.read_exact(&mut head[1..]).map_err(|_| damaged())?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("cannot read a spill file", e)),
            }
            let key = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
            let n = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
            ids.clear();
            let mut id = [0u8; 4];
            for _ in 0..head[16] {
                r.read_exact(&mut id).map_err(|_| damaged())?;
                ids.push(UserId::from_le_bytes(id));
            }
            f(key, n, &ids)?;
        }
    }
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
            c.add(99, 10);
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
        (0..10).for_each(|u| c.add(u, 10)); // saturated: a record of 17 bytes, no ids
        let mut one = Cells::default();
        *one.counter(5) = c;
        spill.write(0, &one).unwrap();
        let f = spill.path(0, part_of(5));
        let whole = std::fs::read(&f).unwrap();
        assert_eq!(whole.len(), 17);
        for cut in 1..17 {
            std::fs::write(&f, &whole[..cut]).unwrap();
            let r = spill.read(0, part_of(5), 10, &mut HashMap::new());
            assert!(r.is_err(), "a file of {cut} bytes read as complete");
        }
    }
}

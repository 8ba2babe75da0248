//! Versioned binary form of an engine: magic, format version, CRC-32 of the payload, payload.
//! Decoding never panics: garbage, truncation and tampering all come back as errors.

use serde::{Deserialize, Serialize};

use super::plan::EngineConfig;
use super::state::State;
use super::Engine;
use crate::error::{EngineError, Result};

const MAGIC: &[u8; 8] = b"VSCOPE\0S";
/// 2 added the three-way counts (`State::strata`), the response-type mix of each counter
/// (`Counter::mix`) and `rt_explicit`. A version 1 state lacks
/// them, and they cannot be rebuilt from what it holds, so it is refused rather than read.
pub const FORMAT_VERSION: u16 = 2;
const HEADER: usize = 8 + 2 + 4;

#[derive(Serialize)]
struct SnapshotRef<'a> {
    config: &'a EngineConfig,
    state: &'a State,
}

#[derive(Deserialize)]
struct Snapshot {
    config: EngineConfig,
    state: State,
}

impl Engine {
    /// The whole state, spilled cells included (they are read back into memory for this).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let state = self.materialized()?;
        let payload = postcard::to_stdvec(&SnapshotRef {
            config: &self.config,
            state: &state,
        })
        .expect("serialising plain data into memory cannot fail");
        let mut out = Vec::with_capacity(HEADER + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Engine> {
        let corrupt = |m: &str| EngineError::Corrupt(m.to_string());
        if bytes.len() < HEADER {
            return Err(corrupt("too short to be a valuescope engine state"));
        }
        if &bytes[..8] != MAGIC {
            return Err(corrupt("not a valuescope engine state (bad magic)"));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != FORMAT_VERSION {
            let why = if version < FORMAT_VERSION {
                "; it lacks counts this build needs: rerun the analysis from the features"
            } else {
                "; it was written by a newer valuescope"
            };
            return Err(EngineError::Corrupt(format!(
                "state format version {version} is not supported (this build reads \
                 version {FORMAT_VERSION}){why}"
            )));
        }
        let crc = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
        let payload = &bytes[HEADER..];
        if crc32fast::hash(payload) != crc {
            return Err(corrupt("checksum mismatch (truncated or altered)"));
        }
        let snap: Snapshot = postcard::from_bytes(payload)
            .map_err(|e| EngineError::Corrupt(format!("undecodable payload: {e}")))?;
        let engine_probe = Engine::new(snap.config.clone())
            .map_err(|e| EngineError::Corrupt(format!("stored settings are invalid: {e}")))?;
        let mut state = snap.state;
        state
            .validate(
                engine_probe.plan.columns.len(),
                engine_probe.plan.tables.len(),
            )
            .map_err(|m| corrupt(&m))?;
        state.rebuild_index().map_err(|m| corrupt(&m))?;
        state.strata.densify();
        Engine::from_state(snap.config, state)
    }
}

//! Engine::from_bytes on arbitrary bytes: an error, never a panic; a decoded state must be
//! usable and re-encode to something that decodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use valuescope_core::Engine;

fuzz_target!(|data: &[u8]| {
    if let Ok(engine) = Engine::from_bytes(data) {
        let _ = engine.analysis();
        let again = Engine::from_bytes(&engine.to_bytes().expect("encodes"))
            .expect("re-encoded state decodes");
        let _ = again.analysis();
    }
});

#![no_main]
//! The composed state machine driven by an arbitrary event sequence.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    etcdv3_core::fuzzing::fuzz_machine(std::time::Instant::now(), data);
});

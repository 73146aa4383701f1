#![no_main]
//! Arbitrary datagrams (from the peer, the TURN server or strangers, with
//! live transaction ids patched in) into two running, connected agents.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cryptic_ice::fuzzing::agent_input(data);
});

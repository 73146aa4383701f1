//! Network bytes into the Opus decoder: `decode`, `decode_fec` and
//! `conceal` on arbitrary payloads never panic and always fill one frame.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cryptic_audio::fuzzing::opus_decode(data);
});

//! Per-message cost of the signaling wire format, beside its floors.
//!
//! * `signal_parse`: `utf8-floor` is `str::from_utf8` over the same bytes
//!   (what any text parser pays at least); `json-invite` is
//!   `Message::parse` of a `call_invite` with a 1 KiB sealed payload;
//!   `json-relay` / `binary-relay` parse one 200-byte relay frame in its JSON
//!   and its compact binary form (the ratio is why the binary form exists).
//! * `signal_serialize`: `copy-floor` copies the same bytes into a reused
//!   buffer; `json-invite` and `binary-relay` produce the wire forms.
//! * `callkey`: K_call derivation plus the short authentication string.
//!
//! Run with `cargo bench -p cryptic-benches --bench signal`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cryptic_signal::callkey::CallKey;
use cryptic_signal::wire::{
    B64Bytes, Base64Text, CallId, CallInvite, CallRelayFrame, Message, RelayFrame, Sealed, UserId,
};
use std::hint::black_box;

fn id() -> CallId {
    CallId::from_bytes([0x42; 16])
}

fn invite() -> Message {
    Message::CallInvite(CallInvite {
        call_id: id(),
        from_user: UserId::new("alice").expect("valid name"),
        to_user: UserId::new("bob").expect("valid name"),
        encrypted_payload: Sealed::new(0, &[0x5a; 1024]).expect("valid sealed"),
    })
}

fn relay_json() -> Message {
    Message::CallRelayFrame(CallRelayFrame {
        call_id: id(),
        from_user: UserId::new("alice").expect("valid name"),
        to_user: UserId::new("bob").expect("valid name"),
        seq: 12345,
        encrypted_frame: Base64Text::encode(&[0xa5; 200]),
    })
}

fn parse(c: &mut Criterion) {
    let inv = invite().to_json();
    let rj = relay_json().to_json();
    let frame = [0xa5u8; 200];
    let rb = RelayFrame {
        call_id: id(),
        seq: 12345,
        frame: &frame,
    }
    .to_vec();
    let mut g = c.benchmark_group("signal_parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("utf8-floor", |b| {
        b.iter(|| std::str::from_utf8(black_box(inv.as_bytes())).map(str::len))
    });
    g.bench_function("json-invite", |b| {
        b.iter(|| Message::parse(black_box(&inv)).is_ok())
    });
    g.bench_function("json-relay", |b| {
        b.iter(|| Message::parse(black_box(&rj)).is_ok())
    });
    g.bench_function("binary-relay", |b| {
        b.iter(|| RelayFrame::parse(black_box(&rb)).map(|f| f.seq))
    });
    g.finish();
}

fn serialize(c: &mut Criterion) {
    let inv = invite();
    let text = inv.to_json();
    let frame = [0xa5u8; 200];
    let mut buf = Vec::with_capacity(4096);
    let mut g = c.benchmark_group("signal_serialize");
    g.throughput(Throughput::Elements(1));
    g.bench_function("copy-floor", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(black_box(text.as_bytes()));
            buf.len()
        })
    });
    g.bench_function("json-invite", |b| {
        b.iter(|| black_box(&inv).to_json().len())
    });
    g.bench_function("binary-relay", |b| {
        b.iter(|| {
            buf.clear();
            RelayFrame {
                call_id: id(),
                seq: 1,
                frame: black_box(&frame),
            }
            .write_to(&mut buf);
            buf.len()
        })
    });
    g.finish();
}

fn callkey(c: &mut Criterion) {
    let fa = "sha-256 00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F";
    let fb = "sha-256 FF:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F";
    let mut g = c.benchmark_group("callkey");
    g.bench_function("derive-and-sas", |b| {
        b.iter(|| {
            let k = CallKey::derive(&id(), &B64Bytes([1; 32]), &B64Bytes([2; 32]));
            k.short_auth_string(black_box(fa), black_box(fb))
                .map(|s| s.len())
        })
    });
    g.finish();
}

criterion_group!(benches, parse, serialize, callkey);
criterion_main!(benches);

//! The report of issue 6: our adaptive buffer against a fixed 60 ms buffer
//! on eight seeded ten-minute network traces, in the same run.
//!
//! Run `cargo test -p cryptic-jitter --release -- --nocapture` to see the table
//! (on the bursty and spike traces also ours without time-stretch, which
//! drops whole frames to catch up: the delay stretching saves).

mod common;

use common::{fixed60, ours, ours_dropping, run, trace, Metrics, Net};

const TEN_MINUTES: u32 = 600;
const PHASE_US: i64 = 7_300;

fn row(name: &str, who: &str, m: &Metrics) -> String {
    format!(
        "| {name:<26} | {who:<8} | {:>7.1} | {:>7.1} | {:>8.3}% | {:>8.3}% | {:>9} |",
        m.mean_ms(),
        m.p95_ms(),
        100.0 * m.late_rate(),
        100.0 * m.conceal_rate(),
        m.underruns,
    )
}

#[test]
fn adaptive_buffer_beats_fixed_60ms_buffer_on_every_network_trace() {
    let nets = [
        Net::Clean,
        Net::Gaussian30,
        Net::ParetoBursty,
        Net::Loss5,
        Net::GilbertElliott,
        Net::Reorder2,
        Net::Spike300,
        Net::Drift(200),
    ];
    let mut table = vec![
        "| trace                      | buffer   | mean ms |  p95 ms | late loss | concealed | underruns |".to_string(),
        "|----------------------------|----------|---------|---------|-----------|-----------|-----------|".to_string(),
    ];
    let mut failures = Vec::new();
    for (i, net) in nets.into_iter().enumerate() {
        let t = trace(net, TEN_MINUTES, 0xC0FFEE + i as u64);
        assert!(
            t.packets.len() >= 30_000,
            "at least ten minutes of 20 ms packets"
        );
        let a = run(&t, &mut ours(), PHASE_US, true);
        let f = run(&t, &mut fixed60(), PHASE_US, false);
        table.push(row(t.name, "adaptive", &a));
        table.push(row(t.name, "fixed 60", &f));
        if matches!(net, Net::ParetoBursty | Net::Spike300) {
            // Time-stretch against dropping whole frames to catch up.
            let d = run(&t, &mut ours_dropping(), PHASE_US, false);
            table.push(row(t.name, "dropping", &d));
        }
        if std::env::var_os("JITTER_DEBUG").is_some() {
            println!("{}: {:?}", t.name, a.stats);
        }

        let (ap, fp) = (a.p95_ms(), f.p95_ms());
        let dominates = ap <= fp && a.late_lost <= f.late_lost;
        // "Comparable delay": within one frame of the fixed buffer's p95.
        let clearly_fewer_late = 2 * a.late_lost <= f.late_lost && ap <= fp + 20.0;
        if !(dominates || clearly_fewer_late) {
            failures.push(format!(
                "{}: p95 {ap:.1} vs {fp:.1} ms, late {} vs {}",
                t.name, a.late_lost, f.late_lost
            ));
        }
        if net == Net::Clean && ap > 30.0 {
            failures.push(format!(
                "clean: p95 {ap:.1} ms is more than one frame + 10 ms"
            ));
        }
    }
    println!("\n{}\n", table.join("\n"));
    assert!(
        failures.is_empty(),
        "targets missed:\n{}",
        failures.join("\n")
    );
}

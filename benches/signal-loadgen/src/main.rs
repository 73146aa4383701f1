//! Load generator for the signaling server. **Not implemented yet**: it lands
//! with the signaling issue.

fn main() -> std::process::ExitCode {
    eprintln!("signal-loadgen: not implemented yet");
    std::process::ExitCode::FAILURE
}

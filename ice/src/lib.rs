//! # cryptic-ice: finding a path between two peers
//!
//! ```text
//!  DTLS / SRTP datagrams  (IceTransport::send / recv)
//!          |
//!  [ Driver ]  tokio: one UDP socket, RFC 7983 demultiplexing,
//!          |   TCP/TLS streams to TURN servers (TurnStreams)
//!  [ Agent ]   sans-IO: RFC 8445 checks, RFC 7675 consent, TURN client (RFC 8656)
//!          |   (StreamDecoder: STUN and ChannelData framing on a stream)
//!     UDP socket  -> peer (direct, server-reflexive, peer-reflexive or TURN relayed)
//!     TCP or TLS  -> TURN server -> UDP -> peer
//! ```
//!
//! [`Agent`] is the protocol core: no I/O, no clock. [`Driver`] runs it on a
//! tokio UDP socket and hands the layer above an [`IceTransport`] to send
//! and receive DTLS and SRTP datagrams on the selected pair, through the TURN
//! relay when that is the pair.
//!
//! Candidates travel through signaling as RFC 8839 attribute strings:
//! [`Candidate::to_sdp_string`] and [`Candidate::parse`].
//!
//! Addresses stay out of logs and `Debug` output unless the crate is built
//! with the `pii` feature.
//!
//! # Call sequence for a caller (the callee is the same with
//! `Role::Controlled`)
//!
//! ```no_run
//! # async fn call() -> std::io::Result<()> {
//! use cryptic_ice::{AgentConfig, Driver, Event, Role, TurnServer, END_OF_CANDIDATES};
//! let turn = TurnServer::new("192.0.2.10:3478".parse().unwrap(), "user", "pass");
//! let config = AgentConfig::new(Role::Controlling)
//!     .with_stun_server("192.0.2.10:3478".parse().unwrap())
//!     .with_turn_server(turn)
//!     .with_relay_only(false);
//! let mut ice = Driver::start(config, "0.0.0.0:0".parse().unwrap()).await?;
//! let creds = ice.local_credentials().clone(); // -> invite: ufrag, pwd
//! # let _ = creds;
//! // From signaling, whenever they arrive:
//! //   ice.set_remote_credentials(Credentials::new(ufrag, pwd)?).await?;
//! //   ice.add_remote_candidate("candidate:...").await?;
//! //   ice.end_of_remote_candidates();
//! while let Some(event) = ice.next_event().await {
//!     match event {
//!         Event::CandidateGathered(c) => { let _line = c.to_sdp_string(); /* -> call_ice_candidate */ }
//!         Event::GatheringDone => { let _line = END_OF_CANDIDATES; /* -> call_ice_candidate */ }
//!         Event::Selected(pair) => {
//!             // pair.kind: Host / ServerReflexive / PeerReflexive / Relay
//!             let transport = ice.transport(); // give to DTLS: send() / recv()
//! #           let _ = (pair, transport);
//!         }
//!         Event::PathLost => ice.restart(), // then signal the new credentials
//!         Event::Restarted(_new_credentials) => { /* -> signaling, candidates follow */ }
//!         Event::Failed => break, // fall back to the server relay
//!         _ => {}
//!     }
//! }
//! ice.close().await; // deletes TURN allocations
//! # Ok(()) }
//! ```

mod agent;
mod candidate;
#[cfg(feature = "tokio")]
mod driver;
mod error;
mod framing;
mod host;
#[cfg(feature = "tokio")]
mod stream;
mod stun;
mod turn;

pub use agent::{
    Agent, AgentConfig, ConnectionState, Credentials, Event, PathKind, Received, Role, Route,
    SelectedPair, Timers, Transmit,
};
pub use candidate::{Candidate, CandidateKind};
#[cfg(feature = "tokio")]
pub use driver::{Driver, IceTransport};
pub use error::Error;
pub use framing::{FramingError, StreamDecoder, MAX_MESSAGE as MAX_STREAM_MESSAGE};
pub use host::host_addresses;
#[cfg(feature = "tokio")]
pub use stream::{tls_config, StreamInput, TurnStreams};
pub use stun::{ChannelData, PacketKind};
pub use turn::{Transport, TurnServer};

/// The `candidate:` attribute's end-of-candidates companion (RFC 8840).
pub const END_OF_CANDIDATES: &str = "end-of-candidates";

/// Shows an address only when built with the `pii` feature.
#[derive(Clone, Copy)]
pub(crate) struct Pii(pub(crate) std::net::SocketAddr);

impl std::fmt::Display for Pii {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if cfg!(feature = "pii") {
            write!(f, "{}", self.0)
        } else if self.0.is_ipv4() {
            f.write_str("<ipv4>")
        } else {
            f.write_str("<ipv6>")
        }
    }
}

impl std::fmt::Debug for Pii {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[doc(hidden)]
pub mod fuzzing;

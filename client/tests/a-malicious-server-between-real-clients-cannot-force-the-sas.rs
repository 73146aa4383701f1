//! A malicious server between two real `cryptic-call` processes.
//!
//! The operator runs the real server behind a front of its own (this test):
//! the users' profiles point at the front, which holds a server certificate
//! from the operator's CA, and behind it talks to the real server as each
//! user with certificates it issued itself. At first contact it hands alice
//! its own key bundle for bob (and keeps bob's real one for itself), so it
//! holds both end-to-end sessions: every sealed payload is opened and sealed
//! again for the other leg with the server's own contributions. It
//! terminates ICE and DTLS on both legs with its own agents and its own
//! certificate (whose fingerprint it puts in the payloads, so both users'
//! certificate checks pass), and grinds a million values per call once it
//! could tell what the users will read.
//!
//! Both calls are secured, both users see six digits, and over 20 calls the
//! two never read the same ones: the version-2 commitments leave the server
//! nothing to choose at the moment it could tell.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod kit;
mod mallory;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use cryptic_dtls_srtp::handshake::{
    handshake, DatagramTransport, HandshakeConfig, Identity, Role as DtlsRole,
};
use cryptic_dtls_srtp::Fingerprint;
use cryptic_ice::{AgentConfig, Credentials, Driver, Event, IceTransport, Role as IceRole};
use cryptic_signal::certs::CertificateAuthority;
use cryptic_signal::client::{ClientConfig, Incoming};
use cryptic_signal::e2e::E2eStore;
use cryptic_signal::payload::{CertFingerprint, IceParams};
use cryptic_signal::profile::Profile;
use cryptic_signal::wire::{Message, Pong, UserId, Welcome};
use futures_util::{SinkExt, StreamExt};
use kit::bundle_of;
use mallory::{Learnt, Leg, Mallory, Media, TRIES};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Ws;

const CALLS: usize = 20;

/// What the front shares between the users' connections.
struct Attack {
    mallory: Mallory,
    /// Where what the users say about their media goes, per leg.
    legs: Option<[mpsc::UnboundedSender<Learnt>; 2]>,
    /// Bundles swapped at first contact.
    swapped: u32,
    /// Where finished grinding reports (tries, late hits).
    ground: std::sync::mpsc::Sender<(u64, u64)>,
}

type Shared = Arc<Mutex<Attack>>;

impl Attack {
    /// A message from `user` toward the server.
    fn outgoing(&mut self, msg: Message) -> Option<Message> {
        let out = self.mallory.intercept(msg);
        for l in std::mem::take(&mut self.mallory.learnt) {
            let leg = match &l {
                Learnt::Ice(leg, _) | Learnt::Candidates(leg, ..) | Learnt::Fingerprint(leg, _) => {
                    *leg
                }
            };
            if let Some(legs) = &self.legs {
                let _ = legs[usize::from(leg == Leg::Bob)].send(l);
            }
        }
        out
    }

    /// A message from the server toward a user: a key bundle is the
    /// moment to step in.
    fn incoming(&mut self, msg: Message) -> Message {
        let Message::KeysBundle(real) = msg else {
            return msg;
        };
        let m = &mut self.mallory;
        self.swapped += 1;
        if real.user == m.bob {
            m.as_alice.start_session(&real).expect("bob's real bundle");
            Message::KeysBundle(bundle_of(&mut m.as_bob, &real.user))
        } else {
            m.as_bob.start_session(&real).expect("alice's real bundle");
            Message::KeysBundle(bundle_of(&mut m.as_alice, &real.user))
        }
    }
}

/// Accepts the users' connections with the operator's certificate.
async fn front(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    upstream: HashMap<UserId, ClientConfig>,
    attack: Shared,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(proxy(tcp, tls.clone(), upstream.clone(), attack.clone()));
    }
}

/// One user's connection: the front toward the user, the operator's own
/// login as that user toward the real server.
async fn proxy(
    tcp: tokio::net::TcpStream,
    tls: Arc<rustls::ServerConfig>,
    upstream: HashMap<UserId, ClientConfig>,
    attack: Shared,
) -> Option<()> {
    let tls = tokio_rustls::TlsAcceptor::from(tls)
        .accept(tcp)
        .await
        .ok()?;
    let der = tls.get_ref().1.peer_certificates()?.first()?.to_vec();
    let user = cryptic_signal::certs::user_from_cert_der(&der).ok()?;
    let mut ws = tokio_tungstenite::accept_async(tls).await.ok()?;
    let up = cryptic_signal::client::connect(upstream.get(&user)?)
        .await
        .ok()?;
    let welcome = Welcome {
        user: user.clone(),
        ice_servers: up.ice_servers().to_vec(),
    };
    ws.send(Ws::text(Message::Welcome(welcome).to_json()))
        .await
        .ok()?;
    let (tx, mut rx) = up.split();
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(Ws::Text(t))) => {
                    let Ok(msg) = Message::parse(t.as_str()) else { continue };
                    if let Message::Ping(p) = &msg {
                        let pong = Message::Pong(Pong { nonce: p.nonce });
                        ws.send(Ws::text(pong.to_json())).await.ok()?;
                        continue;
                    }
                    let (out, grinds) = {
                        let mut a = attack.lock().unwrap();
                        let out = a.outgoing(msg);
                        (out, std::mem::take(&mut a.mallory.grinds))
                    };
                    if let Some(m) = out {
                        tx.send(&m).await.ok()?;
                    }
                    // The grinding runs beside the server, which keeps
                    // serving meanwhile.
                    for g in grinds {
                        let done = attack.lock().unwrap().ground.clone();
                        tokio::task::spawn_blocking(move || {
                            let _ = done.send(g.run());
                        });
                    }
                }
                // Relay frames would carry DTLS end to end, past the
                // server's certificate: the attack keeps media on its own
                // ICE legs and drops them.
                Some(Ok(_)) => {}
                _ => break,
            },
            m = rx.recv() => match m {
                Ok(Incoming::Message(m)) => {
                    let m = attack.lock().unwrap().incoming(m);
                    ws.send(Ws::text(m.to_json())).await.ok()?;
                }
                Ok(Incoming::Relay { .. }) => {}
                Err(_) => break,
            },
        }
    }
    tx.close().await;
    Some(())
}

/// The DTLS records of an ICE leg (RFC 7983): SRTP from the user is
/// dropped.
struct DtlsOnly(IceTransport);

#[async_trait]
impl DatagramTransport for DtlsOnly {
    async fn send(&self, datagram: &[u8]) -> std::io::Result<()> {
        self.0.send(datagram).await
    }

    async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.0.recv(buf).await?;
            if n > 0 && (20..=63).contains(&buf[0]) {
                return Ok(n);
            }
        }
    }
}

/// The server's ICE agent on one leg, gathered, and its description.
async fn agent(role: IceRole) -> (Driver, IceParams) {
    // Bound to every address (as the client is) so that checks toward any
    // candidate alice offers can leave; loopback is the one it offers.
    let loopback = vec!["127.0.0.1".parse().unwrap()];
    let mut d = Driver::start_with_hosts(
        AgentConfig::new(role),
        "0.0.0.0:0".parse().unwrap(),
        loopback,
    )
    .await
    .unwrap();
    let mut candidates = Vec::new();
    let gathered = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(e) = d.next_event().await {
            match e {
                Event::CandidateGathered(c) => candidates.push(c.to_sdp_string()),
                Event::GatheringDone => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(
        gathered.is_ok(),
        "the server's agent gathers its host candidate"
    );
    let c = d.local_credentials().clone();
    (d, IceParams::new(c.ufrag, c.pwd, candidates, true))
}

/// One leg of the server's media: ICE with the user, then a DTLS handshake
/// with the server's certificate against the user's. Returns what went
/// wrong, or holds the leg until the call is over.
async fn leg(
    mut driver: Driver,
    leg: Leg,
    identity: Arc<Identity>,
    mut learnt: mpsc::UnboundedReceiver<Learnt>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
) {
    let role = match leg {
        // Toward alice the server is the callee: the DTLS client.
        Leg::Alice => DtlsRole::Client,
        Leg::Bob => DtlsRole::Server,
    };
    let (mut selected, mut peer) = (false, None::<CertFingerprint>);
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    while !selected || peer.is_none() {
        tokio::select! {
            e = driver.next_event() => match e {
                Some(Event::Selected(_)) => selected = true,
                Some(Event::Failed) | None => {
                    let _ = done.send(Err(format!("{leg:?}: ICE failed")));
                    return;
                }
                _ => {}
            },
            l = learnt.recv() => match l {
                Some(Learnt::Ice(_, p)) => {
                    let creds = Credentials::new(p.ice_ufrag, p.ice_pwd).unwrap();
                    driver.set_remote_credentials(creds).await.unwrap();
                    for c in &p.candidates {
                        driver.add_remote_candidate(c).await.unwrap();
                    }
                    if p.end_of_candidates {
                        driver.end_of_remote_candidates();
                    }
                }
                Some(Learnt::Candidates(_, cs, end)) => {
                    for c in &cs {
                        driver.add_remote_candidate(c).await.unwrap();
                    }
                    if end {
                        driver.end_of_remote_candidates();
                    }
                }
                Some(Learnt::Fingerprint(_, fp)) => peer = Some(fp),
                None => {
                    let _ = done.send(Err(format!("{leg:?}: the call ended first")));
                    return;
                }
            },
            () = &mut deadline => {
                let _ = done.send(Err(format!("{leg:?}: no pair and fingerprint in 30 s")));
                return;
            }
        }
    }
    let expected = Fingerprint::from_bytes(peer.expect("known").0);
    let transport = Arc::new(DtlsOnly(driver.transport()));
    match handshake(transport, &identity, expected, HandshakeConfig::new(role)).await {
        Ok(session) => {
            let _ = done.send(Ok(()));
            // Hold the leg (consent, DTLS) until the next call begins.
            while learnt.recv().await.is_some() {}
            session.close().await;
        }
        Err(e) => {
            let _ = done.send(Err(format!("{leg:?}: DTLS: {e}")));
        }
    }
    driver.close().await;
}

fn sas_of(out: &str) -> Option<String> {
    out.lines()
        .find(|l| l.contains("short authentication string"))
        .and_then(|l| l.rsplit(": ").next())
        .map(str::to_string)
}

#[test]
fn over_twenty_calls_between_real_processes_a_server_in_the_middle_never_makes_the_sas_match() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let front_addr = listener.local_addr().unwrap().to_string();
    let world = World::start_behind("mallory", &["alice", "bob"], Some(&front_addr));

    // The operator's own logins as alice and bob toward the real server,
    // and a server certificate for the front, all from its CA.
    let ca_dir = world.path("ca");
    let mut upstream = HashMap::new();
    for u in ["alice", "bob"] {
        let out = world.path(&format!("operator-as-{u}"));
        run_ok(&[
            "ca",
            "issue",
            u,
            "--dir",
            ca_dir.to_str().unwrap(),
            "--server",
            &world.addr,
            "--out",
            out.to_str().unwrap(),
        ]);
        let config = Profile::load(&out).unwrap().client_config().unwrap();
        upstream.insert(UserId::new(u).unwrap(), config);
    }
    let ca = CertificateAuthority::load(&ca_dir).unwrap();
    let names = ["localhost".to_string(), "127.0.0.1".to_string()];
    let cert = ca
        .issue_server(&names, cryptic_signal::certs::Validity::days_from_now(1))
        .unwrap();
    let tls = front_tls(&cert.cert_pem, &cert.key_pem, ca.cert_pem());

    let identity = Arc::new(Identity::generate().unwrap());
    let fp = CertFingerprint(*identity.fingerprint().as_bytes());
    let mut mallory = Mallory::new(E2eStore::in_memory(), E2eStore::in_memory(), fp, 1, None);
    mallory.defer_grinding = true;
    let (ground_tx, ground) = std::sync::mpsc::channel();
    let attack = Arc::new(Mutex::new(Attack {
        mallory,
        legs: None,
        swapped: 0,
        ground: ground_tx,
    }));
    rt.spawn(front(listener, tls, upstream, attack.clone()));

    let mut late = 0;
    for call in 0..CALLS {
        // The server's agents for this call, one per leg.
        let ((da, to_alice), (db, to_bob)) = rt.block_on(async {
            (
                agent(IceRole::Controlled).await,
                agent(IceRole::Controlling).await,
            )
        });
        let (ta, ra) = mpsc::unbounded_channel();
        let (tb, rb) = mpsc::unbounded_channel();
        let (done_a, mut leg_a) = tokio::sync::oneshot::channel();
        let (done_b, mut leg_b) = tokio::sync::oneshot::channel();
        rt.spawn(leg(da, Leg::Alice, identity.clone(), ra, done_a));
        rt.spawn(leg(db, Leg::Bob, identity.clone(), rb, done_b));
        {
            let mut a = attack.lock().unwrap();
            a.mallory.next_call(Some(Media { to_alice, to_bob }));
            a.legs = Some([ta, tb]);
        }

        let mut bob = world.listen(
            "bob",
            &["--auto-accept", "--input", "silence", "--output", "null"],
        );
        let mut alice = world.call(
            "alice",
            "bob",
            &["--input", "tone", "--output", "null", "--duration", "2"],
        );
        assert!(
            alice.wait_exit(Duration::from_secs(60)),
            "{}",
            alice.output()
        );
        assert!(bob.wait_exit(Duration::from_secs(30)), "{}", bob.output());
        let (out_a, out_b) = (alice.output(), bob.output());
        // The attack got as far as it can: both legs of the server's
        // media were secured with its certificate.
        for (name, rx) in [("alice", &mut leg_a), ("bob", &mut leg_b)] {
            let r = rx.try_recv();
            assert!(
                matches!(r, Ok(Ok(()))),
                "call {call}, leg to {name}: {r:?}\nalice: {out_a}\nbob: {out_b}"
            );
        }
        let (sas_a, sas_b) = (sas_of(&out_a), sas_of(&out_b));
        assert!(
            sas_a.is_some() && sas_b.is_some(),
            "call {call}: both calls are secured\nalice: {out_a}\nbob: {out_b}"
        );
        let (tries, hits) = ground
            .recv_timeout(Duration::from_secs(120))
            .expect("the grinding of this call finishes");
        late += hits;
        assert!(tries >= u64::from(TRIES), "call {call}: ground {tries}");
        println!(
            "call {call}: alice reads {}, bob reads {}; the server ground {tries} values ({late} would have matched, too late, so far)",
            sas_a.as_deref().unwrap_or("-"),
            sas_b.as_deref().unwrap_or("-")
        );
        assert_ne!(sas_a, sas_b, "call {call}: the server forced the SAS");
        attack.lock().unwrap().legs = None;
    }
    let a = attack.lock().unwrap();
    // First contact went through the server's bundles (alice fetched bob's
    // once), and alice never saw bob's real identity.
    assert_eq!(a.swapped, 1, "one bundle swapped at first contact");
    drop(a);
    rt.shutdown_timeout(Duration::from_secs(5));
}

/// The front's TLS: the operator's server certificate, users' client
/// certificates checked against its CA.
fn front_tls(cert_pem: &str, key_pem: &str, ca_pem: &str) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let certs: Vec<_> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let c = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(c)
}

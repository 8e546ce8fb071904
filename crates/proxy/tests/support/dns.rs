//! A DNS server on loopback whose answers the test steers, for testing upstream discovery
//! against a real resolver: records can change between lookups, the server can go silent or
//! answer SERVFAIL, and it counts the queries it receives.
//!
//! Test-only: it answers from a table, without zones, delegation, CNAMEs or DNSSEC, and trusts
//! nothing it receives. It depends on tokio, hickory-proto and std only, so any test crate can
//! include it with `#[path = "…/support/dns.rs"] mod dns;`.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// The TTL and SOA MINIMUM of negative answers: resolvers may cache NXDOMAIN/NODATA for this
/// long (RFC 2308), so it is kept short for tests that make a missing name appear.
pub const NEGATIVE_TTL: u32 = 1;

/// The largest UDP answer sent to a client that did not advertise a size with EDNS (RFC 1035).
const CLASSIC_UDP_LIMIT: u16 = 512;

/// The UDP payload size advertised in answers to EDNS queries (the DNS flag day 2020 value).
const EDNS_UDP_LIMIT: u16 = 1232;

/// One SRV record, as [`DnsServer::set_srv`] takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Srv {
    /// Lower is preferred.
    pub priority: u16,
    /// Relative share among the records of the same priority.
    pub weight: u16,
    /// The port of the service on `target`.
    pub port: u16,
    /// The host name of the target, with or without the trailing dot.
    pub target: String,
}

/// A DNS server on `127.0.0.1`, on UDP and TCP at the same port.
///
/// Dropping it stops it: its tasks are aborted, which closes its sockets.
pub struct DnsServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    udp: JoinHandle<()>,
    tcp: JoinHandle<()>,
}

/// The answers of one name; `None` is a type never set (asking for it gets NODATA).
#[derive(Default)]
struct Names {
    a: Option<(Vec<Ipv4Addr>, u32)>,
    aaaa: Option<(Vec<Ipv6Addr>, u32)>,
    srv: Option<(Vec<Srv>, u32)>,
}

struct State {
    names: HashMap<String, Names>,
    queries: HashMap<String, usize>,
    answering: bool,
    servfail: bool,
}

impl DnsServer {
    /// Starts a server with no names, answering: every name is NXDOMAIN until set.
    pub async fn start() -> DnsServer {
        let (tcp, udp) = bind_pair().await;
        let addr = tcp.local_addr().expect("dns: tcp local addr");
        let state = Arc::new(Mutex::new(State {
            names: HashMap::new(),
            queries: HashMap::new(),
            answering: true,
            servfail: false,
        }));
        DnsServer {
            addr,
            udp: tokio::spawn(serve_udp(udp, state.clone())),
            tcp: tokio::spawn(serve_tcp(tcp, state.clone())),
            state,
        }
    }

    /// The address to give a resolver, for UDP and TCP alike.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the A records of `name`; an empty `ips` leaves the name existing with no A
    /// record (NODATA).
    pub fn set_a(&self, name: &str, ips: &[Ipv4Addr], ttl: u32) {
        self.lock().names.entry(key(name)).or_default().a = Some((ips.to_vec(), ttl));
    }

    /// Replaces the AAAA records of `name`, as [`set_a`](Self::set_a) does the A records.
    pub fn set_aaaa(&self, name: &str, ips: &[Ipv6Addr], ttl: u32) {
        self.lock().names.entry(key(name)).or_default().aaaa = Some((ips.to_vec(), ttl));
    }

    /// Replaces the SRV records of `name`. The A/AAAA records this server holds for the
    /// targets go into the additional section of SRV answers.
    ///
    /// Panics if a target is not a valid domain name (a mistake in the test, not in a query).
    pub fn set_srv(&self, name: &str, records: &[Srv], ttl: u32) {
        for record in records {
            fqdn(&record.target).expect("dns: SRV target is not a domain name");
        }
        self.lock().names.entry(key(name)).or_default().srv = Some((records.to_vec(), ttl));
    }

    /// Forgets every record of `name`, which answers NXDOMAIN again.
    pub fn remove(&self, name: &str) {
        self.lock().names.remove(&key(name));
    }

    /// `false` makes the server read queries (and count them) without ever replying, as a
    /// server that is down or unreachable looks to a client; `true` (the initial state)
    /// resumes answering.
    pub fn set_answering(&self, answering: bool) {
        self.lock().answering = answering;
    }

    /// `true` makes every query get SERVFAIL, as from a recursive resolver whose upstreams fail.
    pub fn set_servfail(&self, on: bool) {
        self.lock().servfail = on;
    }

    /// How many queries for `name`, of any type and over either transport, have arrived,
    /// including those not replied to.
    pub fn queries(&self, name: &str) -> usize {
        self.lock().queries.get(&key(name)).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.udp.abort();
        self.tcp.abort();
    }
}

/// Binds TCP and UDP to one free port; the OS picks it for TCP, and UDP at that port may be
/// taken by another process, hence the retries.
async fn bind_pair() -> (TcpListener, UdpSocket) {
    for _ in 0..50 {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("dns: bind tcp");
        let addr = tcp.local_addr().expect("dns: tcp local addr");
        if let Ok(udp) = UdpSocket::bind(addr).await {
            return (tcp, udp);
        }
    }
    panic!("dns: no port free for both UDP and TCP on 127.0.0.1");
}

async fn serve_udp(socket: UdpSocket, state: Arc<Mutex<State>>) {
    let mut buf = vec![0; usize::from(u16::MAX)];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Some((response, limit)) = answer(&state, &buf[..len]) else {
            continue;
        };
        let Ok(mut bytes) = response.to_vec() else {
            continue;
        };
        // An answer that does not fit is replaced by an empty one with TC set, which tells the
        // client to ask again over TCP (RFC 1035 4.2.1, RFC 7766).
        if bytes.len() > usize::from(limit) {
            let Ok(truncated) = response.truncate().to_vec() else {
                continue;
            };
            bytes = truncated;
        }
        let _ = socket.send_to(&bytes, peer).await;
    }
}

async fn serve_tcp(listener: TcpListener, state: Arc<Mutex<State>>) {
    // Owned by this task so that aborting it (dropping the set) aborts every connection too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, state.clone()));
                }
                // Out of file descriptors, most likely: wait instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves the queries of one connection in turn, each framed by a 2-byte length (RFC 1035
/// 4.2.2), until the client closes it.
async fn serve_connection(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    loop {
        let mut len = [0; 2];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut packet = vec![0; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut packet).await.is_err() {
            return;
        }
        let Some((response, _)) = answer(&state, &packet) else {
            continue;
        };
        let Ok(bytes) = response.to_vec() else {
            continue;
        };
        let Ok(len) = u16::try_from(bytes.len()) else {
            continue;
        };
        let mut framed = Vec::with_capacity(2 + bytes.len());
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&bytes);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

/// The reply to one packet, with the largest UDP payload the client accepts; `None` for
/// packets that get no reply (undecodable, not a query, or the server is not answering).
fn answer(state: &Mutex<State>, packet: &[u8]) -> Option<(Message, u16)> {
    let request = Message::from_vec(packet).ok()?;
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut guard = lock(state);
    let state = &mut *guard;
    if let Some(query) = request.queries.first() {
        *state
            .queries
            .entry(key(&query.name().to_ascii()))
            .or_default() += 1;
    }
    if !state.answering {
        return None;
    }

    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    // The server stands in for the recursive resolver a gateway is configured with, which
    // offers recursion; it is also the authority for every name it knows.
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    response.add_queries(request.queries.iter().cloned());
    let limit = match &request.edns {
        Some(edns) => {
            let mut ours = Edns::new();
            ours.set_max_payload(EDNS_UDP_LIMIT);
            response.set_edns(ours);
            edns.max_payload().max(CLASSIC_UDP_LIMIT)
        }
        None => CLASSIC_UDP_LIMIT,
    };

    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return Some((response, limit));
    }
    let [query] = request.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return Some((response, limit));
    };
    if state.servfail {
        response.metadata.response_code = ResponseCode::ServFail;
        return Some((response, limit));
    }

    // Answers carry the name as asked, so a client that randomizes its case (0x20) gets it back.
    let name = query.name();
    let Some(names) = state.names.get(&key(&name.to_ascii())) else {
        response.metadata.response_code = ResponseCode::NXDomain;
        response.add_authority(soa());
        return Some((response, limit));
    };
    match query.query_type() {
        RecordType::A => {
            response.add_answers(a_records(name, names));
        }
        RecordType::AAAA => {
            response.add_answers(aaaa_records(name, names));
        }
        RecordType::SRV => {
            if let Some((records, ttl)) = &names.srv {
                let mut glued = Vec::new();
                for srv in records {
                    // Validated by set_srv.
                    let Ok(target) = fqdn(&srv.target) else {
                        continue;
                    };
                    let target_key = key(&srv.target);
                    if let Some(target_names) = state.names.get(&target_key)
                        && !glued.contains(&target_key)
                    {
                        response.add_additionals(a_records(&target, target_names));
                        response.add_additionals(aaaa_records(&target, target_names));
                        glued.push(target_key);
                    }
                    let data = SRV::new(srv.priority, srv.weight, srv.port, target);
                    response.add_answer(Record::from_rdata(name.clone(), *ttl, RData::SRV(data)));
                }
            }
        }
        _ => {}
    }
    if response.answers.is_empty() {
        response.add_authority(soa());
    }
    Some((response, limit))
}

fn a_records(name: &Name, names: &Names) -> Vec<Record> {
    let Some((ips, ttl)) = &names.a else {
        return Vec::new();
    };
    ips.iter()
        .map(|ip| Record::from_rdata(name.clone(), *ttl, RData::A(A(*ip))))
        .collect()
}

fn aaaa_records(name: &Name, names: &Names) -> Vec<Record> {
    let Some((ips, ttl)) = &names.aaaa else {
        return Vec::new();
    };
    ips.iter()
        .map(|ip| Record::from_rdata(name.clone(), *ttl, RData::AAAA(AAAA(*ip))))
        .collect()
}

/// The SOA of negative answers (RFC 2308): its TTL and MINIMUM bound how long they are cached.
/// It is the root's, as the server pretends to be authoritative for every name.
fn soa() -> Record {
    let ns = Name::from_ascii("ns.dns.test.").unwrap_or_default();
    let mailbox = Name::from_ascii("hostmaster.dns.test.").unwrap_or_default();
    let data = SOA::new(ns, mailbox, 1, 3600, 600, 86400, NEGATIVE_TTL);
    Record::from_rdata(Name::root(), NEGATIVE_TTL, RData::SOA(data))
}

/// The table key of a name: lowercase (names compare case-insensitively, RFC 4343), without
/// the trailing dot.
fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn fqdn(name: &str) -> Result<Name, hickory_proto::ProtoError> {
    let mut name = Name::from_ascii(name)?;
    name.set_fqdn(true);
    Ok(name)
}

/// A test that panicked while holding the lock must not take the server down with it.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

//! The DNS server of a user-defined network: it listens on the network's
//! gateway address (port 53, UDP and TCP), answers the names of the
//! network's containers (A and AAAA records, from a lookup the caller
//! gives) and forwards every other question, as it is, to the host's
//! resolvers (over the transport it came by, so an answer too large for
//! UDP can be had over TCP). Synchronous: one thread reads UDP questions;
//! each forwarded question gets a thread of its own, at most
//! [`MAX_FORWARDS`] at once; one thread accepts TCP connections, each
//! served by a thread of its own, at most [`MAX_TCP`] at once, with
//! deadlines on every read and write. Reads are bounded: a question larger
//! than [`MAX_MESSAGE`] is dropped, and so is an upstream answer larger
//! than [`MAX_MESSAGE`] over UDP or than 64 KiB (TCP's own bound) over TCP.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{rdata, RData, Record, RecordType};

use crate::NetworkError;

/// The largest message read, from a client or an upstream.
pub const MAX_MESSAGE: usize = 4096;
/// Forwarded questions in flight at most; beyond, SERVFAIL.
pub const MAX_FORWARDS: usize = 64;
/// TCP connections served at once at most; beyond, closed at once.
pub const MAX_TCP: usize = 16;
/// Questions answered on one TCP connection at most.
const QUESTIONS_PER_CONNECTION: usize = 64;
/// How long a TCP client gets for each read and write.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an upstream gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// The TTL of the names it answers (they change as containers come and go).
const TTL: u32 = 5;

/// The server's sockets.
#[derive(Debug)]
pub struct Sockets {
    /// UDP, port 53.
    pub udp: UdpSocket,
    /// TCP, port 53 (None when another program holds it: then UDP only).
    pub tcp: Option<TcpListener>,
}

/// Binds the server's sockets: `addr`, port 53, UDP then TCP. `AddrInUse`
/// (of UDP, the lock) means another server already serves that address.
/// A TCP port another program holds is reported on stderr (the server's
/// log) and left: the server then answers over UDP only.
pub fn bind(addr: Ipv4Addr) -> Result<Sockets, NetworkError> {
    let udp = UdpSocket::bind((addr, 53)).map_err(|err| NetworkError::Io {
        step: "bind the DNS server's UDP socket",
        err,
    })?;
    let tcp = match TcpListener::bind((addr, 53)) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("DNS over TCP is off: {addr}:53: {e}");
            None
        }
    };
    Ok(Sockets { udp, tcp })
}

/// What answers a name (lower case, without the final dot): the addresses
/// of the containers it names; none: not ours. Shared with the TCP threads.
pub type Names = Arc<dyn Fn(&str) -> Vec<IpAddr> + Send + Sync>;

/// The nameservers of a resolv.conf, as upstreams (port 53).
pub fn upstreams(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "nameserver").then_some(())?;
            let ip: std::net::IpAddr = w.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

/// Serves on `sockets` until `keep_going` (asked about once a second)
/// says no; `names` answers the network's names.
pub fn serve(
    sockets: Sockets,
    upstreams: Vec<SocketAddr>,
    names: Names,
    mut keep_going: impl FnMut() -> bool,
) -> Result<(), NetworkError> {
    let io = |step| move |err| NetworkError::Io { step, err };
    let Sockets { udp: socket, tcp } = sockets;
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(io("set the DNS socket's timeout"))?;
    let socket = Arc::new(socket);
    let upstreams = Arc::new(upstreams);
    if let Some(tcp) = tcp {
        let (names, upstreams) = (names.clone(), upstreams.clone());
        std::thread::Builder::new()
            .name("dns-tcp".into())
            .spawn(move || accept_tcp(tcp, names, upstreams))
            .map_err(io("start the DNS server's TCP thread"))?;
    }
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut buf = [0u8; MAX_MESSAGE];
    let mut last_check = std::time::Instant::now();
    loop {
        if last_check.elapsed() >= Duration::from_secs(1) {
            if !keep_going() {
                return Ok(());
            }
            last_check = std::time::Instant::now();
        }
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(io("read a DNS question")(e)),
        };
        let question = &buf[..n];
        let Ok(msg) = Message::from_vec(question) else {
            continue; // Not DNS: no answer.
        };
        if msg.message_type() != MessageType::Query || msg.op_code() != OpCode::Query {
            continue;
        }
        match answer(&msg, &|n: &str| names(n)) {
            Some(reply) => {
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, from);
                }
            }
            None => forward(&socket, &upstreams, &in_flight, &msg, question, from),
        }
    }
}

/// Accepts TCP connections for as long as the process serves; each gets a
/// thread of its own, at most [`MAX_TCP`] at once.
fn accept_tcp(listener: TcpListener, names: Names, upstreams: Arc<Vec<SocketAddr>>) {
    let open = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_TCP {
            open.fetch_sub(1, Ordering::SeqCst);
            continue; // Dropped: closed at once.
        }
        let (names, upstreams, counter) = (names.clone(), upstreams.clone(), open.clone());
        let spawned = std::thread::Builder::new()
            .name("dns-tcp-client".into())
            .spawn(move || {
                serve_tcp(conn, &names, &upstreams);
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Reads one length-prefixed DNS message (RFC 1035 4.2.2) of at most
/// `limit` bytes.
fn read_framed(s: &mut TcpStream, limit: usize) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let len = u16::from_be_bytes(len) as usize;
    if len == 0 || len > limit {
        return None;
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

fn write_framed(s: &mut TcpStream, msg: &[u8]) -> Option<()> {
    let len = u16::try_from(msg.len()).ok()?.to_be_bytes();
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len);
    out.extend_from_slice(msg);
    s.write_all(&out).ok()
}

/// Answers the questions of one TCP client until it closes, stalls or
/// sends what is not a question.
fn serve_tcp(mut s: TcpStream, names: &Names, upstreams: &[SocketAddr]) {
    if s.set_read_timeout(Some(CLIENT_TIMEOUT)).is_err()
        || s.set_write_timeout(Some(CLIENT_TIMEOUT)).is_err()
    {
        return;
    }
    for _ in 0..QUESTIONS_PER_CONNECTION {
        let Some(question) = read_framed(&mut s, MAX_MESSAGE) else {
            return;
        };
        let Ok(msg) = Message::from_vec(&question) else {
            return;
        };
        if msg.message_type() != MessageType::Query || msg.op_code() != OpCode::Query {
            return;
        }
        let reply = match answer(&msg, &|n: &str| names(n)) {
            Some(r) => r.to_vec().ok(),
            None => upstreams
                .iter()
                .find_map(|up| ask_tcp(*up, &question, msg.id()))
                .or_else(|| reply_to(&msg, ResponseCode::ServFail).to_vec().ok()),
        };
        if reply.and_then(|r| write_framed(&mut s, &r)).is_none() {
            return;
        }
    }
}

/// One question to one upstream over TCP; its answer (at most 64 KiB, the
/// framing's bound), if it gives one in time with the question's id.
fn ask_tcp(upstream: SocketAddr, question: &[u8], id: u16) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&upstream, UPSTREAM_TIMEOUT).ok()?;
    s.set_read_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    s.set_write_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    write_framed(&mut s, question)?;
    let buf = read_framed(&mut s, u16::MAX as usize)?;
    (buf.len() >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id).then_some(buf)
}

/// The answer to `msg` when it asks for one of the network's names.
fn answer(msg: &Message, names: &impl Fn(&str) -> Vec<IpAddr>) -> Option<Message> {
    let q = msg.queries().first()?;
    let name = q.name().to_ascii().to_ascii_lowercase();
    let addrs = names(name.trim_end_matches('.'));
    if addrs.is_empty() {
        return None;
    }
    let mut reply = reply_to(msg, ResponseCode::NoError);
    reply.set_authoritative(true);
    // A question of the other family about a container gets an empty
    // answer: the name is ours (NOERROR), so resolvers do not ask elsewhere.
    for a in addrs {
        let data = match (q.query_type(), a) {
            (RecordType::A, IpAddr::V4(v4)) => RData::A(rdata::A(v4)),
            (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(rdata::AAAA(v6)),
            _ => continue,
        };
        reply.add_answer(Record::from_rdata(q.name().clone(), TTL, data));
    }
    Some(reply)
}

fn reply_to(msg: &Message, code: ResponseCode) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(msg.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(msg.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(code)
        .add_queries(msg.queries().to_vec());
    reply
}

/// Sends `question` to the upstreams in turn, on a thread of its own, and
/// the first answer back to `client`; SERVFAIL when none answers or too
/// many questions are in flight.
fn forward(
    socket: &Arc<UdpSocket>,
    upstreams: &Arc<Vec<SocketAddr>>,
    in_flight: &Arc<AtomicUsize>,
    msg: &Message,
    question: &[u8],
    client: SocketAddr,
) {
    let servfail = reply_to(msg, ResponseCode::ServFail).to_vec().ok();
    if upstreams.is_empty() || in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_FORWARDS {
        if !upstreams.is_empty() {
            in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        if let Some(b) = servfail {
            let _ = socket.send_to(&b, client);
        }
        return;
    }
    let (socket, upstreams, counter) = (socket.clone(), upstreams.clone(), in_flight.clone());
    let question = question.to_vec();
    let id = msg.id();
    let spawned = std::thread::Builder::new()
        .name("dns-forward".into())
        .spawn(move || {
            let answer = upstreams.iter().find_map(|up| ask(*up, &question, id));
            if let Some(b) = answer.or(servfail) {
                let _ = socket.send_to(&b, client);
            }
            counter.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One question to one upstream; its answer, if it gives one in time
/// with the question's id.
fn ask(upstream: SocketAddr, question: &[u8], id: u16) -> Option<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(local).ok()?;
    s.connect(upstream).ok()?;
    s.set_read_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    s.send(question).ok()?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = s.recv(&mut buf).ok()?;
    buf.truncate(n);
    (n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id).then_some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    fn query(name: &str, t: RecordType) -> Message {
        let mut m = Message::new();
        m.set_id(4242)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_str(name).unwrap(), t));
        m
    }

    fn names(n: &str) -> Vec<IpAddr> {
        match n {
            "web" | "web.alias" => vec![
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                IpAddr::V6("fd00::2".parse().unwrap()),
            ],
            _ => vec![],
        }
    }

    #[test]
    fn own_names_are_answered_others_are_not() {
        let r = answer(&query("WEB.", RecordType::A), &names).unwrap();
        assert_eq!(r.id(), 4242);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert_eq!(r.answers().len(), 1);
        assert_eq!(
            r.answers()[0].data(),
            Some(&RData::A(rdata::A(Ipv4Addr::new(10, 0, 0, 2))))
        );
        let r = answer(&query("web.alias.", RecordType::AAAA), &names).unwrap();
        assert_eq!(
            r.answers()[0].data(),
            Some(&RData::AAAA(rdata::AAAA("fd00::2".parse().unwrap())))
        );
        assert_eq!(r.answers().len(), 1);
        let r = answer(&query("web.", RecordType::MX), &names).unwrap();
        assert!(r.answers().is_empty());
        assert!(answer(&query("example.org.", RecordType::A), &names).is_none());
    }

    /// An "upstream" on 127.0.0.1 (UDP and TCP, one port) that answers
    /// everything with 192.0.2.7, and `big.` with 200 addresses (too large
    /// for UDP's 512 bytes).
    fn upstream() -> SocketAddr {
        fn reply(q: &[u8]) -> Vec<u8> {
            let m = Message::from_vec(q).unwrap();
            let mut r = reply_to(&m, ResponseCode::NoError);
            let name = m.queries()[0].name().clone();
            let count = if name.to_ascii() == "big." { 200 } else { 1 };
            for i in 0..count {
                r.add_answer(Record::from_rdata(
                    name.clone(),
                    1,
                    RData::A(rdata::A(Ipv4Addr::new(192, 0, 2, 7 + (i % 200) as u8))),
                ));
            }
            r.to_vec().unwrap()
        }
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = udp.recv_from(&mut buf) {
                udp.send_to(&reply(&buf[..n]), from).unwrap();
            }
        });
        std::thread::spawn(move || {
            for mut c in tcp.incoming().flatten() {
                while let Some(q) = read_framed(&mut c, 512) {
                    write_framed(&mut c, &reply(&q)).unwrap();
                }
            }
        });
        addr
    }

    /// A server on 127.0.0.1 forwarding to `up`; its UDP and TCP addresses
    /// and what stops it.
    fn server(
        up: SocketAddr,
    ) -> (
        SocketAddr,
        SocketAddr,
        Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<Result<(), NetworkError>>,
    ) {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let (ua, ta) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let t = std::thread::spawn(move || {
            serve(
                Sockets {
                    udp,
                    tcp: Some(tcp),
                },
                vec![up],
                Arc::new(names),
                || !stop2.load(Ordering::SeqCst),
            )
        });
        (ua, ta, stop, t)
    }

    #[test]
    fn a_server_answers_and_forwards_over_udp() {
        let (addr, _, stop, t) = server(upstream());
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 512];
        for (name, want) in [("web.", [10, 0, 0, 2]), ("example.org.", [192, 0, 2, 7])] {
            let q = query(name, RecordType::A);
            client.send_to(&q.to_vec().unwrap(), addr).unwrap();
            let n = client.recv(&mut buf).unwrap();
            let r = Message::from_vec(&buf[..n]).unwrap();
            assert_eq!(
                r.answers()[0].data(),
                Some(&RData::A(rdata::A(Ipv4Addr::from(want)))),
                "{name}"
            );
        }
        // Garbage gets no answer and does not stop the server.
        client.send_to(b"garbage", addr).unwrap();
        client
            .send_to(&query("web.", RecordType::A).to_vec().unwrap(), addr)
            .unwrap();
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(Message::from_vec(&buf[..n]).unwrap().answers().len(), 1);
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap().unwrap();
    }

    #[test]
    fn a_server_answers_and_forwards_over_tcp_and_survives_bad_clients() {
        let (_, addr, stop, t) = server(upstream());
        // A client that says nothing, and one that announces a message
        // too large: neither holds the others up.
        let _silent = TcpStream::connect(addr).unwrap();
        let mut huge = TcpStream::connect(addr).unwrap();
        huge.write_all(&[0xff, 0xff, 1, 2, 3]).unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let ask = |c: &mut TcpStream, name: &str| {
            write_framed(c, &query(name, RecordType::A).to_vec().unwrap()).unwrap();
            Message::from_vec(&read_framed(c, 65535).expect("an answer")).unwrap()
        };
        // Several questions on one connection: our own name, a forwarded
        // one, and a forwarded answer larger than UDP carries.
        let r = ask(&mut c, "web.");
        assert_eq!(
            r.answers()[0].data(),
            Some(&RData::A(rdata::A(Ipv4Addr::new(10, 0, 0, 2))))
        );
        let r = ask(&mut c, "example.org.");
        assert_eq!(
            r.answers()[0].data(),
            Some(&RData::A(rdata::A(Ipv4Addr::new(192, 0, 2, 7))))
        );
        let r = ask(&mut c, "big.");
        assert_eq!(r.answers().len(), 200);
        assert!(r.to_vec().unwrap().len() > 512);
        // The oversized one was closed.
        let mut b = [0u8; 1];
        huge.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(huge.read(&mut b).unwrap_or(0), 0);
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap().unwrap();
    }

    #[test]
    fn upstreams_come_from_resolv_conf() {
        let u = upstreams("# x\nnameserver 10.0.0.1\nsearch a\nnameserver ::1\nnameserver bad\n");
        assert_eq!(
            u,
            vec![
                "10.0.0.1:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }
}

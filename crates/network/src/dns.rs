//! The DNS server of a user-defined network: it listens on the network's
//! gateway address (UDP port 53), answers the names of the network's
//! containers (A records, from a lookup the caller gives) and forwards
//! every other question, as it is, to the host's resolvers. Synchronous:
//! one thread reads questions; each forwarded question gets a thread of
//! its own, at most [`MAX_FORWARDS`] at once. Reads are bounded: a
//! question or an upstream answer larger than [`MAX_MESSAGE`] is dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
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
/// How long an upstream gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// The TTL of the names it answers (they change as containers come and go).
const TTL: u32 = 5;

/// Binds the server's socket: `addr`, port 53. `AddrInUse` means another
/// server already serves that address.
pub fn bind(addr: Ipv4Addr) -> Result<UdpSocket, NetworkError> {
    UdpSocket::bind((addr, 53)).map_err(|err| NetworkError::Io {
        step: "bind the DNS server's socket",
        err,
    })
}

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

/// Serves on `socket` until `keep_going` (asked about once a second)
/// says no. `names` answers a name (lower case, without the final dot)
/// with the addresses of the containers it names; none: not ours.
pub fn serve(
    socket: UdpSocket,
    upstreams: Vec<SocketAddr>,
    names: impl Fn(&str) -> Vec<IpAddr>,
    mut keep_going: impl FnMut() -> bool,
) -> Result<(), NetworkError> {
    let io = |step| move |err| NetworkError::Io { step, err };
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(io("set the DNS socket's timeout"))?;
    let socket = Arc::new(socket);
    let upstreams = Arc::new(upstreams);
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
        match answer(&msg, &names) {
            Some(reply) => {
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, from);
                }
            }
            None => forward(&socket, &upstreams, &in_flight, &msg, question, from),
        }
    }
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

    #[test]
    fn a_server_answers_and_forwards_over_udp() {
        // An "upstream" that answers everything with 192.0.2.7.
        let up = UdpSocket::bind("127.0.0.1:0").unwrap();
        let up_addr = up.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = up.recv_from(&mut buf) {
                let m = Message::from_vec(&buf[..n]).unwrap();
                let mut r = reply_to(&m, ResponseCode::NoError);
                r.add_answer(Record::from_rdata(
                    m.queries()[0].name().clone(),
                    1,
                    RData::A(rdata::A(Ipv4Addr::new(192, 0, 2, 7))),
                ));
                up.send_to(&r.to_vec().unwrap(), from).unwrap();
            }
        });
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let t = std::thread::spawn(move || {
            serve(server, vec![up_addr], names, || {
                !stop2.load(Ordering::SeqCst)
            })
        });
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

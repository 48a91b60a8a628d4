//! A small synchronous rtnetlink client: the link, address and route
//! requests berth's bridge driver makes, built with netlink-packet-route
//! and sent on a plain NETLINK_ROUTE socket (netlink-sys, no async
//! runtime). Each request asks for an acknowledgement and fails with the
//! kernel's errno, naming the step.

use std::net::IpAddr;
use std::os::fd::RawFd;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::NetworkError;

/// An open NETLINK_ROUTE socket of the calling thread's network namespace.
pub struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

fn sys(step: &'static str) -> impl Fn(std::io::Error) -> NetworkError {
    move |err| NetworkError::Io { step, err }
}

impl Rtnl {
    /// Opens a socket in the network namespace of the calling thread.
    pub fn open() -> Result<Rtnl, NetworkError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(sys("open a netlink socket"))?;
        sock.bind_auto().map_err(sys("bind the netlink socket"))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(sys("connect the netlink socket"))?;
        Ok(Rtnl {
            sock,
            seq: 0,
            buf: vec![0; 64 << 10],
        })
    }

    /// Sends `msg` with `flags` (request and ack added) and collects the
    /// answers until the acknowledgement; a negative ack is `step`'s error.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        step: &'static str,
    ) -> Result<Vec<RouteNetlinkMessage>, NetworkError> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut m = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        m.finalize();
        let mut out = vec![0; m.buffer_len()];
        m.serialize(&mut out);
        self.sock.send(&out, 0).map_err(sys(step))?;
        let mut answers = vec![];
        loop {
            let n = self
                .sock
                .recv(&mut &mut self.buf[..], 0)
                .map_err(sys(step))?;
            let mut at = 0;
            while at < n {
                let reply = <NetlinkMessage<RouteNetlinkMessage>>::deserialize(&self.buf[at..n])
                    .map_err(|e| NetworkError::Io {
                        step,
                        err: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
                    })?;
                let len = reply.header.length as usize;
                if reply.header.sequence_number == self.seq {
                    match reply.payload {
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(answers),
                                Some(code) => Err(NetworkError::Kernel {
                                    step,
                                    errno: nix::errno::Errno::from_raw(-code.get()),
                                }),
                            }
                        }
                        NetlinkPayload::Done(_) => return Ok(answers),
                        NetlinkPayload::InnerMessage(m) => answers.push(m),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                at += len;
            }
        }
    }

    /// The index of link `name`, if it exists.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>, NetworkError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(m), 0, "look up a link") {
            Ok(answers) => Ok(answers.into_iter().find_map(|a| match a {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(NetworkError::Kernel {
                errno: nix::errno::Errno::ENODEV,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Adds bridge `name` (with `mtu`, if given).
    pub fn add_bridge(&mut self, name: &str, mtu: Option<u32>) -> Result<(), NetworkError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL,
            "add a bridge",
        )
        .map(|_| ())
    }

    /// Adds veth pair `host` (here) and `peer`, the peer created straight
    /// in the network namespace `peer_netns` (a descriptor).
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_netns: RawFd,
        mtu: Option<u32>,
        peer_mac: Option<[u8; 6]>,
    ) -> Result<(), NetworkError> {
        let mut p = LinkMessage::default();
        p.attributes.push(LinkAttribute::IfName(peer.to_string()));
        p.attributes.push(LinkAttribute::NetNsFd(peer_netns));
        if let Some(mac) = peer_mac {
            p.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(host.to_string()));
        if let Some(mtu) = mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
            p.attributes.push(LinkAttribute::Mtu(mtu));
        }
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL,
            "add a veth pair",
        )
        .map(|_| ())
    }

    /// Sets link `index` up, and under bridge `master` when given.
    pub fn set_up(&mut self, index: u32, master: Option<u32>) -> Result<(), NetworkError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        if let Some(b) = master {
            m.attributes.push(LinkAttribute::Controller(b));
        }
        self.request(RouteNetlinkMessage::SetLink(m), 0, "set a link up")
            .map(|_| ())
    }

    /// Gives link `index` address `addr`/`prefix` (an existing one is fine).
    /// An IPv6 address skips duplicate address detection: the bridge's
    /// addresses are berth's to hand out, and DAD would leave it unusable
    /// for a second or more.
    pub fn add_address(
        &mut self,
        index: u32,
        addr: IpAddr,
        prefix: u8,
    ) -> Result<(), NetworkError> {
        let mut m = AddressMessage::default();
        m.header.family = match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(addr));
        m.attributes.push(AddressAttribute::Address(addr));
        if addr.is_ipv6() {
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_EXCL,
            "add an address",
        ) {
            Err(NetworkError::Kernel {
                errno: nix::errno::Errno::EEXIST,
                ..
            }) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Adds the default route (of `gateway`'s family) through `gateway`.
    pub fn add_default_route(&mut self, gateway: IpAddr) -> Result<(), NetworkError> {
        let mut m = RouteMessage::default();
        m.header.address_family = match gateway {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        m.attributes.push(RouteAttribute::Gateway(match gateway {
            IpAddr::V4(a) => RouteAddress::Inet(a),
            IpAddr::V6(a) => RouteAddress::Inet6(a),
        }));
        self.request(
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_CREATE | NLM_F_EXCL,
            "add the default route",
        )
        .map(|_| ())
    }

    /// Deletes link `index` (a veth's peer goes with it).
    pub fn delete_link(&mut self, index: u32) -> Result<(), NetworkError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(m), 0, "delete a link")
            .map(|_| ())
    }
}

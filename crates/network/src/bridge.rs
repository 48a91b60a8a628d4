//! The bridge driver: a Linux bridge per network with the gateway's
//! address on it, and per container a veth pair whose one end is on the
//! bridge and whose other end is the container's `eth0`, with its
//! address and a default route through the gateway. Everything is done
//! over rtnetlink ([`crate::rtnl`]); only berth's own devices are touched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::rtnl::Rtnl;
use crate::NetworkError;

/// A network's bridge.
#[derive(Debug, Clone)]
pub struct Bridge<'a> {
    /// The device name (at most 15 bytes).
    pub name: &'a str,
    /// The gateway address, put on the bridge.
    pub gateway: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The MTU, if not the default.
    pub mtu: Option<u32>,
    /// The IPv6 gateway and prefix length, on a dual-stack network.
    pub gateway6: Option<(Ipv6Addr, u8)>,
}

/// Makes the bridge if it is missing, gives it its address and sets it
/// up; returns its index.
pub fn ensure(b: &Bridge) -> Result<u32, NetworkError> {
    check_name(b.name)?;
    let mut rtnl = Rtnl::open()?;
    let index = match rtnl.link_index(b.name)? {
        Some(i) => i,
        None => {
            match rtnl.add_bridge(b.name, b.mtu) {
                Err(NetworkError::Kernel {
                    errno: nix::errno::Errno::EEXIST,
                    ..
                })
                | Ok(()) => {}
                Err(e) => return Err(e),
            }
            rtnl.link_index(b.name)?
                .ok_or(NetworkError::NoSuchLink(b.name.to_string()))?
        }
    };
    rtnl.add_address(index, IpAddr::V4(b.gateway), b.prefix)?;
    if let Some((gw6, prefix6)) = b.gateway6 {
        // A host that turns IPv6 off by default would refuse the address.
        let knob = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", b.name);
        if std::fs::read_to_string(&knob).is_ok_and(|v| v.trim() != "0") {
            std::fs::write(&knob, "0").map_err(|err| NetworkError::Io {
                step: "turn IPv6 on for the bridge",
                err,
            })?;
        }
        rtnl.add_address(index, IpAddr::V6(gw6), prefix6)?;
    }
    rtnl.set_up(index, None)?;
    Ok(index)
}

/// Deletes bridge (or any link) `name`; nothing if it is gone.
pub fn remove_link(name: &str) -> Result<(), NetworkError> {
    remove_links(&[name])
}

/// Deletes the links `names` that exist, over one rtnetlink socket.
pub fn remove_links(names: &[&str]) -> Result<(), NetworkError> {
    let mut rtnl = Rtnl::open()?;
    for name in names {
        if let Some(i) = rtnl.link_index(name)? {
            match rtnl.delete_link(i) {
                Err(NetworkError::Kernel {
                    errno: nix::errno::Errno::ENODEV,
                    ..
                })
                | Ok(()) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Whether link `name` exists (in the caller's network namespace).
pub fn link_exists(name: &str) -> Result<bool, NetworkError> {
    Ok(Rtnl::open()?.link_index(name)?.is_some())
}

/// One container's place on a bridge.
#[derive(Debug, Clone)]
pub struct Endpoint<'a> {
    /// The container's network namespace (pinned file).
    pub netns: &'a Path,
    /// The host's end of the veth pair.
    pub host_veth: &'a str,
    /// The container's end, as it sees it (`eth0`).
    pub ifname: &'a str,
    /// The container's address.
    pub addr: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The default route's gateway (None: no route out).
    pub gateway: Option<Ipv4Addr>,
    /// The MTU, if not the default.
    pub mtu: Option<u32>,
    /// The container's IPv6 address and prefix length, on a dual-stack network.
    pub addr6: Option<(Ipv6Addr, u8)>,
    /// The container's MAC address (None: the kernel's random one).
    pub mac: Option<[u8; 6]>,
    /// The IPv6 default route's gateway (None: no IPv6 route out).
    pub gateway6: Option<Ipv6Addr>,
}

/// Checks that `name` can name a network device.
pub fn check_name(name: &str) -> Result<(), NetworkError> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':']) {
        return Err(NetworkError::BadName(name.to_string()));
    }
    Ok(())
}

/// Puts the container of `e` on bridge `bridge`. On failure, the veth
/// pair made here is deleted again.
pub fn attach(bridge: &str, e: &Endpoint) -> Result<(), NetworkError> {
    check_name(e.host_veth)?;
    let mut rtnl = Rtnl::open()?;
    let br = rtnl
        .link_index(bridge)?
        .ok_or(NetworkError::NoSuchLink(bridge.to_string()))?;
    let ns = crate::netns::open(e.netns)?;
    rtnl.add_veth(e.host_veth, e.ifname, ns.as_raw_fd(), e.mtu, e.mac)?;
    let done = (|| {
        let host = rtnl
            .link_index(e.host_veth)?
            .ok_or(NetworkError::NoSuchLink(e.host_veth.to_string()))?;
        rtnl.set_up(host, Some(br))?;
        crate::netns::run_in(e.netns, || {
            let mut inner = Rtnl::open()?;
            let i = inner
                .link_index(e.ifname)?
                .ok_or(NetworkError::NoSuchLink(e.ifname.to_string()))?;
            inner.add_address(i, IpAddr::V4(e.addr), e.prefix)?;
            if let Some((a6, p6)) = e.addr6 {
                inner.add_address(i, IpAddr::V6(a6), p6)?;
            }
            inner.set_up(i, None)?;
            if let Some(gw) = e.gateway {
                inner.add_default_route(IpAddr::V4(gw))?;
            }
            if let Some(gw6) = e.gateway6 {
                inner.add_default_route(IpAddr::V6(gw6))?;
            }
            Ok(())
        })
    })();
    if done.is_err() {
        let _ = remove_link(e.host_veth);
    }
    done
}

//! berth's container networks, daemonless: address management for bridge
//! networks ([`ipam`]), a synchronous rtnetlink client ([`rtnl`]),
//! network namespaces pinned to a file ([`netns`]) and the bridge driver
//! that puts a container on a bridge through a veth pair ([`bridge`]),
//! berth's nftables table for NAT and published ports ([`firewall`]),
//! the CNI plugin driver ([`cni`]) and a bounded way to run helpers
//! ([`exec`]).
//! The engine keeps the networks and the leases in its database and calls
//! these to make and unmake devices; nothing here touches a device it was
//! not asked to.

pub mod bridge;
pub mod cni;
pub mod dns;
pub mod exec;
pub mod firewall;
pub mod ipam;
pub mod ipam6;
pub mod netns;
pub mod rtnl;

/// Why a network step failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The kernel refused a request.
    #[error("{step}: {errno}")]
    Kernel {
        /// What was being done.
        step: &'static str,
        /// The kernel's answer.
        errno: nix::errno::Errno,
    },
    /// A socket or file operation failed.
    #[error("{step}: {err}")]
    Io {
        /// What was being done.
        step: &'static str,
        /// The error.
        err: std::io::Error,
    },
    /// A link that should exist does not.
    #[error("no network device {0}")]
    NoSuchLink(String),
    /// `nft` is not installed.
    #[error("nftables' nft is needed for networks with a way out and published ports (apt-get install nftables)")]
    NoNft,
    /// nft refused a batch.
    #[error("{step}: nft: {message}")]
    Firewall {
        /// What was being done.
        step: &'static str,
        /// What nft said.
        message: String,
    },
    /// Another container has published this host port.
    #[error("port {port}/{proto} is already allocated (another container publishes it)")]
    PortTaken {
        /// The protocol.
        proto: &'static str,
        /// The host port.
        port: u16,
    },
    /// A helper (`nft`) could not be run to its end.
    #[error("{step}: {err}")]
    Helper {
        /// What was being done.
        step: &'static str,
        /// What went wrong.
        err: crate::exec::ExecError,
    },
    /// A CNI plugin or configuration failed.
    #[error(transparent)]
    Cni(#[from] crate::cni::CniError),
    /// A device name the kernel would refuse.
    #[error("{0:?} cannot name a network device (1 to 15 bytes, no '/', ' ' or ':')")]
    BadName(String),
}

//! Address management for bridge networks: IPv4 subnets in CIDR form,
//! their gateway, and the next address in turn that no lease holds. Leases
//! themselves are the engine's (its database), so that two runs never
//! take the same address; this module only computes.

use std::collections::HashSet;
use std::net::Ipv4Addr;

/// Why a subnet or an address is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    /// Not `a.b.c.d/n`.
    #[error("{value:?} is not an IPv4 subnet (a.b.c.d/n): {reason}")]
    BadSubnet {
        /// What was given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An address outside its subnet.
    #[error("{addr} is not in {subnet}")]
    Outside {
        /// The address.
        addr: Ipv4Addr,
        /// The subnet.
        subnet: Subnet,
    },
    /// An address the subnet reserves (network, broadcast, gateway).
    #[error("{addr} is reserved in {subnet} (its network, broadcast or gateway address)")]
    Reserved {
        /// The address.
        addr: Ipv4Addr,
        /// The subnet.
        subnet: Subnet,
    },
}

/// An IPv4 subnet: the network address (host bits zero) and its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// The network address.
    pub net: Ipv4Addr,
    /// The prefix length (8 to 30: room for a gateway and a container).
    pub prefix: u8,
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl std::str::FromStr for Subnet {
    type Err = IpamError;

    fn from_str(value: &str) -> Result<Self, IpamError> {
        let bad = |reason| IpamError::BadSubnet {
            value: value.to_string(),
            reason,
        };
        let (addr, prefix) = value.split_once('/').ok_or_else(|| bad("no /prefix"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| bad("the prefix is not a number"))?;
        if !(8..=30).contains(&prefix) {
            return Err(bad("the prefix must be 8 to 30"));
        }
        let s = Subnet { net: addr, prefix };
        if u32::from(addr) & !s.mask() != 0 {
            return Err(bad("host bits are set (give the network address)"));
        }
        Ok(s)
    }
}

impl Subnet {
    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    /// Whether `a` is in the subnet.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.net)
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net) | !self.mask())
    }

    /// The gateway Docker picks: the first host address.
    pub fn default_gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net) + 1)
    }

    /// Whether the two subnets share an address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.net) || other.contains(self.net)
    }

    /// Checks that `a` may be given to a container (`--ip`) with `gateway`.
    pub fn check_host(&self, a: Ipv4Addr, gateway: Ipv4Addr) -> Result<(), IpamError> {
        if !self.contains(a) {
            return Err(IpamError::Outside {
                addr: a,
                subnet: *self,
            });
        }
        if a == self.net || a == self.broadcast() || a == gateway {
            return Err(IpamError::Reserved {
                addr: a,
                subnet: *self,
            });
        }
        Ok(())
    }

    /// The first address of `range` (a part of the subnet, `--ip-range`)
    /// after `after` (None: from its start), wrapping round, that the
    /// subnet does not reserve and `used` does not hold. Addresses are
    /// handed out in turn, as Docker's and Podman's are, so one just given
    /// back is not given again at once: conntrack entries, and peers' ARP
    /// and DNS caches, still name the container that had it.
    pub fn next_free_in(
        &self,
        range: &Subnet,
        gateway: Ipv4Addr,
        used: &HashSet<Ipv4Addr>,
        after: Option<Ipv4Addr>,
    ) -> Option<Ipv4Addr> {
        let first = u32::from(range.net).max(u32::from(self.net) + 1);
        let last = u32::from(range.broadcast()).min(u32::from(self.broadcast()) - 1);
        if first > last {
            return None;
        }
        let start = match after.map(u32::from) {
            Some(a) if a >= first && a < last => a + 1,
            _ => first,
        };
        (start..=last)
            .chain(first..start)
            .map(Ipv4Addr::from)
            .find(|a| *a != gateway && !used.contains(a))
    }

    /// [`Subnet::next_free_in`] over the whole subnet.
    pub fn next_free(
        &self,
        gateway: Ipv4Addr,
        used: &HashSet<Ipv4Addr>,
        after: Option<Ipv4Addr>,
    ) -> Option<Ipv4Addr> {
        self.next_free_in(self, gateway, used, after)
    }
}

/// Parses a unicast MAC address, `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], &'static str> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err("expected six hex pairs, aa:bb:cc:dd:ee:ff");
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err("expected six hex pairs, aa:bb:cc:dd:ee:ff");
        }
        mac[i] = u8::from_str_radix(p, 16).map_err(|_| "not hexadecimal")?;
    }
    if mac[0] & 1 == 1 {
        return Err("a multicast address (the first byte is odd)");
    }
    if mac == [0; 6] {
        return Err("the zero address");
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_bad_ones_say_why() {
        let s: Subnet = "10.89.0.0/16".parse().unwrap();
        assert_eq!(s.to_string(), "10.89.0.0/16");
        assert_eq!(s.default_gateway(), Ipv4Addr::new(10, 89, 0, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 89, 255, 255));
        for (bad, why) in [
            ("10.89.0.0", "no /prefix"),
            ("10.89.0.1/16", "host bits"),
            ("10.89.0.0/31", "8 to 30"),
            ("nope/16", "IPv4"),
        ] {
            let e = bad.parse::<Subnet>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn addresses_skip_the_reserved_and_the_used() {
        let s: Subnet = "192.168.7.0/29".parse().unwrap();
        let gw = s.default_gateway();
        let mut used = HashSet::new();
        let mut got = vec![];
        while let Some(a) = s.next_free(gw, &used, None) {
            used.insert(a);
            got.push(a.octets()[3]);
        }
        assert_eq!(got, [2, 3, 4, 5, 6]);
        let range: Subnet = "192.168.7.4/30".parse().unwrap();
        let mut used = HashSet::new();
        used.insert(Ipv4Addr::new(192, 168, 7, 4));
        assert_eq!(
            s.next_free_in(&range, gw, &used, None),
            Some(Ipv4Addr::new(192, 168, 7, 5))
        );
        used.insert(Ipv4Addr::new(192, 168, 7, 5));
        used.insert(Ipv4Addr::new(192, 168, 7, 6));
        assert_eq!(
            s.next_free_in(&range, gw, &used, None),
            None,
            "the broadcast is not given"
        );
        assert!(s.check_host(Ipv4Addr::new(192, 168, 7, 1), gw).is_err());
        assert!(s.check_host(Ipv4Addr::new(192, 168, 7, 7), gw).is_err());
        assert!(s.check_host(Ipv4Addr::new(192, 168, 8, 2), gw).is_err());
        s.check_host(Ipv4Addr::new(192, 168, 7, 5), gw).unwrap();
    }

    #[test]
    fn addresses_are_given_in_turn_and_wrap_round() {
        let s: Subnet = "10.0.0.0/29".parse().unwrap();
        let gw = s.default_gateway();
        let a = |n| Ipv4Addr::new(10, 0, 0, n);
        let mut used = HashSet::new();
        // .2 was given and given back: the next one is .3, not .2 again.
        assert_eq!(s.next_free(gw, &used, Some(a(2))), Some(a(3)));
        used.extend([a(3), a(4)]);
        assert_eq!(s.next_free(gw, &used, Some(a(2))), Some(a(5)));
        // After the last host address, round to the first free one.
        assert_eq!(s.next_free(gw, &used, Some(a(6))), Some(a(2)));
        used.extend([a(2), a(5), a(6)]);
        assert_eq!(s.next_free(gw, &used, Some(a(4))), None);
        // A cursor outside the range starts at its beginning.
        let range: Subnet = "10.0.0.4/30".parse().unwrap();
        let free = HashSet::new();
        assert_eq!(s.next_free_in(&range, gw, &free, Some(a(2))), Some(a(4)));
        assert_eq!(s.next_free_in(&range, gw, &free, Some(a(4))), Some(a(5)));
        assert_eq!(s.next_free_in(&range, gw, &free, Some(a(6))), Some(a(4)));
    }

    #[test]
    fn macs_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_mac("02:42:AC:11:00:02").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 2]
        );
        assert!(parse_mac("01:00:5e:00:00:01")
            .unwrap_err()
            .contains("multicast"));
        assert!(parse_mac("02:42:ac:11:00").is_err());
        assert!(parse_mac("02:42:ac:11:00:zz").is_err());
        assert!(parse_mac("00:00:00:00:00:00").is_err());
    }

    #[test]
    fn overlap_either_way() {
        let a: Subnet = "10.0.0.0/8".parse().unwrap();
        let b: Subnet = "10.5.0.0/16".parse().unwrap();
        let c: Subnet = "11.0.0.0/16".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }
}

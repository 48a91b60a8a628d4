//! IPv6 address management for dual-stack bridge networks: subnets in
//! CIDR form, their gateway (the first address), unique local subnets
//! (RFC 4193: `fd` and a random 40-bit global id, one /64) and the lowest
//! address no lease holds. As with IPv4 ([`crate::ipam`]), the leases are
//! the engine's; this module only computes.

use std::collections::HashSet;
use std::net::Ipv6Addr;

/// Why an IPv6 subnet or address is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Ipam6Error {
    /// Not `x:y::/n`.
    #[error("{value:?} is not an IPv6 subnet (x:y::/n): {reason}")]
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
        addr: Ipv6Addr,
        /// The subnet.
        subnet: Subnet6,
    },
    /// The subnet's own address or its gateway.
    #[error("{addr} is reserved in {subnet} (its network or gateway address)")]
    Reserved {
        /// The address.
        addr: Ipv6Addr,
        /// The subnet.
        subnet: Subnet6,
    },
}

/// An IPv6 subnet: the network address (host bits zero) and its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet6 {
    /// The network address.
    pub net: Ipv6Addr,
    /// The prefix length (16 to 124).
    pub prefix: u8,
}

impl std::fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl std::str::FromStr for Subnet6 {
    type Err = Ipam6Error;

    fn from_str(value: &str) -> Result<Self, Ipam6Error> {
        let bad = |reason| Ipam6Error::BadSubnet {
            value: value.to_string(),
            reason,
        };
        let (addr, prefix) = value.split_once('/').ok_or_else(|| bad("no /prefix"))?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| bad("not an IPv6 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| bad("the prefix is not a number"))?;
        if !(16..=124).contains(&prefix) {
            return Err(bad("the prefix must be 16 to 124"));
        }
        let s = Subnet6 { net: addr, prefix };
        if u128::from(addr) & !s.mask() != 0 {
            return Err(bad("host bits are set (give the network address)"));
        }
        Ok(s)
    }
}

impl Subnet6 {
    fn mask(&self) -> u128 {
        u128::MAX << (128 - self.prefix)
    }

    /// A unique local /64 (`fdXX:XXXX:XXXX::/64`) from 5 random bytes.
    pub fn unique_local(random: [u8; 5]) -> Subnet6 {
        let mut o = [0u8; 16];
        o[0] = 0xfd;
        o[1..6].copy_from_slice(&random);
        Subnet6 {
            net: Ipv6Addr::from(o),
            prefix: 64,
        }
    }

    /// Whether `a` is in the subnet.
    pub fn contains(&self, a: Ipv6Addr) -> bool {
        u128::from(a) & self.mask() == u128::from(self.net)
    }

    /// The gateway: the first address after the network's.
    pub fn default_gateway(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.net) + 1)
    }

    /// Whether the two subnets share an address.
    pub fn overlaps(&self, other: &Subnet6) -> bool {
        self.contains(other.net) || other.contains(self.net)
    }

    /// Checks that `a` may be given to a container (`--ip6`).
    pub fn check_host(&self, a: Ipv6Addr, gateway: Ipv6Addr) -> Result<(), Ipam6Error> {
        if !self.contains(a) {
            return Err(Ipam6Error::Outside {
                addr: a,
                subnet: *self,
            });
        }
        if a == self.net || a == gateway {
            return Err(Ipam6Error::Reserved {
                addr: a,
                subnet: *self,
            });
        }
        Ok(())
    }

    /// The first address after `after` (None: from the subnet's start),
    /// wrapping round, that is not the gateway and not in `used`, among
    /// the first 65536 of the subnet: in turn, as for IPv4
    /// ([`crate::ipam::Subnet::next_free_in`]).
    pub fn next_free(
        &self,
        gateway: Ipv6Addr,
        used: &HashSet<Ipv6Addr>,
        after: Option<Ipv6Addr>,
    ) -> Option<Ipv6Addr> {
        let first = u128::from(self.net) + 1;
        let last = (u128::from(self.net) | !self.mask()).min(first + 65535);
        let start = match after.map(u128::from) {
            Some(a) if a >= first && a < last => a + 1,
            _ => first,
        };
        (start..=last)
            .chain(first..start)
            .map(Ipv6Addr::from)
            .find(|a| *a != gateway && !used.contains(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_bad_ones_say_why() {
        let s: Subnet6 = "fd00:beef::/64".parse().unwrap();
        assert_eq!(s.to_string(), "fd00:beef::/64");
        assert_eq!(
            s.default_gateway(),
            "fd00:beef::1".parse::<Ipv6Addr>().unwrap()
        );
        for (bad, why) in [
            ("fd00::", "no /prefix"),
            ("fd00::1/64", "host bits"),
            ("fd00::/127", "16 to 124"),
            ("10.0.0.0/8", "IPv6"),
        ] {
            let e = bad.parse::<Subnet6>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(bad), "{e}");
        }
        let u = Subnet6::unique_local([1, 2, 3, 4, 5]);
        assert_eq!(u.to_string(), "fd01:203:405::/64");
    }

    #[test]
    fn addresses_skip_the_reserved_and_the_used() {
        let s: Subnet6 = "fd00:1::/120".parse().unwrap();
        let gw = s.default_gateway();
        let mut used = HashSet::new();
        used.insert("fd00:1::2".parse().unwrap());
        assert_eq!(
            s.next_free(gw, &used, None),
            Some("fd00:1::3".parse().unwrap())
        );
        assert_eq!(
            s.next_free(gw, &used, Some("fd00:1::3".parse().unwrap())),
            Some("fd00:1::4".parse().unwrap()),
            "in turn"
        );
        assert_eq!(
            s.next_free(gw, &used, Some("fd00:1::ff".parse().unwrap())),
            Some("fd00:1::3".parse().unwrap()),
            "round from the last"
        );
        assert!(s.check_host(gw, gw).is_err());
        assert!(s.check_host("fd00:2::5".parse().unwrap(), gw).is_err());
        s.check_host("fd00:1::9".parse().unwrap(), gw).unwrap();
        let a: Subnet6 = "fd00::/16".parse().unwrap();
        assert!(a.overlaps(&s) && s.overlaps(&a));
    }
}

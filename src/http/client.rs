//! The client's address: the TCP peer, unless the peer is a proxy we were told to trust
//! (`LOY_TRUSTED_PROXIES`), in which case the address that proxy reports in its forwarding header
//! (`X-Forwarded-For` by default, `LOY_CLIENT_ADDRESS_HEADER`). A header sent by anyone else is
//! ignored: otherwise every client could pick its own rate-limit key.

use std::net::{IpAddr, Ipv4Addr};

use actix_web::HttpRequest;
use actix_web::http::header::HeaderName;
use ipnet::IpNet;

/// The proxies whose forwarding header is believed, and the header's name.
#[derive(Debug, Clone)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: HeaderName,
}

impl Default for TrustedProxies {
    fn default() -> Self {
        Self { networks: Vec::new(), header: HeaderName::from_static("x-forwarded-for") }
    }
}

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and networks (`10.0.0.1, 172.16.0.0/12, ::1`)
    /// and the header name (`None`: `X-Forwarded-For`).
    pub fn parse(list: &str, header: Option<&str>) -> Result<Self, String> {
        let mut networks = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(format!("`{item}` is not an IP address or a network like 10.0.0.0/8")),
                },
            };
            networks.push(net);
        }
        let header = match header {
            None => HeaderName::from_static("x-forwarded-for"),
            Some(name) => HeaderName::try_from(name.trim()).map_err(|_| format!("`{name}` is not a header name"))?,
        };
        Ok(Self { networks, header })
    }

    /// Whether no proxy is trusted (every header is ignored).
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`, given the values of the forwarding header in the order received.
    /// Walks from the right (the hop nearest to us) past trusted proxies; the first address that
    /// is not a trusted proxy is the client. Garbage in the header stops the walk at the last
    /// address a trusted proxy vouched for.
    pub fn resolve<'a>(&self, peer: IpAddr, header_values: impl IntoIterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> =
            header_values.into_iter().flat_map(|v| v.split(',')).map(str::trim).filter(|s| !s.is_empty()).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { return client };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }
}

/// An address as a proxy writes it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    None
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, what a dual-stack socket reports) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The address of the client that sent `req` (see the module documentation).
pub fn client_addr(req: &HttpRequest, proxies: &TrustedProxies) -> IpAddr {
    let peer = req.peer_addr().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    let values = req.headers().get_all(&proxies.header).filter_map(|v| v.to_str().ok());
    proxies.resolve(peer, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_header_from_an_untrusted_peer_is_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(none.resolve(ip("203.0.113.9"), ["1.1.1.1"]), ip("203.0.113.9"));
        let some = TrustedProxies::parse("10.0.0.1", None).unwrap();
        assert_eq!(some.resolve(ip("203.0.113.9"), ["1.1.1.1"]), ip("203.0.113.9"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.1", None).unwrap();
        assert_eq!(proxies.resolve(ip("10.0.0.1"), ["198.51.100.7"]), ip("198.51.100.7"));
        // Without a header the proxy itself is all we know.
        assert_eq!(proxies.resolve(ip("10.0.0.1"), []), ip("10.0.0.1"));
    }

    #[test]
    fn the_right_most_untrusted_hop_wins_so_a_client_cannot_prepend_a_fake_one() {
        let proxies = TrustedProxies::parse("10.0.0.0/8", None).unwrap();
        // The client sent "X-Forwarded-For: 1.2.3.4"; the edge proxy appended its real address,
        // and an inner proxy appended the edge's.
        let chain = ["1.2.3.4, 198.51.100.7, 10.1.1.1"];
        assert_eq!(proxies.resolve(ip("10.2.2.2"), chain), ip("198.51.100.7"));
        // Several header lines are one list in order.
        assert_eq!(proxies.resolve(ip("10.2.2.2"), ["1.2.3.4", "198.51.100.7", "10.1.1.1"]), ip("198.51.100.7"));
        // Every hop trusted: the left-most one.
        assert_eq!(proxies.resolve(ip("10.2.2.2"), ["10.3.3.3, 10.1.1.1"]), ip("10.3.3.3"));
    }

    #[test]
    fn garbage_stops_at_the_last_vouched_address() {
        let proxies = TrustedProxies::parse("10.0.0.0/8", None).unwrap();
        assert_eq!(proxies.resolve(ip("10.2.2.2"), ["1.2.3.4, unknown, 10.1.1.1"]), ip("10.1.1.1"));
        assert_eq!(proxies.resolve(ip("10.2.2.2"), ["nonsense"]), ip("10.2.2.2"));
    }

    #[test]
    fn cidrs_ipv6_ports_and_mapped_addresses() {
        let proxies = TrustedProxies::parse(" 172.16.0.0/12 , 2001:db8::/32,::1", Some("X-Real-IP")).unwrap();
        assert!(proxies.trusts(ip("172.31.255.255")));
        assert!(!proxies.trusts(ip("172.32.0.1")));
        assert!(proxies.trusts(ip("2001:db8:1::5")));
        assert!(proxies.trusts(ip("::1")));
        assert!(proxies.trusts(ip("::ffff:172.16.0.1")), "a dual-stack socket's view of an IPv4 proxy");
        assert_eq!(proxies.resolve(ip("::1"), ["[2001:db9::7]:4711"]), ip("2001:db9::7"));
        assert_eq!(proxies.resolve(ip("172.16.0.1"), ["198.51.100.7:5000"]), ip("198.51.100.7"));
        assert_eq!(proxies.resolve(ip("::ffff:203.0.113.1"), ["1.1.1.1"]), ip("203.0.113.1"));
        assert_eq!(proxies.header.as_str(), "x-real-ip");
    }

    #[test]
    fn mistakes_are_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/33", None).is_err());
        assert!(TrustedProxies::parse("proxy.example", None).is_err());
        assert!(TrustedProxies::parse("", Some("bad header")).is_err());
        assert!(TrustedProxies::parse("", None).unwrap().is_empty());
    }

    #[test]
    fn the_request_peer_is_used() {
        let proxies = TrustedProxies::parse("127.0.0.1", None).unwrap();
        let req = actix_web::test::TestRequest::default()
            .peer_addr("127.0.0.1:5000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "192.0.2.4"))
            .to_http_request();
        assert_eq!(client_addr(&req, &proxies), ip("192.0.2.4"));
        let spoofed = actix_web::test::TestRequest::default()
            .peer_addr("192.0.2.8:5000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "192.0.2.4"))
            .to_http_request();
        assert_eq!(client_addr(&spoofed, &TrustedProxies::default()), ip("192.0.2.8"));
    }
}

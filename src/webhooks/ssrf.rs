//! Where deliveries may go (server-side request forgery): only http(s) URLs, and — unless
//! `LOY_WEBHOOK_ALLOW_PRIVATE` allows it, which development does by default — never to an
//! address in a loopback, private, link-local, unique-local, shared or unspecified range. The
//! check runs when an endpoint is configured and again at every delivery, on the addresses the
//! connection will actually use (the client's resolver refuses them), because DNS can change.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("the address is not a URL")]
    NotAUrl,
    #[error("only http:// and https:// URLs are allowed")]
    Scheme,
    #[error("the URL must not contain a user name or password")]
    Credentials,
    #[error("the host name cannot be resolved")]
    Unresolvable,
    #[error("the host resolves to a private, loopback or link-local address ({0}), which is not allowed here")]
    Private(IpAddr),
}

const BLOCKED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// Whether `ip` is in a range deliveries must not reach without the setting.
pub fn is_private(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    BLOCKED.iter().filter_map(|net| net.parse::<IpNet>().ok()).any(|net| net.contains(&ip))
}

/// Parses an endpoint URL: http(s), a host, no credentials.
pub fn parse_url(s: &str) -> Result<url::Url, UrlRefused> {
    let url = url::Url::parse(s.trim()).map_err(|_| UrlRefused::NotAUrl)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlRefused::Scheme);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlRefused::NotAUrl);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::Credentials);
    }
    Ok(url)
}

/// Checks a URL for configuration: its shape, and (unless `allow_private`) every address its
/// host resolves to now.
pub async fn check_url(s: &str, allow_private: bool) -> Result<url::Url, UrlRefused> {
    let url = parse_url(s)?;
    if allow_private {
        return Ok(url);
    }
    let host = url.host_str().ok_or(UrlRefused::NotAUrl)?.trim_matches(['[', ']']).to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((host.as_str(), port)).await.map_err(|_| UrlRefused::Unresolvable)?.collect();
    if addrs.is_empty() {
        return Err(UrlRefused::Unresolvable);
    }
    if let Some(bad) = addrs.iter().map(SocketAddr::ip).find(|ip| is_private(*ip)) {
        return Err(UrlRefused::Private(bad));
    }
    Ok(url)
}

/// The delivery client's resolver: the system's, refusing private addresses when they are not
/// allowed, so the address checked is the address connected to.
#[derive(Debug)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private {
                if let Some(bad) = addrs.iter().map(SocketAddr::ip).find(|ip| is_private(*ip)) {
                    return Err(Box::new(UrlRefused::Private(bad)) as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The resolver as the client builder takes it.
pub fn resolver(allow_private: bool) -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver { allow_private })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn only_plain_http_urls_are_taken() {
        assert!(parse_url("https://crm.example/hooks").is_ok());
        assert_eq!(parse_url("ftp://crm.example/"), Err(UrlRefused::Scheme));
        assert_eq!(parse_url("file:///etc/passwd"), Err(UrlRefused::Scheme));
        assert_eq!(parse_url("https://u:p@crm.example/"), Err(UrlRefused::Credentials));
        assert_eq!(parse_url("not a url"), Err(UrlRefused::NotAUrl));
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        assert!(matches!(check_url("http://127.0.0.1:9/x", false).await, Err(UrlRefused::Private(_))));
        assert!(matches!(check_url("http://localhost:9/x", false).await, Err(UrlRefused::Private(_))));
        assert!(matches!(check_url("http://[::1]:9/x", false).await, Err(UrlRefused::Private(_))));
        assert!(check_url("http://127.0.0.1:9/x", true).await.is_ok());
    }
}

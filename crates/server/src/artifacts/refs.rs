//! Checks on reference entries (`s3://`, `gs://`, `https://` URIs recorded instead of bytes).
//!
//! The server never fetches a reference, but clients do, and other tools read them from our
//! manifests; so a URI that points into the server's own network is refused when recorded.
//! For `https://` the host is resolved and every address it resolves to must be public;
//! an allow-list names an organisation's own hosts that may be private.

use std::net::{IpAddr, Ipv4Addr};

/// Longest reference URI.
const MAX_URI_LEN: usize = 2048;

/// Whether `ip` is one a reference may not point at: loopback, link-local (cloud metadata
/// included), private and shared ranges, unspecified, multicast, broadcast, documentation.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => {
            // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible forms are judged as IPv4.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden_v4(v4);
            }
            let seg = v6.segments();
            if seg[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified() {
                return is_forbidden_v4(Ipv4Addr::new(
                    (seg[6] >> 8) as u8,
                    seg[6] as u8,
                    (seg[7] >> 8) as u8,
                    seg[7] as u8,
                ));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (AWS metadata fd00:ec2::254 too)
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg[0] & 0xffc0) == 0xfec0 // site-local fec0::/10
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x0064 && seg[1] == 0xff9b) // NAT64 to IPv4
                || seg[0] == 0x2002 // 6to4 embeds an IPv4 address
        }
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254.0.0/16, cloud metadata 169.254.169.254
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || o[0] >= 240 // reserved
}

/// Whether `host` is on the allow-list: an exact name, or a `.suffix` entry matching any
/// subdomain.
fn allowed(host: &str, allow: &[String]) -> bool {
    allow.iter().any(|a| {
        let a = a.trim().to_ascii_lowercase();
        if let Some(suffix) = a.strip_prefix('.') {
            host == suffix || host.ends_with(&format!(".{suffix}"))
        } else {
            !a.is_empty() && host == a
        }
    })
}

/// Checks a reference URI; the error says what is wrong.
pub async fn check_reference(uri: &str, allow: &[String]) -> Result<(), String> {
    if uri.len() > MAX_URI_LEN {
        return Err(format!("the URI is longer than {MAX_URI_LEN} bytes"));
    }
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("{uri:?} contains whitespace or control characters"));
    }
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| format!("{uri:?} is not a URI; use s3://, gs:// or https://"))?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    match scheme.as_str() {
        "s3" | "gs" => {
            if !is_bucket_name(authority) {
                return Err(format!(
                    "{uri:?}: {authority:?} is not a valid bucket name (3 to 63 characters of a-z, 0-9, '.', '-')"
                ));
            }
            Ok(())
        }
        "https" => check_https_host(uri, authority, allow).await,
        other => Err(format!(
            "{uri:?}: the {other}:// scheme is not allowed for references; use s3://, gs:// or https://"
        )),
    }
}

fn is_bucket_name(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && !b.starts_with(['.', '-'])
        && !b.ends_with(['.', '-'])
        && b.parse::<Ipv4Addr>().is_err()
}

async fn check_https_host(uri: &str, authority: &str, allow: &[String]) -> Result<(), String> {
    if authority.contains('@') {
        return Err(format!(
            "{uri:?}: credentials in a reference URI are not allowed"
        ));
    }
    // Split host and port; IPv6 literals come in brackets.
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{uri:?}: unclosed '[' in the host"))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port: u16 = match port {
        None | Some("") => 443,
        Some(p) => p
            .parse()
            .map_err(|_| format!("{uri:?}: {p:?} is not a port number"))?,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return Err(format!("{uri:?} names no host"));
    }
    if allowed(&host, allow) {
        return Ok(());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return if is_forbidden_ip(ip) {
            Err(format!(
                "{uri:?}: {ip} is a loopback, link-local, private or reserved address; \
                 references must point at public hosts (a server administrator can allow a host \
                 with --reference-allow-host)"
            ))
        } else {
            Ok(())
        };
    }
    // One answer whether the name does not resolve or resolves to an internal address, and
    // never the address: the error must not map the server's network for the caller.
    let not_public = || {
        format!(
            "{uri:?}: {host} does not resolve to a public address; references must point at \
             public hosts (a server administrator can allow a host with --reference-allow-host)"
        )
    };
    // Names like "2130706433" or "0x7f.1" that some resolvers read as addresses.
    if host
        .split('.')
        .all(|p| !p.is_empty() && (p.bytes().all(|b| b.is_ascii_digit()) || p.starts_with("0x")))
    {
        return Err(format!(
            "{uri:?}: {host:?} is a numeric address in an unusual form; write it out"
        ));
    }
    let addrs: Vec<IpAddr> = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    .map_err(|_| format!("{uri:?}: resolving {host} timed out"))?
    .map_err(|_| not_public())?
    .map(|a| a.ip())
    .collect();
    if addrs.is_empty() || addrs.into_iter().any(is_forbidden_ip) {
        return Err(not_public());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        for bad in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
        ] {
            assert!(is_forbidden_ip(bad.parse().unwrap()), "{bad}");
        }
        for good in ["8.8.8.8", "172.32.0.1", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert!(!is_forbidden_ip(good.parse().unwrap()), "{good}");
        }
        assert!(is_forbidden_ip(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)));
    }

    #[tokio::test]
    async fn uris() {
        let none: Vec<String> = vec![];
        assert!(
            check_reference("s3://my-bucket/data/x.csv", &none)
                .await
                .is_ok()
        );
        assert!(
            check_reference("gs://bucket.example/x", &none)
                .await
                .is_ok()
        );
        assert!(
            check_reference("https://93.184.215.14/x", &none)
                .await
                .is_ok()
        );
        for bad in [
            "http://example.com/x",
            "file:///etc/passwd",
            "ftp://example.com/x",
            "https://127.0.0.1/x",
            "https://[::1]/x",
            "https://[::ffff:7f00:1]/x",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.1:8443/x",
            "https://localhost/x",
            "https://LOCALHOST./x",
            "https://2130706433/x",
            "https://user:pw@example.com/x",
            "s3://A_B/x",
            "not a uri",
        ] {
            assert!(check_reference(bad, &none).await.is_err(), "{bad}");
        }
        // A name that resolves to an internal address is refused without saying which one.
        let internal = check_reference("https://localhost/x", &none)
            .await
            .unwrap_err();
        assert!(
            !internal.contains("127.0.0.1") && !internal.contains("::1"),
            "{internal}"
        );
        assert!(
            internal.contains("localhost does not resolve to a public address"),
            "{internal}"
        );
        let allow = vec!["localhost".to_string(), ".corp.internal".to_string()];
        assert!(check_reference("https://localhost/x", &allow).await.is_ok());
        assert!(
            check_reference("https://127.0.0.1/x", &allow)
                .await
                .is_err()
        );
    }
}

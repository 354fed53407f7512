//! `rampartctl stats`: read a node's Prometheus text-format metrics endpoint (served by the
//! control thread, issue 6) and show it as a table. The endpoint is plain HTTP on a management
//! address, so a minimal HTTP/1.0 GET over std's TcpStream is enough: no HTTP client dependency.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Failure to fetch or parse the metrics.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// Connecting, sending or reading failed.
    #[error("fetching metrics from {addr}: {source}")]
    Io {
        /// The endpoint.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The endpoint answered with something other than 200.
    #[error("{addr} answered: {status}: {body}")]
    Http {
        /// The endpoint.
        addr: String,
        /// The status line.
        status: String,
        /// What it said (e.g. which query parameter is wrong).
        body: String,
    },
}

/// One sample: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels as written between the braces (`port="0",reason="no_rule"`), or empty.
    pub labels: String,
    /// The value.
    pub value: f64,
}

/// GET `path` from `addr` (`host:port`) and return the body.
pub fn fetch(addr: &str, path: &str, timeout: Duration) -> Result<String, StatsError> {
    let io = |source| StatsError::Io {
        addr: addr.to_owned(),
        source,
    };
    let sock = addr.to_socket_addrs().map_err(io)?.next().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no address",
        ))
    })?;
    let mut stream = TcpStream::connect_timeout(&sock, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    // One write: `write!` on a bare socket sends each formatted piece as its own segment, and
    // the endpoint answers (and closes) after its first read, so the rest met a closed socket
    // (EPIPE) now and then.
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(io)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(StatsError::Http {
            addr: addr.to_owned(),
            status: status.to_owned(),
            body: body.trim().to_owned(),
        });
    }
    Ok(body.to_owned())
}

/// Parse Prometheus text format (comments and malformed lines are skipped).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let (series, rest) = match line.find('{') {
                Some(open) => {
                    let close = open + line[open..].find('}')?;
                    (&line[..=close], &line[close + 1..])
                }
                None => line.split_at(line.find(char::is_whitespace)?),
            };
            let value = rest.split_whitespace().next()?.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            Some(Sample {
                name: name.to_owned(),
                labels: labels.to_owned(),
                value,
            })
        })
        .collect()
}

/// Render samples as an aligned three-column table.
pub fn table(samples: &[Sample]) -> String {
    let w_name = samples
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let w_labels = samples
        .iter()
        .map(|s| s.labels.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut out = format!("{:<w_name$}  {:<w_labels$}  VALUE\n", "METRIC", "LABELS");
    for s in samples {
        out.push_str(&format!(
            "{:<w_name$}  {:<w_labels$}  {}\n",
            s.name, s.labels, s.value
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const TEXT: &str = "# HELP rampart_rx_packets_total Packets received\n\
        # TYPE rampart_rx_packets_total counter\n\
        rampart_rx_packets_total{port=\"0\",core=\"1\"} 12345\n\
        rampart_policy_generation 7\n\
        garbage line without value\n";

    #[test]
    fn parses_labels_and_plain_samples() {
        let samples = parse(TEXT);
        assert_eq!(samples.len(), 2, "{samples:?}");
        assert_eq!(samples[0].name, "rampart_rx_packets_total");
        assert_eq!(samples[0].labels, "port=\"0\",core=\"1\"");
        assert_eq!(samples[0].value, 12345.0);
        assert_eq!(samples[1].name, "rampart_policy_generation");
        assert_eq!(samples[1].value, 7.0);
        let t = table(&samples);
        assert!(
            t.lines().count() == 3 && t.contains("rampart_policy_generation"),
            "{t}"
        );
    }

    #[test]
    fn fetches_over_http() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // The request may arrive in several segments: read up to the end of its head.
            let mut req = Vec::new();
            let mut buf = [0u8; 512];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "client closed before the end of its request");
                req.extend_from_slice(&buf[..n]);
            }
            assert!(String::from_utf8_lossy(&req).starts_with("GET /metrics HTTP/1.0"));
            write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n{TEXT}"
            )
            .unwrap();
        });
        let body = fetch(&addr, "/metrics", Duration::from_secs(5)).unwrap();
        server.join().unwrap();
        assert_eq!(parse(&body).len(), 2);
    }

    #[test]
    fn closed_port_is_a_clear_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = fetch(&addr, "/metrics", Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&addr), "{err}");
    }
}

//! A minimal HTTP/1.1 client for nodeguard's `--metrics-addr` endpoint (`/metrics`, `/healthz`,
//! `/readyz`), and a reader for the OpenMetrics text `/metrics` serves.
//!
//! Deliberately tiny: one `GET` per connection (`Connection: close`), a `Content-Length` or
//! chunked body, no TLS. Enough for a test to ask what a Prometheus scraper or a kubelet probe
//! would ask, without another HTTP stack in the harness.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A loopback address with a port that was free a moment ago: bound to port 0, read, released.
///
/// # Errors
/// When no port can be bound.
pub fn free_loopback_addr() -> Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// An HTTP response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code (200, 503, ...).
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body, as text.
    pub body: String,
}

/// `GET path` on `addr`.
///
/// # Errors
/// When the connection fails or the answer is not HTTP/1.x.
pub async fn get(addr: SocketAddr, path: &str) -> Result<Response> {
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        parse_response(&raw).with_context(|| format!("GET http://{addr}{path}"))
    })
    .await
    .with_context(|| format!("GET http://{addr}{path} took over {REQUEST_TIMEOUT:?}"))?
}

/// Parses a complete HTTP/1.x response.
fn parse_response(raw: &[u8]) -> Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers in the response")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        bail!("malformed status line {status_line:?}");
    };
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1.x response: {status_line:?}");
    }
    let status: u16 = code
        .parse()
        .with_context(|| format!("malformed status line {status_line:?}"))?;
    let mut content_length = None;
    let mut chunked = false;
    let mut content_type = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => content_length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "content-type" => content_type = Some(value.to_owned()),
            _ => {}
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else if let Some(len) = content_length {
        if body.len() < len {
            bail!(
                "body cut short: {} of {len} bytes (Content-Length)",
                body.len()
            );
        }
        body[..len].to_vec()
    } else {
        body.to_vec()
    };
    Ok(Response {
        status,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Decodes a chunked body.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("chunk size line without an end")?;
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("malformed chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size + 2 {
            bail!("chunk cut short");
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// One sample of an OpenMetrics (or Prometheus text) exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name as exposed (`nodeguard_decisions_total`).
    pub name: String,
    /// Its labels, in exposition order.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

/// The samples of a `/metrics` answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metrics {
    /// Every sample, in exposition order.
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parses an exposition; comment lines (`# TYPE`, `# HELP`, `# EOF`) are skipped.
    ///
    /// # Errors
    /// On a sample line that cannot be read.
    pub fn parse(text: &str) -> Result<Metrics> {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| parse_sample(l).with_context(|| format!("metrics line {l:?}")))
            .collect::<Result<_>>()?;
        Ok(Metrics { samples })
    }

    /// The value of the sample `name` whose labels include every pair of `labels` (other
    /// labels may be present). `None` when there is none; the sum when several match.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    /// [`Metrics::value`], with an absent sample read as 0 (a labelled counter appears only
    /// once it has counted something).
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }
}

fn parse_sample(line: &str) -> Result<Sample> {
    let name_end = line
        .find(['{', ' '])
        .context("a sample needs a name and a value")?;
    let name = line[..name_end].to_owned();
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut end = None;
        let mut key = String::new();
        let mut value = String::new();
        #[derive(PartialEq)]
        enum At {
            Key,
            Value,
            AfterValue,
        }
        let mut at = At::Key;
        while let Some((i, c)) = chars.next() {
            match at {
                At::Key => match c {
                    '}' => {
                        end = Some(i);
                        break;
                    }
                    '=' => {
                        if chars.next().map(|(_, c)| c) != Some('"') {
                            bail!("label {key:?} without a quoted value");
                        }
                        at = At::Value;
                    }
                    ',' | ' ' => {}
                    c => key.push(c),
                },
                At::Value => match c {
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => bail!("unterminated label value"),
                    },
                    '"' => {
                        labels.push((std::mem::take(&mut key), std::mem::take(&mut value)));
                        at = At::AfterValue;
                    }
                    c => value.push(c),
                },
                At::AfterValue => match c {
                    ',' => at = At::Key,
                    '}' => {
                        end = Some(i);
                        break;
                    }
                    c => bail!("unexpected {c:?} after a label value"),
                },
            }
        }
        let end = end.context("unterminated label set")?;
        rest = &inner[end + 1..];
    }
    let value_text = rest
        .split_whitespace()
        .next()
        .context("a sample without a value")?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .with_context(|| format!("malformed value {v:?}"))?,
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_length_or_chunks_are_read() {
        let plain = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 11\r\n\r\nnot ready\n\n";
        let r = parse_response(plain).unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.body, "not ready\n\n");
        assert_eq!(r.content_type.as_deref(), Some("text/plain"));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap().body, "abcde");
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn samples_are_found_by_name_and_a_subset_of_labels() {
        let text = "# TYPE nodeguard_decisions counter\n\
                    nodeguard_decisions_total{phase=\"create\",outcome=\"refused\"} 2\n\
                    nodeguard_decisions_total{phase=\"start\",outcome=\"refused\"} 1\n\
                    nodeguard_odd{msg=\"a \\\"b\\\", c}\"} 1.5 1700000000\n\
                    nodeguard_nri_connected 1\n# EOF\n";
        let m = Metrics::parse(text).unwrap();
        assert_eq!(
            m.value(
                "nodeguard_decisions_total",
                &[("phase", "create"), ("outcome", "refused")]
            ),
            Some(2.0)
        );
        assert_eq!(
            m.value("nodeguard_decisions_total", &[("outcome", "refused")]),
            Some(3.0)
        );
        assert_eq!(m.value("nodeguard_nri_connected", &[]), Some(1.0));
        assert_eq!(
            m.value("nodeguard_odd", &[("msg", "a \"b\", c}")]),
            Some(1.5)
        );
        assert_eq!(m.value("nodeguard_absent_total", &[]), None);
        assert_eq!(m.count("nodeguard_absent_total", &[]), 0.0);
    }
}

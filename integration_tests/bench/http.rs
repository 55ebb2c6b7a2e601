//! The benchmark's measuring HTTP client: a minimal keep-alive HTTP/1.1 GET, so that snapshot
//! and polling latencies measure the server, not a client library's pooling and parsing.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Http {
    addr: String,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
}

pub struct HttpResp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    /// Received whole, as a real client would, though no scenario looks inside.
    #[allow(dead_code)]
    pub body: Bytes,
}

impl Http {
    pub fn new(base: &str) -> Self {
        Self {
            addr: base.trim_start_matches("http://").to_string(),
            conn: None,
            buf: Vec::with_capacity(256 * 1024),
        }
    }

    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> std::io::Result<HttpResp> {
        if self.conn.is_none() {
            let s = TcpStream::connect(&self.addr).await?;
            s.set_nodelay(true)?;
            self.conn = Some(s);
            self.buf.clear();
        }
        let conn = self.conn.as_mut().unwrap();
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        conn.write_all(req.as_bytes()).await?;
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 65536];
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                self.conn = None;
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while self.buf.len() < head_end + 4 + len {
            let mut chunk = [0u8; 65536];
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                self.conn = None;
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body = Bytes::copy_from_slice(&self.buf[head_end + 4..head_end + 4 + len]);
        self.buf.drain(..head_end + 4 + len);
        Ok(HttpResp {
            status,
            headers,
            body,
        })
    }
}

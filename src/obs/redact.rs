//! Credential redaction for every URL or error text that may leave the process.
//!
//! Camera URLs carry `user:password@`; FFmpeg error strings and logs may repeat the URL. Anything
//! shown in a log line, the status API or an error passes through here first.

/// Replaces the `userinfo@` part of every URL in `url` (a URL, or free text such as an FFmpeg
/// error that quotes one) with `***@`, and masks `password=`/`pass=`/`pwd=`/`token=` style
/// query values.
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    // Each `scheme://` starts an authority; there may be several URLs inside an error text.
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The userinfo ends at the last '@' of this URL (a password may hold '/', '#', '?'
        // or '@'); a '@' later in a path or query only makes the redaction wider.
        let token_end = tail
            .find(|c: char| c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        let host_end = tail[..token_end].find(['/', '?', '#']).unwrap_or(token_end);
        let end = match tail[..token_end].rfind('@') {
            Some(at) => {
                out.push_str("***@");
                let after = &tail[at + 1..token_end];
                let host_len = after.find(['/', '?', '#']).unwrap_or(after.len());
                out.push_str(&after[..host_len]);
                at + 1 + host_len
            }
            None => {
                out.push_str(&tail[..host_end]);
                host_end
            }
        };
        rest = &tail[end..];
    }
    out.push_str(rest);
    mask_query_secrets(&out)
}

fn mask_query_secrets(s: &str) -> String {
    const KEYS: [&str; 6] = ["password=", "passwd=", "pass=", "pwd=", "token=", "secret="];
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let hit = KEYS.iter().find(|k| {
            lower[i..].starts_with(*k)
                && (i == 0 || matches!(s.as_bytes()[i - 1], b'?' | b'&' | b';' | b' '))
        });
        match hit {
            Some(k) => {
                out.push_str(&s[i..i + k.len()]);
                out.push_str("***");
                i += k.len();
                while i < s.len()
                    && !matches!(s.as_bytes()[i], b'&' | b';' | b' ' | b'#' | b'"' | b'\'')
                {
                    i += 1;
                }
            }
            None => {
                let ch = s[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&s[i..i + ch]);
                i += ch;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_hidden() {
        assert_eq!(
            redact_url("rtsp://admin:hunter2@10.0.0.5:554/stream1"),
            "rtsp://***@10.0.0.5:554/stream1"
        );
        assert_eq!(redact_url("rtsp://10.0.0.5/s"), "rtsp://10.0.0.5/s");
        assert_eq!(redact_url("lavfi:testsrc2"), "lavfi:testsrc2");
    }

    #[test]
    fn passwords_with_at_signs_and_query_secrets() {
        let r = redact_url("http://u:p@ss@cam.local/video.cgi?user=u&pwd=hunter2&x=1");
        assert!(!r.contains("hunter2") && !r.contains("p@ss"), "{r}");
        assert!(r.contains("cam.local/video.cgi?user=u&pwd=***&x=1"), "{r}");
    }

    #[test]
    fn passwords_with_url_delimiters() {
        for url in [
            "rtsp://admin:p#ss@h/x",
            "rtsp://admin:p/ss@h/x",
            "rtsp://a:p?x@h:554/s",
            "rtsp://a:p@ss@h/s",
        ] {
            let r = redact_url(url);
            assert!(
                !r.contains("p#ss")
                    && !r.contains("p/ss")
                    && !r.contains("p?x")
                    && !r.contains("p@ss"),
                "{url} -> {r}"
            );
            assert!(r.starts_with("rtsp://***@h"), "{url} -> {r}");
        }
    }

    #[test]
    fn urls_inside_error_text() {
        let r = redact_url("error opening 'rtsp://a:b@h/x': 401 Unauthorized, then http://c:d@e/");
        assert!(!r.contains("a:b") && !r.contains("c:d"), "{r}");
    }
}

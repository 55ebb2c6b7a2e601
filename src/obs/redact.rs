//! Credential redaction: the one rule for every URL, option or error text that leaves the
//! process (API answers, status, events, metrics, logs, probe answers, the cluster's views).
//!
//! The rule: a URL is parsed (as FFmpeg splits it too: the authority ends at the first `/`, `?`
//! or `#`, the user info at its last `@`), never matched by pattern, so a made-up host in a
//! fragment or path cannot pass for the real one. Shown are the scheme, host, port and path;
//! the user info becomes `***`, so does the value of every query parameter whose name says it
//! is a secret ([`is_secret_name`]) and any fragment. A URL that does not parse, or whose path
//! holds an `@` (a password with an unescaped `/` splits into host, port and path), shows as
//! `scheme://***`. An FFmpeg option whose name says it carries a credential (`headers`,
//! `cookies`, `passphrase`, `srtp_in_params`...) shows as `***`; any other option value is a
//! text like an error message. In free text each `scheme://` starts a URL redacted by that rule,
//! and outside URLs `name=value` pairs with a secret name are masked.

use std::borrow::Cow;
use std::collections::BTreeMap;

use url::Url;

/// What a secret is shown as. A value sent back with it means "unchanged" (see `control`).
pub const MASK: &str = "***";

/// Parts of names (query parameters, FFmpeg options) that say the value is a credential:
/// `password`, `passphrase`, `pwd`, `token`, `key`, `secret`, `auth`, `sig(nature)`,
/// `credential`, `cookies`, `session`, `headers` (`Authorization: ...`), `srtp_*_params` (SRTP
/// master keys). A false positive only hides a harmless value.
const SECRET_PARTS: [&str; 12] = [
    "pass", "pwd", "token", "key", "secret", "auth", "sig", "cred", "cookie", "session", "header",
    "srtp",
];

/// Whether a query parameter or option named `name` holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_PARTS.iter().any(|p| n.contains(p))
}

/// `url` as it may be shown: a URL, or free text (an FFmpeg error, a log message) that quotes
/// URLs, each redacted by the rule of this module.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((start, end)) = next_url(rest) {
        out.push_str(&mask_pairs(&rest[..start]));
        out.push_str(&redact_one(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(&mask_pairs(rest));
    out
}

/// An FFmpeg option's value as it may be shown.
pub fn redact_option(key: &str, value: &str) -> String {
    if is_secret_name(key) {
        MASK.to_string()
    } else {
        redact_url(value)
    }
}

/// FFmpeg options as they may be shown.
pub fn redact_options(options: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    options
        .iter()
        .map(|(k, v)| (k.clone(), redact_option(k, v)))
        .collect()
}

/// Whether a URL sent in holds a mask where a secret goes (user info, a secret query value):
/// a value shown by this module sent back where it no longer matches the stored one.
pub fn url_carries_mask(url: &str) -> bool {
    match Url::parse(url.trim()) {
        Ok(u) => {
            u.host_str() == Some(MASK)
                || u.username() == MASK
                || u.password() == Some(MASK)
                || u.fragment() == Some(MASK)
                || u.query().is_some_and(|q| {
                    q.split(['&', ';']).any(|pair| match pair.split_once('=') {
                        Some((name, value)) => is_secret_name(name) && value == MASK,
                        None => false,
                    })
                })
        }
        Err(_) => url.contains(&format!("://{MASK}")),
    }
}

/// Whether an option value sent in holds a mask where a secret goes.
pub fn option_carries_mask(key: &str, value: &str) -> bool {
    (is_secret_name(key) && value == MASK) || url_carries_mask(value)
}

/// The next URL in `text`: from its scheme to the first space or quote after `://`.
fn next_url(text: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = text[from..].find("://") {
        let sep = from + i;
        let from_scheme = text[..sep]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .last()
            .map_or(sep, |(j, _)| j);
        let end = text[sep..]
            .find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '`' | '<' | '>'))
            .map_or(text.len(), |j| sep + j);
        // A scheme starts with a letter ("554rtsp://" is "554" then a URL); "://" with no
        // letter before it is text, not a URL.
        if let Some(k) = text[from_scheme..sep].find(|c: char| c.is_ascii_alphabetic()) {
            return Some((from_scheme + k, end));
        }
        from = sep + 3;
    }
    None
}

/// One URL by the rule of this module.
fn redact_one(raw: &str) -> String {
    let scheme = raw.split("://").next().unwrap_or_default();
    let hidden = || format!("{scheme}://{MASK}");
    let Ok(mut u) = Url::parse(raw) else {
        return hidden();
    };
    if u.path().contains('@') {
        return hidden();
    }
    // A URL with nothing to hide is shown as written (not as the parser would normalize it).
    let mut changed = false;
    if !u.username().is_empty() || u.password().is_some() {
        // Both can fail only for URLs without a host, which have no user info either.
        if u.set_password(None).is_err() || u.set_username(MASK).is_err() {
            return hidden();
        }
        changed = true;
    }
    if let Some(q) = u.query() {
        if let Cow::Owned(q) = mask_query(q) {
            u.set_query(Some(&q));
            changed = true;
        }
    }
    if u.fragment().is_some_and(|f| !f.is_empty()) {
        u.set_fragment(Some(MASK));
        changed = true;
    }
    if changed {
        u.to_string()
    } else {
        raw.to_string()
    }
}

/// A raw query with the values of secret parameters masked (`&` and `;` separate pairs).
fn mask_query(q: &str) -> Cow<'_, str> {
    let mut out = String::with_capacity(q.len());
    let mut changed = false;
    for (i, pair) in q.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        for (j, part) in pair.split(';').enumerate() {
            if j > 0 {
                out.push(';');
            }
            match part.split_once('=') {
                Some((name, value)) if secret_param(name) && value != MASK => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(MASK);
                    changed = true;
                }
                _ => out.push_str(part),
            }
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(q)
    }
}

/// A query parameter's name, percent-decoded, says secret.
fn secret_param(name: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
    is_secret_name(&decoded)
}

/// Free text outside URLs: the value of each `name=value` whose name says secret is masked
/// (a name starts the text or follows a space, `?`, `&`, `;` or `,`; its value ends at one).
fn mask_pairs(text: &str) -> Cow<'_, str> {
    if !text.contains('=') {
        return Cow::Borrowed(text);
    }
    let is_sep = |c: char| c.is_whitespace() || matches!(c, '?' | '&' | ';' | ',' | '\'' | '"');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let word_end = rest.find(is_sep).unwrap_or(rest.len());
        let word = &rest[..word_end];
        match word.split_once('=') {
            Some((name, value)) if !value.is_empty() && secret_param(name) => {
                out.push_str(name);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(word),
        }
        rest = &rest[word_end..];
        let sep_len = rest.chars().next().map_or(0, char::len_utf8);
        out.push_str(&rest[..sep_len]);
        rest = &rest[sep_len..];
    }
    Cow::Owned(out)
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
